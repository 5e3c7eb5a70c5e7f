// activation.cpp: keras.layers.Activation.
#include "layers/layer_util.hpp"

namespace dropnet {

Activation::Activation(const std::string& activation) : kind_(parse_activation(activation)) {}

Shape Activation::build(const Shape& in, std::uint64_t) { return finish_build(in, in); }

void Activation::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  input_ = x;
  ctx.backend.activation_forward(kind_, x, y);
}

void Activation::backward(const Tensor&, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  if (dx != nullptr) ctx.backend.activation_backward(kind_, y, dy, *dx);
}

void Activation::backward_from_logits(const Tensor&, const Tensor& dz, Tensor* dx, RunContext& ctx) {
  if (dx != nullptr) layer_util::copy(ctx, *dx, dz);
}

}  // namespace dropnet
