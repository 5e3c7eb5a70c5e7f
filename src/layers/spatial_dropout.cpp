// spatial_dropout.cpp: keras.layers.SpatialDropout1D/2D/3D (channels_last). As in Keras
// (layers/regularization/spatial_dropout.py: BaseSpatialDropout(Dropout)), each is a Dropout whose noise
// shape keeps the batch and channel axes and sets every other axis to 1: (N, 1, C), (N, 1, 1, C),
// (N, 1, 1, 1, C). The rate check, the seed generator, the schedule, the 0/1 shortcuts and the op (Dropout's
// broadcast mask, kernels/dropout_math.hpp) are Dropout's; what is added is Keras' InputSpec(ndim=3/4/5)
// check, made at build time with its wording, before Dropout's own noise_shape check could fire.
#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"

namespace dropnet {
namespace {

// Dropout's options for a spatial dropout of input rank `rank` (batch included).
DropoutOptions spatial_options(std::size_t rank, RandomLayerOptions options) {
  DropoutOptions o;
  o.noise_shape.assign(rank, std::optional<std::int64_t>(1));
  o.noise_shape.front() = std::nullopt;  // the batch
  o.noise_shape.back() = std::nullopt;   // the channels
  o.seed = options.seed;
  o.schedule = options.schedule;
  return o;
}

// Keras' InputSpec(ndim=...) error (layers/input_spec.py, assert_input_compatibility); `in` excludes the batch.
void check_ndim(const Shape& in, std::size_t ndim, const std::string& layer) {
  if (in.size() + 1 == ndim) return;
  std::string dims = "(None";
  for (std::int64_t d : in) dims += fmt::format(", {}", d);
  dims += in.empty() ? ",)" : ")";
  throw InvalidArgument(fmt::format("Input 0 with name 'None' of layer '{}' is incompatible with the layer: expected "
                                    "ndim={}, found ndim={}. Full shape received: {}",
                                    layer, ndim, in.size() + 1, dims));
}

}  // namespace

SpatialDropout1D::SpatialDropout1D(double rate, RandomLayerOptions options)
    : Dropout(rate, spatial_options(3, std::move(options))) {}

Shape SpatialDropout1D::build(const Shape& input_shape, std::uint64_t seed) {
  check_ndim(input_shape, 3, name_);
  return Dropout::build(input_shape, seed);
}

SpatialDropout2D::SpatialDropout2D(double rate, RandomLayerOptions options)
    : Dropout(rate, spatial_options(4, std::move(options))) {}

Shape SpatialDropout2D::build(const Shape& input_shape, std::uint64_t seed) {
  check_ndim(input_shape, 4, name_);
  return Dropout::build(input_shape, seed);
}

SpatialDropout3D::SpatialDropout3D(double rate, RandomLayerOptions options)
    : Dropout(rate, spatial_options(5, std::move(options))) {}

Shape SpatialDropout3D::build(const Shape& input_shape, std::uint64_t seed) {
  check_ndim(input_shape, 5, name_);
  return Dropout::build(input_shape, seed);
}

}  // namespace dropnet
