// layer_call.cpp: a layer called on a tensor, y = layer(x, training), as Keras' Layer.__call__.
//
// Outside a model a layer has no backend context and no step state, so the call keeps its own with the
// layer (Layer::CallState): one backend context per device, made on the first call there, each with a step
// state of one slot when the layer has a seed generator. The call count lives on the host and is written
// into that slot before each training call, so that the n-th call draws exactly what a model's layer of the
// same seed draws at its step n (the ops read step and rate from the slot, as in a model: one keying), and
// calls on different devices continue one sequence. Nothing here is shared between layers or cached
// process-wide.
#include <array>
#include <random>

#include <fmt/format.h>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {

struct Layer::CallState {
  // Training calls that drew so far: the step of the next one (Keras' SeedGenerator step).
  std::uint64_t step = 0;

  // What the calls on one device use.
  struct Context {
    // Declared first so that it is destroyed last: on the GPU its destructor waits for its stream, which
    // the buffers below may still be in use by.
    std::unique_ptr<backend::Backend> backend;
    Shape built_for;              // the layer's input shape when the buffers below were made
    std::vector<Tensor> weights;  // per parameter: a copy on this device when the value lives elsewhere
    std::vector<Tensor> scratch;  // the layer's scratch_buffers() for calls here, sized for `capacity` rows
    std::int64_t capacity = 0;
  };
  std::array<std::unique_ptr<Context>, 2> contexts;  // by Device (CPU, CUDA)
};

void Layer::CallStateDeleter::operator()(CallState* state) const noexcept { delete state; }

std::uint64_t Layer::call_step() const noexcept { return call_state_ ? call_state_->step : 0; }

namespace {

// "layer 'dense' (Dense)", or "a Dense layer" before the layer has a name (Sequential::add names it).
std::string describe_layer(const Layer& layer) {
  return layer.name().empty() ? fmt::format("a {} layer", layer.type())
                              : fmt::format("layer '{}' ({})", layer.name(), layer.type());
}

// A shape with Keras' None for the batch: "(None, 8)".
std::string with_batch(const Shape& shape) {
  std::string s = "(None";
  for (std::int64_t d : shape) s += fmt::format(", {}", d);
  return s + ")";
}

// Puts a set of tensor handles back when the call ends, also when forward throws: the model's weights and
// buffers that the call swapped out.
class Restore {
 public:
  void keep(Tensor& slot, Tensor replacement) {
    saved_.emplace_back(&slot, slot);
    slot = std::move(replacement);
  }
  ~Restore() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) *it->first = std::move(it->second);
  }

 private:
  std::vector<std::pair<Tensor*, Tensor>> saved_;
};

}  // namespace

Tensor Layer::operator()(const Tensor& x, bool training) {
  if (x.rank() < 2)
    throw InvalidArgument(fmt::format("{} was called on x of shape {}; expected (batch, ...) with at least one "
                                      "dimension besides the batch", describe_layer(*this), to_string(x.shape())));
  const Shape in(x.shape().begin() + 1, x.shape().end());
  if (!built_) {
    // Keras draws an unseeded layer's weights from a random seed; build(shape, seed) first chooses them.
    build(in, std::random_device{}() | (std::uint64_t(std::random_device{}()) << 32));
  } else if (in != input_shape_) {
    throw InvalidArgument(fmt::format("{} was built for inputs {} and cannot be called on x of shape {}",
                                      describe_layer(*this), with_batch(input_shape_), to_string(x.shape())));
  }
  if (!call_state_) call_state_.reset(new CallState);
  const Device device = x.device();
  auto& slot_of_device = call_state_->contexts[device == Device::CPU ? 0 : 1];
  if (!slot_of_device) {
    auto context = std::make_unique<CallState::Context>();
    context->backend = backend::make_backend(device);
    std::vector<backend::SlotLayout> layout;
    if (const auto gen = seed_generator())
      layout.push_back({gen->draws ? 1u : 0u, layer_util::rate_schedule(gen->rate, gen->schedule)});
    context->backend->set_step_state(backend::StepState(*context->backend, layout));
    slot_of_device = std::move(context);
  }
  CallState::Context& c = *slot_of_device;
  backend::Backend& backend = *c.backend;
  if (c.built_for != input_shape_) {  // (re)built since the last call here, by a model's compile say
    c.built_for = input_shape_;
    c.weights.clear();
    c.scratch.clear();
    c.capacity = 0;
  }

  const std::int64_t n = x.dim(0);
  Shape y_shape{n};
  y_shape.insert(y_shape.end(), output_shape_.begin(), output_shape_.end());
  Tensor y(y_shape, device);
  if (n == 0) return y;

  // A training call of a layer with a seed generator reads its step and rate from its slot, which holds
  // the call count (the header's iteration too: a schedule counts the calls as a model counts its steps).
  const auto gen = seed_generator();
  backend::StepState& state = backend.step_state();
  const backend::StepSlot* slot = nullptr;
  if (gen && training) {
    backend::StepSnapshot s;
    s.header.iteration = call_state_->step;
    s.slots.assign(1, backend::StepSlot{});
    s.slots[0].step = call_state_->step;
    state.write(s);
    slot = state.slots();
  }

  Restore restore;
  // Weights that live on another device (a host-built layer called on the GPU, a model's layer called on
  // the other device) run from a copy here, refreshed on every call so that it is never stale.
  c.weights.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& value = params_[i].value;
    if (value.device() == device) continue;
    if (c.weights[i].shape() != value.shape()) c.weights[i] = Tensor(value.shape(), device);
    c.weights[i].copy_from(value);
    restore.keep(params_[i].value, c.weights[i]);
  }
  // The call's own scratch buffers, so that a model's (sized for its batches, on its device, perhaps held
  // by a recorded CUDA graph) stay as they are.
  const std::vector<Tensor*> scratch = scratch_buffers();
  if (!scratch.empty()) {
    if (n > c.capacity) {
      Restore model_buffers;  // allocate() writes the members; take what it made and put the model's back
      for (Tensor* t : scratch) model_buffers.keep(*t, Tensor());
      allocate(n, device);
      c.scratch.clear();
      for (Tensor* t : scratch) c.scratch.push_back(*t);
      c.capacity = n;
    }
    for (std::size_t i = 0; i < scratch.size(); ++i) restore.keep(*scratch[i], c.scratch[i]);
  }

  RunContext ctx{backend, training, slot};
  forward(x, y, ctx);
  backend.synchronize();  // y is complete when the call returns, whichever stream reads it next
  if (gen && training && gen->draws) ++call_state_->step;
  return y;
}

}  // namespace dropnet
