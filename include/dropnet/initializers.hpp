// initializers.hpp: Keras' weight initializers. Values are drawn on the host from Philox4x32-10 keyed by
// the layer's seed, so a seed gives the same initial weights on every device.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "dropnet/export.hpp"
#include "dropnet/tensor.hpp"

namespace dropnet {

// Keras' compute_fans: (in, out) -> fan_in = in, fan_out = out; (kh, kw, in, out) -> fan_in = kh*kw*in,
// fan_out = kh*kw*out; a 1-D shape (a bias) has fan_in = fan_out = its length.
DROPNET_EXPORT std::pair<double, double> compute_fans(const Shape& keras_shape);

// True for the names initialize() accepts: glorot_uniform, glorot_normal, he_uniform, he_normal, zeros, ones.
DROPNET_EXPORT bool is_initializer(std::string_view name) noexcept;

// Fills the host tensor `out` (whose shape is the Keras shape of the weight) with `name`'s distribution:
//   he_uniform      U[-l, l], l = sqrt(6 / fan_in)
//   glorot_uniform  U[-l, l], l = sqrt(6 / (fan_in + fan_out))
//   he_normal       truncated normal (cut at 2 sd), sd = sqrt(2 / fan_in) / .87962566103423978
//   glorot_normal   truncated normal (cut at 2 sd), sd = sqrt(2 / (fan_in + fan_out)) / .87962566103423978
//   zeros, ones
// Throws InvalidArgument for an unknown name or a tensor not on the CPU.
DROPNET_EXPORT void initialize(std::string_view name, Tensor& out, std::uint64_t seed);

}  // namespace dropnet
