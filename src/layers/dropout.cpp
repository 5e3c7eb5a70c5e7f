// dropout.cpp: keras.layers.Dropout. The layer owns its seed; the step of Keras' SeedGenerator state
// (seed, step) is its slot of the model's step state, which the dropout ops read on the device, and which
// the step's last op moves on (so forward and backward of one step read the same step). The mask math is in
// kernels/dropout_math.hpp and runs on whichever backend holds the tensors.
#include <cmath>

#include <fmt/format.h>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {
namespace layer_util {

// The op's call: the mask's step and the rate are read from the layer's slot when the op runs.
backend::DropoutCall dropout_call(const Dropout& layer, const Shape& input_shape, const RunContext& ctx) {
  if (ctx.slot == nullptr)
    throw InvalidArgument(fmt::format("layer '{}': a training pass needs the layer's step-state slot", layer.name()));
  backend::DropoutCall c{layer.seed(), 0, float(layer.rate()), input_shape, layer.mask_shape(input_shape)};
  c.slot = ctx.slot;
  return c;
}

}  // namespace layer_util

Dropout::Dropout(double rate, DropoutOptions options) : rate_(rate), options_(std::move(options)) {
  layer_util::check_unit_interval(rate_, "rate");
  layer_util::check_schedule(options_.schedule);
  layer_util::check_noise_shape(options_.noise_shape);
}

std::optional<Layer::SeedGenerator> Dropout::seed_generator() const noexcept {
  return SeedGenerator{seed_, layer_util::schedule_draws(rate_, options_.schedule), rate_, options_.schedule};
}

Shape Dropout::build(const Shape& in, std::uint64_t seed) {
  seed_ = options_.seed.value_or(layer_util::derive_seed(seed, 3));
  Shape with_batch{1};
  with_batch.insert(with_batch.end(), in.begin(), in.end());
  mask_shape(with_batch);  // checks noise_shape against the input once, at build time
  return finish_build(in, in);
}

Shape Dropout::mask_shape(const Shape& input_shape) const {
  return layer_util::noise_mask_shape(options_.noise_shape, input_shape, name_);
}

void Dropout::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  if (layer_util::pass_without_draws(ctx, rate_, options_.schedule, x, y)) return;
  ctx.backend.dropout_forward(x, y, layer_util::dropout_call(*this, x.shape(), ctx));
}

void Dropout::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  if (dx == nullptr || layer_util::pass_without_draws(ctx, rate_, options_.schedule, dy, *dx)) return;
  ctx.backend.dropout_backward(dy, *dx, layer_util::dropout_call(*this, x.shape(), ctx));
}

}  // namespace dropnet
