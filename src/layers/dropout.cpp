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
namespace {

void check_rate(double rate) {
  if (!(rate >= 0.0 && rate <= 1.0))
    throw InvalidArgument(fmt::format("Invalid value received for argument `rate`. Expected a float value "
                                      "between 0 and 1. Received: rate={}", rate));
}

// The op's call: the mask's step and the rate are read from the layer's slot when the op runs.
backend::DropoutCall make_call(std::uint64_t seed, double rate, const Shape& input_shape, Shape mask_shape,
                               const RunContext& ctx, const std::string& name) {
  if (ctx.slot == nullptr)
    throw InvalidArgument(fmt::format("layer '{}': a training pass needs the layer's step-state slot", name));
  backend::DropoutCall c{seed, 0, float(rate), input_shape, std::move(mask_shape)};
  c.slot = ctx.slot;
  return c;
}

}  // namespace

Dropout::Dropout(double rate, DropoutOptions options) : rate_(rate), options_(std::move(options)) {
  check_rate(rate_);
  layer_util::check_schedule(options_.schedule);
  for (const auto& d : options_.noise_shape) {
    if (d && *d <= 0)
      throw InvalidArgument(fmt::format("Invalid value received for argument `noise_shape`. Expected a tuple "
                                        "of positive integers or None. Received an entry {}", *d));
  }
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
  if (options_.noise_shape.empty()) return input_shape;
  if (options_.noise_shape.size() != input_shape.size())
    throw InvalidArgument(fmt::format("layer '{}': noise_shape has {} entries but the input {} (batch included) "
                                      "has rank {}", name_, options_.noise_shape.size(),
                                      to_string(input_shape), input_shape.size()));
  Shape mask(input_shape.size());
  for (std::size_t i = 0; i < mask.size(); ++i) {
    mask[i] = options_.noise_shape[i].value_or(input_shape[i]);
    // The batch entry is checked against real batches only (build uses a batch of 1).
    if (mask[i] != 1 && mask[i] != input_shape[i] && !(i == 0 && input_shape[0] == 1))
      throw InvalidArgument(fmt::format("layer '{}': noise_shape entry {} is {}; it must be 1 or the input's "
                                        "dimension {} to broadcast", name_, i, mask[i], input_shape[i]));
  }
  return mask;
}

void Dropout::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  if (!ctx.training || layer_util::fixed_rate(rate_, options_.schedule, 0.0)) {
    layer_util::copy(ctx, y, x);
    return;
  }
  if (layer_util::fixed_rate(rate_, options_.schedule, 1.0)) {
    layer_util::fill(ctx, y, 0.0f);
    return;
  }
  ctx.backend.dropout_forward(x, y, make_call(seed_, rate_, x.shape(), mask_shape(x.shape()), ctx, name_));
}

void Dropout::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  if (dx == nullptr) return;
  if (!ctx.training || layer_util::fixed_rate(rate_, options_.schedule, 0.0)) {
    layer_util::copy(ctx, *dx, dy);
  } else if (layer_util::fixed_rate(rate_, options_.schedule, 1.0)) {
    layer_util::fill(ctx, *dx, 0.0f);
  } else {
    ctx.backend.dropout_backward(dy, *dx, make_call(seed_, rate_, x.shape(), mask_shape(x.shape()), ctx, name_));
  }
}

}  // namespace dropnet
