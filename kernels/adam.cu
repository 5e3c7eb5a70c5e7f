// adam.cu: Keras' Adam over every parameter of the model in one launch (the parameters, gradients and
// both moments are each one contiguous arena). The per-element update is kernels/adam_math.hpp:
//   m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  var -= m * alpha / (sqrt(v) + eps)
//
// This file is compiled with -fmad=false (src/backend/cuda/sources.cmake): nvcc would otherwise contract
// those products and sums into FMAs, and the GPU's parameters would drift from the CPU's in the last bits.
// With it, every operation rounds as on the host (IEEE division and sqrtf, no --use_fast_math): the same bits.
//
// With an alpha table (fit), alpha is alpha_by_batch[*batch], read when the kernel runs, so one recorded
// launch (a CUDA graph) applies whichever step it replays.
#include "kernels/adam_math.hpp"
#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

// kVector: all four arrays 16-byte aligned, so thread j updates elements 4j .. 4j+3 with 16-byte accesses
// (the kernel is bound by memory: 4 reads and 3 writes per parameter).
template <bool kVector>
__global__ void adam_kernel(float* params, const float* grads, float* m, float* v, std::int64_t count, AdamStep s,
                            const float* alpha_by_batch, const std::int64_t* batch) {
  if (alpha_by_batch != nullptr) s.alpha = alpha_by_batch[*batch];
  if (kVector) {
    const std::int64_t quads = count / 4;
    DROPNET_GRID_STRIDE(j, quads) {
      float4 p = reinterpret_cast<float4*>(params)[j];
      const float4 g = reinterpret_cast<const float4*>(grads)[j];
      float4 mm = reinterpret_cast<float4*>(m)[j];
      float4 vv = reinterpret_cast<float4*>(v)[j];
      adam_update(p.x, mm.x, vv.x, g.x, s);
      adam_update(p.y, mm.y, vv.y, g.y, s);
      adam_update(p.z, mm.z, vv.z, g.z, s);
      adam_update(p.w, mm.w, vv.w, g.w, s);
      reinterpret_cast<float4*>(params)[j] = p;
      reinterpret_cast<float4*>(m)[j] = mm;
      reinterpret_cast<float4*>(v)[j] = vv;
    }
    // The last count % 4 elements: the first threads of the grid take one each.
    const std::int64_t i = 4 * quads + detail::global_thread();
    if (i < count) adam_update(params[i], m[i], v[i], grads[i], s);
  } else {
    DROPNET_GRID_STRIDE(i, count) { adam_update(params[i], m[i], v[i], grads[i], s); }
  }
}

}  // namespace

void launch_adam(float* params, const float* grads, float* m, float* v, std::size_t count, const AdamStep& step,
                 const float* alpha_by_batch, const std::int64_t* batch, void* stream) {
  const auto n = static_cast<std::int64_t>(count);
  if (batch == nullptr) alpha_by_batch = nullptr;  // a table needs both
  if (detail::aligned16(params) && detail::aligned16(grads) && detail::aligned16(m) && detail::aligned16(v)) {
    // At least 4 threads so that the tail (up to 3 elements) always has takers.
    DROPNET_LAUNCH_LINEAR(adam_kernel<true>, count / 4 + 4, stream, params, grads, m, v, n,
                          step, alpha_by_batch, batch);
  } else {
    DROPNET_LAUNCH_LINEAR(adam_kernel<false>, count, stream, params, grads, m, v, n, step,
                          alpha_by_batch, batch);
  }
}

void launch_adam(float* params, const float* grads, float* m, float* v, std::size_t count, const AdamStep& step,
                 void* stream) {
  launch_adam(params, grads, m, v, count, step, nullptr, nullptr, stream);
}

}  // namespace dropnet::kernels
