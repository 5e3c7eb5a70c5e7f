// conv2d.cpp: keras.layers.Conv2D (channels_last, no dilation, no groups).
#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {

struct Conv2D::Geometry : backend::ConvGeometry {};

Conv2D::Conv2D(std::int64_t filters, std::array<std::int64_t, 2> kernel_size, Conv2DOptions options)
    : filters_(filters), kernel_size_(kernel_size), options_(std::move(options)),
      activation_(parse_activation(options_.activation)) {
  if (filters_ <= 0)
    throw InvalidArgument(fmt::format("Invalid value for argument `filters`. Expected a strictly positive value. "
                                      "Received filters={}.", filters_));
  layer_util::check_positive_pair(kernel_size_, "kernel_size");
  layer_util::check_positive_pair(options_.strides, "strides");
  layer_util::parse_padding(options_.padding);
  layer_util::check_initializer(options_.kernel_initializer, "kernel_initializer");
  layer_util::check_initializer(options_.bias_initializer, "bias_initializer");
  layer_util::check_constraint(options_.kernel_constraint);
}

Shape Conv2D::build(const Shape& in, std::uint64_t seed) {
  if (in.size() != 3)
    throw InvalidArgument(fmt::format("Input 0 of layer '{}' (Conv2D) is incompatible: expected ndim=4 "
                                      "(batch, height, width, channels), found shape (None, {}", name_,
                                      to_string(in).substr(1)));
  const bool same = layer_util::parse_padding(options_.padding);
  const auto gy = backend::axis_geometry(in[0], kernel_size_[0], options_.strides[0], same);
  const auto gx = backend::axis_geometry(in[1], kernel_size_[1], options_.strides[1], same);
  if (gy.out <= 0 || gx.out <= 0)
    throw InvalidArgument(fmt::format("layer '{}': a {}x{} kernel with \"{}\" padding does not fit input {}; "
                                      "computed output size would be <= 0", name_, kernel_size_[0],
                                      kernel_size_[1], options_.padding, to_string(in)));
  params_.clear();
  const Shape kshape{kernel_size_[0], kernel_size_[1], in[2], filters_};
  if (options_.kernel_constraint) layer_util::normalize_axes(*options_.kernel_constraint, kshape, name_);
  params_.push_back(layer_util::make_param("kernel", kshape, options_.kernel_initializer,
                                           layer_util::derive_seed(seed, 1), options_.kernel_constraint));
  if (options_.use_bias)
    params_.push_back(layer_util::make_param("bias", {filters_}, options_.bias_initializer,
                                             layer_util::derive_seed(seed, 2), std::nullopt));
  return finish_build(in, {gy.out, gx.out, filters_});
}

Conv2D::Geometry Conv2D::geometry(std::int64_t batch) const {
  const Shape& in = input_shape();
  const bool same = layer_util::parse_padding(options_.padding);
  const auto gy = backend::axis_geometry(in[0], kernel_size_[0], options_.strides[0], same);
  const auto gx = backend::axis_geometry(in[1], kernel_size_[1], options_.strides[1], same);
  Geometry g;
  g.n = batch; g.h = in[0]; g.w = in[1]; g.c = in[2];
  g.kh = kernel_size_[0]; g.kw = kernel_size_[1]; g.k = filters_;
  g.sh = options_.strides[0]; g.sw = options_.strides[1];
  g.pad_top = gy.pad_before; g.pad_left = gx.pad_before;
  g.oh = gy.out; g.ow = gx.out;
  return g;
}

void Conv2D::allocate(std::int64_t max_batch, Device device) {
  Shape s{max_batch};
  s.insert(s.end(), output_shape().begin(), output_shape().end());
  layer_util::allocate_activation(activation_, s, device, z_, dz_);
}

void Conv2D::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  const auto g = geometry(x.dim(0));
  const Tensor* bias = options_.use_bias ? &params_[1].value : nullptr;
  const ActivationKind kind = ctx.activation_deferred ? ActivationKind::Linear : activation_;
  layer_util::forward_activation(kind, z_, y, ctx,
                                 [&](Tensor& out) { ctx.backend.conv2d_forward(x, params_[0].value, bias, out, g); });
}

void Conv2D::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  backward_from_logits(x, layer_util::activation_gradient(activation_, dz_, y, dy, ctx), dx, ctx);
}

void Conv2D::backward_from_logits(const Tensor& x, const Tensor& dz, Tensor* dx, RunContext& ctx) {
  Tensor* db = options_.use_bias ? &params_[1].grad : nullptr;
  ctx.backend.conv2d_backward(x, params_[0].value, dz, dx, params_[0].grad, db, geometry(x.dim(0)));
}

}  // namespace dropnet
