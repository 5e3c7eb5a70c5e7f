// step_state.cpp: the model's step state in its backend's memory (kernels/step_state.hpp).
#include <fmt/format.h>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"

namespace dropnet::backend {

// The backend context owns its model's step state (backend.hpp); StepState is complete here.
Backend::Backend() : step_state_(std::make_unique<StepState>()) {}
Backend::~Backend() = default;
void Backend::set_step_state(StepState state) { *step_state_ = std::move(state); }

// A backend that does not fuse says so (fuses_relu_pool() is false) and the model never calls these.
void Backend::relu_pool_forward(const Tensor&, Tensor&, std::uint8_t*, const PoolGeometry&, const DropoutCall*) {
  throw DeviceError(fmt::format("the {} backend has no fused relu-pool op", to_string(device())));
}
void Backend::relu_pool_backward(const Tensor&, const std::uint8_t*, Tensor&, const PoolGeometry&,
                                 const DropoutCall*) {
  throw DeviceError(fmt::format("the {} backend has no fused relu-pool op", to_string(device())));
}

namespace {

// The slots of `layout` at `iteration`, with the given steps.
void lay_out(std::vector<StepSlot>& slots, const std::vector<SlotLayout>& layout, std::uint64_t iteration) {
  for (std::size_t i = 0; i < slots.size(); ++i) {
    slots[i].advances = layout[i].advances;
    slots[i].schedule = layout[i].schedule;
    slots[i].rate = kernels::scheduled_rate(layout[i].schedule, iteration);
  }
}

}  // namespace

StepState::StepState(Backend& backend, std::span<const SlotLayout> layout) : backend_(&backend) {
  const Device device = backend.device();
  layout_.assign(layout.begin(), layout.end());
  header_ = DeviceArray<StepHeader>(1, device);
  slots_ = DeviceArray<StepSlot>(layout.size(), device);
  StepSnapshot fresh;
  fresh.header.slots = static_cast<std::int64_t>(layout.size());
  fresh.slots.assign(layout.size(), StepSlot{});
  lay_out(fresh.slots, layout_, 0);
  header_.upload(std::span<const StepHeader>(&fresh.header, 1));
  slots_.upload(fresh.slots);
}

StepSnapshot StepState::read() const {
  if (backend_ == nullptr) return {};
  backend_->synchronize();
  StepSnapshot s;
  s.slots.resize(slots_.size());
  header_.download(std::span<StepHeader>(&s.header, 1));
  slots_.download(s.slots);
  return s;
}

void StepState::write(const StepSnapshot& state) {
  if (state.slots.size() != slots_.size())
    throw InvalidArgument(fmt::format("StepState::write: {} slots for a state of {}", state.slots.size(),
                                      slots_.size()));
  StepSnapshot s = state;
  s.header.slots = static_cast<std::int64_t>(slots_.size());
  // The layout is fixed when the state is laid out; only the steps are written, and the rates follow.
  lay_out(s.slots, layout_, s.header.iteration);
  header_.upload(std::span<const StepHeader>(&s.header, 1));
  slots_.upload(s.slots);
}

}  // namespace dropnet::backend
