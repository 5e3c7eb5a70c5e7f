// average_pooling.cpp: keras.layers.AveragePooling2D and GlobalAveragePooling2D (channels_last). Both run
// the backends' average-pooling op; the global one is a single window over the whole map.
#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {
namespace {

backend::PoolGeometry avg_geometry(const AveragePooling2DOptions& o, const Shape& in, std::int64_t batch) {
  return layer_util::pool_geometry(MaxPooling2DOptions{o.pool_size, o.strides, o.padding}, in, batch);
}

backend::PoolGeometry global_geometry(const Shape& in, std::int64_t batch) {
  return {batch, in[0], in[1], in[2], in[0], in[1], in[0], in[1], 0, 0, 1, 1};
}

void require_image(const Shape& in, const std::string& name, const char* type) {
  if (in.size() != 3)
    throw InvalidArgument(fmt::format("Input 0 of layer '{}' ({}) is incompatible: expected ndim=4, found shape "
                                      "(None, {}", name, type, to_string(in).substr(1)));
}

}  // namespace

AveragePooling2D::AveragePooling2D(AveragePooling2DOptions options) : options_(std::move(options)) {
  layer_util::check_positive_pair(options_.pool_size, "pool_size");
  if (options_.strides) layer_util::check_positive_pair(*options_.strides, "strides");
  layer_util::parse_padding(options_.padding);
}

Shape AveragePooling2D::build(const Shape& in, std::uint64_t) {
  require_image(in, name_, "AveragePooling2D");
  const auto g = avg_geometry(options_, in, 1);
  if (g.oh <= 0 || g.ow <= 0)
    throw InvalidArgument(fmt::format("layer '{}': pool size {}x{} does not fit input {}", name_,
                                      options_.pool_size[0], options_.pool_size[1], to_string(in)));
  return finish_build(in, {g.oh, g.ow, in[2]});
}

void AveragePooling2D::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  ctx.backend.avgpool2d_forward(x, y, avg_geometry(options_, input_shape(), x.dim(0)));
}

void AveragePooling2D::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  if (dx != nullptr) ctx.backend.avgpool2d_backward(dy, *dx, avg_geometry(options_, input_shape(), x.dim(0)));
}

Shape GlobalAveragePooling2D::build(const Shape& in, std::uint64_t) {
  require_image(in, name_, "GlobalAveragePooling2D");
  return finish_build(in, {in[2]});
}

void GlobalAveragePooling2D::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  ctx.backend.avgpool2d_forward(x, y, global_geometry(input_shape(), x.dim(0)));
}

void GlobalAveragePooling2D::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  if (dx != nullptr) ctx.backend.avgpool2d_backward(dy, *dx, global_geometry(input_shape(), x.dim(0)));
}

}  // namespace dropnet
