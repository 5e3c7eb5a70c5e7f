// noise.cu: Keras' GaussianDropout, GaussianNoise and AlphaDropout on the GPU (the formulas:
// kernels/noise_math.hpp; the normals: kernels/normal_math.hpp).
//
// The raw words come from cuRAND's device API, as dropout.cu's: the four words of elements 4j .. 4j + 3 at
// (seed, step) are curand_init(seed, /*subsequence=*/step, /*offset=*/4 * j, &state) + curand4(&state),
// which are philox_block(seed, step, j) on the CPU (tests/cuda/test_curand_mask.cpp). Everything after the
// words is the shared header code, built from correctly rounded operations only, and this file is compiled
// with --fmad=false (src/backend/cuda/sources.cmake; -ffp-contract=off on the emulated device), so the
// outputs are the CPU backend's bit for bit. Backward regenerates the draws; nothing is stored.
//
// With NoiseLaunch::slot the step and the rate (GaussianNoise: the stddev) are read there by each thread
// when the kernel runs, so a recorded launch (a CUDA graph) draws the values of whichever step it replays.
#include "kernels/launch.cuh"

#include <curand_kernel.h>

#include "kernels/launchers.hpp"
#include "kernels/noise_math.hpp"

namespace dropnet::kernels {
namespace {

// The call's parameters for the step and rate read now (the slot's, when there is one).
__device__ __forceinline__ NoiseParams params_now(const NoiseLaunch& call, std::uint64_t& step) {
  const float rate = call.slot != nullptr ? call.slot->rate : call.rate;
  step = call.slot != nullptr ? call.slot->step : call.step;
  return noise_params(static_cast<NoiseKind>(call.kind), rate);
}

__device__ __forceinline__ uint4 block_words(std::uint64_t seed, std::uint64_t step, std::uint64_t group) {
  curandStatePhilox4_32_10_t state;
  curand_init(seed, step, 4 * group, &state);
  return curand4(&state);
}

// Mask shape == input shape (every kind): thread handles group j = elements 4j .. 4j + 3, one generator
// call per four elements.
__global__ void noise_contiguous(const float* in, float* out, NoiseLaunch call) {
  std::uint64_t step = 0;
  const NoiseParams p = params_now(call, step);
  const bool plain_copy = p.edge >= 0 || (call.backward && p.kind == NoiseKind::GaussianNoise);
  const std::int64_t groups = (call.count + 3) / 4;
  DROPNET_GRID_STRIDE(j, groups) {
    const std::int64_t base = 4 * j;
    const int count = call.count - base < 4 ? static_cast<int>(call.count - base) : 4;
    if (plain_copy) {
      for (int c = 0; c < count; ++c) out[base + c] = p.edge >= 0 ? noise_edge_value(p.edge, in[base + c]) : in[base + c];
      continue;
    }
    const uint4 w = block_words(call.seed, step, static_cast<std::uint64_t>(j));
    if (noise_draws_normals(p.kind)) {
      const NormalPair lo = normal_pair(w.x, w.y), hi = normal_pair(w.z, w.w);
      const float normals[4] = {lo.first, lo.second, hi.first, hi.second};
#pragma unroll
      for (int c = 0; c < 4; ++c)
        if (c < count) out[base + c] = noise_apply(p, call.backward, in[base + c], normals[c], false);
    } else {
      const std::uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
      for (int c = 0; c < 4; ++c)
        if (c < count)
          out[base + c] = noise_apply(p, call.backward, in[base + c], 0.0f, dropout_keep(words[c], p.keep_prob));
    }
  }
}

// AlphaDropout with a noise_shape of 1s: the mask index of element i drops the coordinates of broadcast dims
// (dropout_mask_index); one generator call per element.
__global__ void noise_broadcast(const float* in, float* out, NoiseLaunch call) {
  std::uint64_t step = 0;
  const NoiseParams p = params_now(call, step);
  DROPNET_GRID_STRIDE(i, call.count) {
    if (p.edge >= 0) {
      out[i] = noise_edge_value(p.edge, in[i]);
      continue;
    }
    const auto m = static_cast<std::uint64_t>(dropout_mask_index(i, call));
    const uint4 w = block_words(call.seed, step, m / 4);
    const int c = static_cast<int>(m % 4);
    const std::uint32_t word = c == 0 ? w.x : c == 1 ? w.y : c == 2 ? w.z : w.w;
    out[i] = noise_apply(p, call.backward, in[i], 0.0f, dropout_keep(word, p.keep_prob));
  }
}

}  // namespace

void launch_noise(const float* in, float* out, const NoiseLaunch& call, void* stream) {
  if (call.count <= 0) return;
  const auto count = static_cast<std::size_t>(call.count);
  if (call.broadcast) {
    DROPNET_LAUNCH_LINEAR(noise_broadcast, count, stream, in, out, call);
  } else {
    DROPNET_LAUNCH_LINEAR(noise_contiguous, (count + 3) / 4, stream, in, out, call);
  }
}

}  // namespace dropnet::kernels
