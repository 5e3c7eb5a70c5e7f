// dropnet's dropout masks against cuRAND's device generator: mask element i at (seed, step) is drawn as
// curand_init(seed, subsequence = step, offset = 4 * (i / 4)) followed by curand_uniform4(), component
// i % 4 (kernels/dropout_math.hpp). The uniforms must agree exactly, and so must the GPU kernel's masks.
#include <string>

#include "cuda_test_support.hpp"
#include "curand_reference.hpp"
#include "kernels/dropout_math.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

TEST_CASE("Philox uniforms equal curand_init + curand_uniform4", "[cuda][dropout][curand]") {
  const std::int64_t n = 4099;  // not a multiple of 4
  for (std::uint64_t seed : {0ull, 1ull, 1234ull, 0xfedcba9876543210ull})
    for (std::uint64_t step : {0ull, 1ull, 55ull, (1ull << 32) + 1}) {
      const std::vector<float> reference = curand_uniforms(seed, step, n);
      std::vector<float> ours(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) {
        const kernels::PhiloxBlock b = kernels::philox_block(seed, step, static_cast<std::uint64_t>(i / 4));
        ours[static_cast<std::size_t>(i)] = kernels::uniform_from_bits(b.w[i % 4]);
      }
      expect_identical(ours, reference, "uniforms, seed " + std::to_string(seed) + " step " + std::to_string(step));
    }
}

TEST_CASE("the GPU dropout mask is u < keep_prob for cuRAND's u", "[cuda][dropout][curand]") {
  const Shape shape{3, 11, 7, 5};
  const std::int64_t n = element_count(shape);
  for (float rate : {0.2f, 0.5f, 0.9f}) {
    const std::uint64_t seed = 31337, step = 12;
    const float keep_prob = kernels::dropout_keep_prob(rate);
    const std::vector<float> u = curand_uniforms(seed, step, n);
    Tensor ones(shape, Device::CUDA);
    gpu().fill(ones.data(), static_cast<std::size_t>(n), 1.0f);
    Tensor y = device_sentinel(shape);
    gpu().dropout_forward(ones, y, backend::DropoutCall{seed, step, rate, shape, shape});
    const std::vector<float> out = host_values(y);
    std::size_t bad = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const bool keep = u[static_cast<std::size_t>(i)] < keep_prob;
      const float expected = keep ? 1.0f / keep_prob : 0.0f;
      bad += out[static_cast<std::size_t>(i)] != expected;
    }
    INFO("rate " << rate << ": " << bad << " of " << n << " mask elements differ from cuRAND's");
    CHECK(bad == 0);
  }
}
