// dense.cpp: keras.layers.Dense on a (batch, features) input.
#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {

Dense::Dense(std::int64_t units, DenseOptions options)
    : units_(units), options_(std::move(options)), activation_(parse_activation(options_.activation)) {
  if (units_ <= 0)
    throw InvalidArgument(fmt::format("Received an invalid value for `units`, expected a positive integer. "
                                      "Received: units={}", units_));
  layer_util::check_initializer(options_.kernel_initializer, "kernel_initializer");
  layer_util::check_initializer(options_.bias_initializer, "bias_initializer");
  layer_util::check_constraint(options_.kernel_constraint);
}

Shape Dense::build(const Shape& in, std::uint64_t seed) {
  if (in.size() != 1)
    throw InvalidArgument(fmt::format("layer '{}' (Dense) expects a flat (batch, features) input, got (None, {}; "
                                      "add a Flatten layer before it", name_, to_string(in).substr(1)));
  params_.clear();
  const Shape kshape{in[0], units_};
  if (options_.kernel_constraint) layer_util::normalize_axes(*options_.kernel_constraint, kshape, name_);
  params_.push_back(layer_util::make_param("kernel", kshape, options_.kernel_initializer,
                                           layer_util::derive_seed(seed, 1), options_.kernel_constraint));
  if (options_.use_bias)
    params_.push_back(layer_util::make_param("bias", {units_}, options_.bias_initializer,
                                             layer_util::derive_seed(seed, 2), std::nullopt));
  return finish_build(in, {units_});
}

void Dense::allocate(std::int64_t max_batch, Device device) {
  layer_util::allocate_activation(activation_, {max_batch, units_}, device, z_, dz_);
}

void Dense::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  const Tensor* bias = options_.use_bias ? &params_[1].value : nullptr;
  layer_util::forward_activation(activation_, z_, y, ctx,
                                 [&](Tensor& out) { ctx.backend.dense_forward(x, params_[0].value, bias, out); });
}

void Dense::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  backward_from_logits(x, layer_util::activation_gradient(activation_, dz_, y, dy, ctx), dx, ctx);
}

void Dense::backward_from_logits(const Tensor& x, const Tensor& dz, Tensor* dx, RunContext& ctx) {
  Tensor* db = options_.use_bias ? &params_[1].grad : nullptr;
  ctx.backend.dense_backward(x, params_[0].value, dz, dx, params_[0].grad, db);
}

}  // namespace dropnet
