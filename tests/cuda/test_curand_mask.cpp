// The GPU's dropout masks come from cuRAND's device API (kernels/dropout.cu); the CPU's from
// kernels/philox.hpp. These tests prove the two the same: first the generators themselves, with
// curand_kernel.h compiled for the host (cuRAND's device API is a header with host code paths), then the
// masks the dropout kernel actually applies.
#define QUALIFIERS static inline
#include <curand_kernel.h>

#include <cstring>
#include <random>
#include <string>

#include "cuda_test_support.hpp"
#include "kernels/dropout_math.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

// What a dropout thread draws for mask elements 4 * group .. 4 * group + 3.
float4 curand_group(std::uint64_t seed, std::uint64_t step, std::uint64_t group) {
  curandStatePhilox4_32_10_t state;
  curand_init(seed, step, 4 * group, &state);
  return curand_uniform4(&state);
}

std::uint32_t bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

}  // namespace

TEST_CASE("cuRAND's curand_init + curand_uniform4 equals kernels/philox.hpp on 10^6 (seed, step, element) triples",
          "[cuda][dropout][curand]") {
  // Edge values: counter words that carry across 2^32 (group 2^32 - 1 -> 2^32), the largest subsequence
  // and offset, and seeds whose halves are 0 or all ones; the rest drawn at random.
  const std::uint64_t edges[] = {0ull, 1ull, 2ull, 0xFFFFFFFFull, 0x100000000ull, 0x100000001ull,
                                 0xFFFFFFFFFFFFFFFFull, 0x3FFFFFFFFFFFFFFFull, 0x123456789ABCDEFull};
  std::mt19937_64 rng(20261129);
  std::size_t checked = 0, mismatched = 0;
  std::string first;
  auto check = [&](std::uint64_t seed, std::uint64_t step, std::uint64_t group) {
    const float4 u = curand_group(seed, step, group);
    const float ours_u[4] = {u.x, u.y, u.z, u.w};
    const kernels::PhiloxBlock b = kernels::philox_block(seed, step, group);
    for (int c = 0; c < 4; ++c) {
      ++checked;
      if (bits(ours_u[c]) != bits(kernels::uniform_from_bits(b.w[c]))) {
        if (mismatched++ == 0)
          first = "seed " + std::to_string(seed) + " step " + std::to_string(step) + " element " +
                  std::to_string(4 * group + static_cast<std::uint64_t>(c));
      }
    }
  };
  for (std::uint64_t seed : edges)
    for (std::uint64_t step : edges)
      for (std::uint64_t group : edges) check(seed, step, group & 0x3FFFFFFFFFFFFFFFull);  // 4 * group fits in 64 bits
  while (checked < 1'000'000) {
    const std::uint64_t seed = rng(), step = rng() >> (rng() % 64), group = (rng() >> 2) >> (rng() % 62);
    check(seed, step, group);
  }
  INFO(mismatched << " of " << checked << " uniforms differ; first at " << first);
  CHECK(checked >= 1'000'000);
  CHECK(mismatched == 0);
}

TEST_CASE("the GPU dropout mask is u < keep_prob for cuRAND's u, the last partial group of four included",
          "[cuda][dropout][curand]") {
  // 1155 elements: 288 whole groups of four and a last group of three. Offsets 0 and 1 into an allocation
  // exercise the vector and the scalar kernel.
  const Shape shape{3, 11, 7, 5};
  const std::int64_t n = element_count(shape);
  for (std::int64_t offset : {std::int64_t{0}, std::int64_t{1}})
    for (float rate : {0.2f, 0.5f, 0.9f})
      for (std::uint64_t step : {12ull, 0xFFFFFFFFull, 0x100000000ull}) {
        const std::uint64_t seed = 31337;
        const float keep_prob = kernels::dropout_keep_prob(rate);
        Tensor ones_host(shape);
        std::fill(ones_host.data(), ones_host.data() + n, 1.0f);
        const Tensor ones = device_copy_at(ones_host, offset);
        Tensor y = device_sentinel(shape);
        gpu().dropout_forward(ones, y, backend::DropoutCall{seed, step, rate, shape, shape});
        const std::vector<float> out = host_values(y);
        std::size_t bad = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          const float4 u = curand_group(seed, step, static_cast<std::uint64_t>(i / 4));
          const float ui = i % 4 == 0 ? u.x : i % 4 == 1 ? u.y : i % 4 == 2 ? u.z : u.w;
          const float expected = ui < keep_prob ? 1.0f / keep_prob : 0.0f;
          bad += bits(out[static_cast<std::size_t>(i)]) != bits(expected);
        }
        INFO("rate " << rate << " step " << step << " offset " << offset << ": " << bad << " of " << n
                     << " mask elements differ from cuRAND's");
        CHECK(bad == 0);
      }
}
