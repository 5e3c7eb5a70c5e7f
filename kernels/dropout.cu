// dropout.cu: Keras' Dropout forward and backward on the GPU (the rule: kernels/dropout_math.hpp).
//
// The masks come from cuRAND's device API: mask element i at (seed, step) is component i % 4 of
//   curand_init(seed, /*subsequence=*/step, /*offset=*/4 * (i / 4), &state); curand_uniform4(&state)
// kept when it is < keep_prob (dropout_keep_uniform). kernels/philox.hpp computes the same words on the
// CPU (philox_block + uniform_from_bits), so the two backends draw identical masks bit for bit
// (tests/cuda/test_curand_mask.cpp checks 10^6 (seed, step, element) triples). The mask is a pure function
// of (seed, step, i): backward regenerates it (nothing is stored) and the launch shape never enters it.
//
//   y = keep ? x / keep_prob : 0        (forward on x, backward on dy: d(x / p)/dx = 1 / p)
//
// With DropoutLaunch::slot the step and the rate are read there (the layer's slot of the model's step
// state) by each thread when the kernel runs, so one recorded launch (a CUDA graph) draws the mask of
// whichever step it replays, at that step's rate (a schedule may make it 0 or 1: dropout_rate_edge).
#include "kernels/launch.cuh"

#include <curand_kernel.h>

#include "kernels/dropout_math.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

// The mask's step and rate: the slot's when it is given, else the launch's.
struct StepAndRate {
  std::uint64_t step;
  float rate;
};
__device__ __forceinline__ StepAndRate step_and_rate(const StepSlot* slot, std::uint64_t step, float rate) {
  return slot != nullptr ? StepAndRate{slot->step, slot->rate} : StepAndRate{step, rate};
}

// out = in (edge 1) or 0 (edge 0) for a rate no draw decides.
__device__ __forceinline__ void apply_edge(const float* in, float* out, std::int64_t count, int edge) {
  DROPNET_GRID_STRIDE(i, count) { out[i] = edge == 1 ? in[i] : 0.0f; }
}

// The four uniforms of mask elements 4 * group .. 4 * group + 3.
__device__ __forceinline__ float4 mask_uniforms(std::uint64_t seed, std::uint64_t step, std::uint64_t group) {
  curandStatePhilox4_32_10_t state;
  curand_init(seed, step, 4 * group, &state);
  return curand_uniform4(&state);
}

__device__ __forceinline__ float component(const float4& u, int c) {
  return c == 0 ? u.x : c == 1 ? u.y : c == 2 ? u.z : u.w;
}

// Mask shape == input shape: thread handles group j = elements 4j .. 4j+3, one generator call per four
// elements, with 16-byte loads and stores when both pointers allow them (kVector).
template <bool kVector>
__global__ void dropout_contiguous(const float* in, float* out, std::int64_t count, std::uint64_t seed,
                                   const StepSlot* slot, std::uint64_t step_value, float rate_value) {
  const auto [step, rate] = step_and_rate(slot, step_value, rate_value);
  if (const int edge = dropout_rate_edge(rate); edge >= 0) return apply_edge(in, out, count, edge);
  const float keep_prob = dropout_keep_prob(rate);
  const std::int64_t groups = (count + 3) / 4;
  DROPNET_GRID_STRIDE(j, groups) {
    const float4 u = mask_uniforms(seed, step, static_cast<std::uint64_t>(j));
    const std::int64_t base = 4 * j;
    if (kVector && base + 4 <= count) {
      float4 v = reinterpret_cast<const float4*>(in)[j];
      v.x = dropout_apply(v.x, dropout_keep_uniform(u.x, keep_prob), keep_prob);
      v.y = dropout_apply(v.y, dropout_keep_uniform(u.y, keep_prob), keep_prob);
      v.z = dropout_apply(v.z, dropout_keep_uniform(u.z, keep_prob), keep_prob);
      v.w = dropout_apply(v.w, dropout_keep_uniform(u.w, keep_prob), keep_prob);
      reinterpret_cast<float4*>(out)[j] = v;
    } else {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if (base + c < count)
          out[base + c] = dropout_apply(in[base + c], dropout_keep_uniform(component(u, c), keep_prob), keep_prob);
      }
    }
  }
}

