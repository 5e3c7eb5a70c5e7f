// step_state.cpp: the model's step state in its backend's memory (kernels/step_state.hpp).
#include <fmt/format.h>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"

namespace dropnet::backend {

// The backend context owns its model's step state (backend.hpp); StepState is complete here.
Backend::Backend() : step_state_(std::make_unique<StepState>()) {}
Backend::~Backend() = default;
void Backend::set_step_state(StepState state) { *step_state_ = std::move(state); }

StepState::StepState(Backend& backend, std::span<const std::uint32_t> advances) : backend_(&backend) {
  const Device device = backend.device();
  advances_.assign(advances.begin(), advances.end());
  header_ = DeviceArray<StepHeader>(1, device);
  slots_ = DeviceArray<StepSlot>(advances.size(), device);
  StepSnapshot fresh;
  fresh.header.slots = static_cast<std::int64_t>(advances.size());
  for (std::uint32_t a : advances) fresh.slots.push_back(StepSlot{0, a, 0});
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
  // The advances are the layout's (fixed when it was laid out); only the steps are written.
  for (std::size_t i = 0; i < s.slots.size(); ++i) s.slots[i].advances = advances_[i];
  header_.upload(std::span<const StepHeader>(&s.header, 1));
  slots_.upload(s.slots);
}

}  // namespace dropnet::backend
