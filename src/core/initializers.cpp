// initializers.cpp: Keras' VarianceScaling family, drawn from Philox4x32-10 so that a seed gives the same
// weights on every platform and device (std:: distributions are not portable across standard libraries).
#include "dropnet/initializers.hpp"

#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "kernels/philox.hpp"

namespace dropnet {

std::pair<double, double> compute_fans(const Shape& s) {
  if (s.empty()) return {1.0, 1.0};
  if (s.size() == 1) return {double(s[0]), double(s[0])};
  if (s.size() == 2) return {double(s[0]), double(s[1])};
  double receptive = 1.0;
  for (std::size_t i = 0; i + 2 < s.size(); ++i) receptive *= double(s[i]);
  return {receptive * double(s[s.size() - 2]), receptive * double(s[s.size() - 1])};
}

bool is_initializer(std::string_view n) noexcept {
  return n == "glorot_uniform" || n == "glorot_normal" || n == "he_uniform" || n == "he_normal" ||
         n == "zeros" || n == "ones";
}

namespace {

// Uniform in [0, 1) with 24 random bits: element i reads word i % 4 of block i / 4 of stream 0.
float uniform01(std::uint64_t seed, std::uint64_t i) {
  const auto b = kernels::philox_block(seed, 0, i / 4);
  return float(b.w[i % 4] >> 8) * (1.0f / 16777216.0f);
}

// Standard normal truncated to [-2, 2] (Keras' TruncatedNormal), by Box-Muller with rejection; element i
// draws from its own stream (subsequence i + 1) so the result does not depend on the tensor's size.
float truncated_normal(std::uint64_t seed, std::uint64_t i) {
  for (std::uint64_t attempt = 0;; ++attempt) {
    const auto b = kernels::philox_block(seed, i + 1, attempt);
    for (int pair = 0; pair < 2; ++pair) {
      const double u1 = (double(b.w[2 * pair]) + 1.0) / 4294967297.0;  // (0, 1)
      const double u2 = double(b.w[2 * pair + 1]) / 4294967296.0;
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
      if (std::abs(z) <= 2.0) return float(z);
    }
  }
}

}  // namespace

void initialize(std::string_view name, Tensor& out, std::uint64_t seed) {
  if (out.device() != Device::CPU) throw InvalidArgument("initialize(): the tensor must be on the CPU");
  if (!is_initializer(name))
    throw InvalidArgument(fmt::format("unknown initializer '{}'; expected glorot_uniform, glorot_normal, "
                                      "he_uniform, he_normal, zeros or ones", name));
  auto v = out.host();
  if (name == "zeros" || name == "ones") {
    std::fill(v.begin(), v.end(), name == "ones" ? 1.0f : 0.0f);
    return;
  }
  const auto [fan_in, fan_out] = compute_fans(out.shape());
  const bool he = name.starts_with("he_");
  // VarianceScaling: he_* is scale 2 over fan_in, glorot_* scale 1 over the mean of the fans.
  const double scale = he ? 2.0 / std::max(1.0, fan_in) : 1.0 / std::max(1.0, (fan_in + fan_out) / 2.0);
  if (name.ends_with("_uniform")) {
    const double limit = std::sqrt(3.0 * scale);
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = float(-limit + 2.0 * limit * double(uniform01(seed, i)));
  } else {
    const double stddev = std::sqrt(scale) / .87962566103423978;
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(stddev * double(truncated_normal(seed, i)));
  }
}

}  // namespace dropnet