// noise_shape with 1s: the mask index of element i drops the coordinates of broadcast dims
// (dropout_mask_index). One generator call per element: the general path, for broadcasts that are not a
// single run of dims (those take dropout_run).
__global__ void dropout_broadcast(const float* in, float* out, DropoutLaunch call) {
  const auto [step, rate] = step_and_rate(call.slot, call.step, call.rate);
  if (const int edge = dropout_rate_edge(rate); edge >= 0) return apply_edge(in, out, call.count, edge);
  const float keep_prob = dropout_keep_prob(rate);
  DROPNET_GRID_STRIDE(i, call.count) {
    const auto m = static_cast<std::uint64_t>(dropout_mask_index(i, call));
    const float u = component(mask_uniforms(call.seed, step, m / 4), static_cast<int>(m % 4));
    out[i] = dropout_apply(in[i], dropout_keep_uniform(u, keep_prob), keep_prob);
  }
}

// The run form of the broadcast (dropout_run_broadcast: the input (outer, middle, inner), the mask (outer,
// 1, inner), e.g. SpatialDropout's (N, spatial, C)): a thread draws the uniform of one mask element a * inner + c
// once and applies it to kDropoutRun consecutive middle positions b, so a spatial extent of S costs
// ceil(S / kDropoutRun) generator calls per channel instead of S. Neighbouring threads take neighbouring c,
// so each of the thread's loads and stores is coalesced across the warp. Same uniforms, same masks.
constexpr std::int64_t kDropoutRun = 16;
__global__ void dropout_run(const float* in, float* out, DropoutLaunch call, DropoutRunBroadcast shape) {
  const auto [step, rate] = step_and_rate(call.slot, call.step, call.rate);
  if (const int edge = dropout_rate_edge(rate); edge >= 0) return apply_edge(in, out, call.count, edge);
  const float keep_prob = dropout_keep_prob(rate);
  const std::int64_t chunks = (shape.middle + kDropoutRun - 1) / kDropoutRun;
  DROPNET_GRID_STRIDE(j, shape.outer * shape.inner * chunks) {
    const std::int64_t c = j % shape.inner, a = (j / shape.inner) % shape.outer, chunk = j / (shape.inner * shape.outer);
    const auto m = static_cast<std::uint64_t>(a * shape.inner + c);
    const bool keep = dropout_keep_uniform(component(mask_uniforms(call.seed, step, m / 4), static_cast<int>(m % 4)),
                                           keep_prob);
    const std::int64_t b_end = (chunk + 1) * kDropoutRun < shape.middle ? (chunk + 1) * kDropoutRun : shape.middle;
    for (std::int64_t b = chunk * kDropoutRun; b < b_end; ++b) {
      const std::int64_t i = (a * shape.middle + b) * shape.inner + c;
      out[i] = dropout_apply(in[i], keep, keep_prob);
    }
  }
}

}  // namespace

void launch_dropout(const float* in, float* out, const DropoutLaunch& call, void* stream) {
  if (call.count <= 0) return;
  const auto count = static_cast<std::size_t>(call.count);
  if (call.broadcast) {
    if (const DropoutRunBroadcast run = dropout_run_broadcast(call); run.run) {
      const auto items = static_cast<std::size_t>(run.outer * run.inner * ((run.middle + kDropoutRun - 1) / kDropoutRun));
      DROPNET_LAUNCH_LINEAR(dropout_run, items, stream, in, out, call, run);
    } else {
      DROPNET_LAUNCH_LINEAR(dropout_broadcast, count, stream, in, out, call);
    }
  } else if (detail::aligned16(in) && detail::aligned16(out)) {
    DROPNET_LAUNCH_LINEAR(dropout_contiguous<true>, (count + 3) / 4, stream, in, out,
                          call.count, call.seed, call.slot, call.step, call.rate);
  } else {
    DROPNET_LAUNCH_LINEAR(dropout_contiguous<false>, (count + 3) / 4, stream, in,
                          out, call.count, call.seed, call.slot, call.step, call.rate);
  }
}

}  // namespace dropnet::kernels
