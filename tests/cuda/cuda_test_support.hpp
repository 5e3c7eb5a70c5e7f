// cuda_test_support.hpp: helpers of the CUDA suite. Each op runs on both backends from the same host
// inputs; the CUDA outputs start as NaN (so an element the op never wrote fails) and are compared with the
// CPU's within atol + rtol * |ref|, printing the first mismatches.
#pragma once

#include "support/catch.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cuda/cuda_backend.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/tensor.hpp"
#include "support/testing.hpp"

namespace dropnet::cuda_testing {

// The op tests' backend contexts, one per device, made on first use (models make their own at compile).
inline backend::Backend& cpu() {
  static const std::unique_ptr<backend::Backend> context = backend::make_backend(Device::CPU);
  return *context;
}
inline backend::cuda::CudaBackend& gpu() {
  static const std::unique_ptr<backend::cuda::CudaBackend> context = [] {
    if (!cuda_available()) throw DeviceUnavailable("no CUDA GPU is visible");
    return std::make_unique<backend::cuda::CudaBackend>();
  }();
  return *context;
}

// Uniform values in [lo, hi), the same on every run (Philox stream `seed`).
inline Tensor host_random(Shape shape, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  return testing::random_tensor(std::move(shape), seed, lo, hi);
}

// A CUDA tensor of `shape` filled with NaN: whatever the op leaves unwritten shows up in the comparison.
// Filled through the memory layer (the legacy default stream), so it is ordered with every backend's stream.
inline Tensor device_sentinel(const Shape& shape) {
  Tensor t(shape, Device::CUDA);
  t.fill(std::numeric_limits<float>::quiet_NaN());
  return t;
}

// Synchronizes the GPU and copies back.
// A device copy of the host tensor `h` starting `offset` floats into its allocation: offset 1 gives
// pointers that are not 16-byte aligned, which sends the kernels down their scalar paths.
inline Tensor device_copy_at(const Tensor& h, std::int64_t offset) {
  Tensor big({h.size() + offset}, Device::CUDA);
  Tensor view = big.rows(offset, h.size() + offset).reshaped(h.shape());
  view.copy_from(h);
  return view;
}

inline std::vector<float> host_values(const Tensor& t) {
  gpu().synchronize();
  return t.to_vector();
}

struct Tolerance {
  double rtol = 1e-5;
  // Absolute part, as a fraction of the largest |ref| of the tensor: sums of products that cancel end
  // near 0 with a rounding error set by the size of their terms, not by their own size.
  double atol_scale = 1e-5;
};

// Checks every element of `actual` against `expected` (NaN never passes) and reports the first mismatches.
inline void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, const std::string& what,
                         Tolerance tol = {}) {
  REQUIRE(actual.size() == expected.size());
  double scale = 0;
  for (float e : expected) scale = std::max(scale, double(std::abs(e)));
  const double atol = tol.atol_scale * std::max(scale, 1.0);
  std::size_t bad = 0;
  double worst = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    const double err = std::abs(a - e), allowed = atol + tol.rtol * std::abs(e);
    if (!(err <= allowed)) {  // also catches NaN
      if (bad < 5) first << "  [" << i << "] cuda " << a << " cpu " << e << "\n";
      ++bad;
    }
    if (std::isfinite(err)) worst = std::max(worst, err / allowed);
  }
  INFO(what << ": " << bad << " of " << actual.size() << " elements outside atol " << atol << " + rtol "
            << tol.rtol << " * |cpu| (worst ratio " << worst << ")\n"
            << first.str());
  CHECK(bad == 0);
}

inline void expect_close(const Tensor& actual_device, const Tensor& expected_host, const std::string& what,
                         Tolerance tol = {}) {
  expect_close(host_values(actual_device), expected_host.to_vector(), what, tol);
}

inline void expect_identical(const std::vector<float>& actual, const std::vector<float>& expected,
                             const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  std::size_t bad = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    // Bitwise: +0 and -0 or two NaNs are not "the same" here unless their bits are.
    std::uint32_t a, e;
    std::memcpy(&a, &actual[i], 4);
    std::memcpy(&e, &expected[i], 4);
    if (a != e) {
      if (bad < 5) first << "  [" << i << "] cuda " << actual[i] << " cpu " << expected[i] << "\n";
      ++bad;
    }
  }
  INFO(what << ": " << bad << " of " << actual.size() << " elements differ bitwise\n" << first.str());
  CHECK(bad == 0);
}

}  // namespace dropnet::cuda_testing
