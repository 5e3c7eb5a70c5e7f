// testing.hpp: small helpers shared by the CPU tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dropnet/model.hpp"
#include "dropnet/tensor.hpp"
#include "kernels/philox.hpp"

namespace dropnet::testing {

// Deterministic uniform values in [lo, hi) from Philox (stream `stream` of `seed`).
template <typename T = float>
std::vector<T> uniform(std::size_t n, double lo, double hi, std::uint64_t seed, std::uint64_t stream = 0) {
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto b = kernels::philox_block(seed, stream, i);
    const double u = (double(b.w[0]) + double(b.w[1]) / 4294967296.0) / 4294967296.0;
    v[i] = T(lo + (hi - lo) * u);
  }
  return v;
}

inline Tensor tensor(Shape shape, const std::vector<float>& values) { return Tensor::from_vector(std::move(shape), values); }

inline Tensor random_tensor(Shape shape, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  const auto n = static_cast<std::size_t>(element_count(shape));
  return Tensor::from_vector(std::move(shape), uniform<float>(n, lo, hi, seed));
}

// Largest |a - b| / (atol + rtol * |b|) over the elements: <= 1 means "within tolerance".
template <typename A, typename B>
double worst_ratio(const A& a, const B& b, double atol, double rtol) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - double(b[i])) / (atol + rtol * std::abs(double(b[i]))));
  return worst;
}

// Every parameter of the model, layer by layer, as host floats (to compare two runs' weights).
inline std::vector<float> all_weights(const Sequential& m) {
  std::vector<float> out;
  for (std::size_t i = 0; i < m.layer_count(); ++i)
    for (const Param& p : m.layer(i).params()) {
      const std::vector<float> v = p.value.to_vector();
      out.insert(out.end(), v.begin(), v.end());
    }
  return out;
}

}  // namespace dropnet::testing
