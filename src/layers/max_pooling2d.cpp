// max_pooling2d.cpp: keras.layers.MaxPooling2D (channels_last).
#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {
namespace layer_util {

backend::PoolGeometry pool_geometry(const MaxPooling2DOptions& o, const Shape& in, std::int64_t batch) {
  const auto strides = o.strides.value_or(o.pool_size);
  const bool same = parse_padding(o.padding);
  const auto gy = backend::axis_geometry(in[0], o.pool_size[0], strides[0], same);
  const auto gx = backend::axis_geometry(in[1], o.pool_size[1], strides[1], same);
  return {batch, in[0], in[1], in[2], o.pool_size[0], o.pool_size[1], strides[0], strides[1],
          gy.pad_before, gx.pad_before, gy.out, gx.out};
}

}  // namespace layer_util

MaxPooling2D::MaxPooling2D(MaxPooling2DOptions options) : options_(std::move(options)) {
  layer_util::check_positive_pair(options_.pool_size, "pool_size");
  if (options_.strides) layer_util::check_positive_pair(*options_.strides, "strides");
  layer_util::parse_padding(options_.padding);
}

Shape MaxPooling2D::build(const Shape& in, std::uint64_t) {
  if (in.size() != 3)
    throw InvalidArgument(fmt::format("Input 0 of layer '{}' (MaxPooling2D) is incompatible: expected ndim=4, "
                                      "found shape (None, {}", name_, to_string(in).substr(1)));
  const auto g = layer_util::pool_geometry(options_, in, 1);
  if (g.oh <= 0 || g.ow <= 0)
    throw InvalidArgument(fmt::format("layer '{}': pool size {}x{} does not fit input {}", name_,
                                      options_.pool_size[0], options_.pool_size[1], to_string(in)));
  return finish_build(in, {g.oh, g.ow, in[2]});
}

void MaxPooling2D::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  ctx.backend.maxpool2d_forward(x, y, layer_util::pool_geometry(options_, input_shape(), x.dim(0)));
}

void MaxPooling2D::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  if (dx != nullptr) ctx.backend.maxpool2d_backward(x, y, dy, *dx, layer_util::pool_geometry(options_, input_shape(), x.dim(0)));
}

}  // namespace dropnet
