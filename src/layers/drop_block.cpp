// drop_block.cpp: DropBlock2D (Ghiasi, Lin, Le 2018), keras-cv's layer with a square block. The layer owns
// its seed; the step and the current rate (the schedule's: the paper ramps it linearly from 0) are its slot
// of the model's step state, which the ops read when they run. The mask, gamma and the scale are in
// kernels/dropblock_math.hpp; the ops regenerate the mask in backward.
#include <fmt/format.h>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {
namespace {

backend::DropBlockCall make_call(std::uint64_t seed, double rate, std::int64_t block, const Shape& input_shape,
                                 const RunContext& ctx, const std::string& name) {
  if (ctx.slot == nullptr)
    throw InvalidArgument(fmt::format("layer '{}': a training pass needs the layer's step-state slot", name));
  backend::DropBlockCall c{seed, 0, float(rate), block, input_shape};
  c.slot = ctx.slot;
  return c;
}

}  // namespace

DropBlock2D::DropBlock2D(double rate, std::int64_t block_size, RandomLayerOptions options)
    : rate_(rate), block_size_(block_size), options_(std::move(options)) {
  // Keras' Dropout wording for the rate (keras-cv's own reads "rate must be a number between 0 and 1").
  layer_util::check_unit_interval(rate_, "rate");
  // keras-cv normalises block_size with Keras' standardize_tuple(block_size, 2, "block_size", allow_zero=False).
  if (block_size_ <= 0)
    throw InvalidArgument(fmt::format("The `block_size` argument must be a tuple of 2 integers. Received "
                                      "block_size={0}, including values {{{0}}} that do not satisfy `value > 0`",
                                      block_size_));
  layer_util::check_schedule(options_.schedule);
}

std::optional<Layer::SeedGenerator> DropBlock2D::seed_generator() const noexcept {
  return SeedGenerator{seed_, layer_util::schedule_draws(rate_, options_.schedule), rate_, options_.schedule};
}

Shape DropBlock2D::build(const Shape& in, std::uint64_t seed) {
  if (in.size() != 3)
    throw InvalidArgument(fmt::format("layer '{}' (DropBlock2D) expects an input (batch, height, width, channels), "
                                      "found shape (None, {}", name_, to_string(in).substr(1)));
  if (in[0] < block_size_ || in[1] < block_size_)
    throw InvalidArgument(fmt::format("layer '{}' (DropBlock2D): block_size {} is larger than the input's "
                                      "height or width, (None, {}", name_, block_size_, to_string(in).substr(1)));
  seed_ = options_.seed.value_or(layer_util::derive_seed(seed, 3));
  return finish_build(in, in);
}

void DropBlock2D::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  if (layer_util::pass_without_draws(ctx, rate_, options_.schedule, x, y)) return;
  ctx.backend.dropblock_forward(x, y, make_call(seed_, rate_, block_size_, x.shape(), ctx, name_));
}

void DropBlock2D::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  if (dx == nullptr || layer_util::pass_without_draws(ctx, rate_, options_.schedule, dy, *dx)) return;
  ctx.backend.dropblock_backward(dy, *dx, make_call(seed_, rate_, block_size_, x.shape(), ctx, name_));
}

}  // namespace dropnet
