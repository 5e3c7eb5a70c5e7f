// dropout.cu: Keras' Dropout forward and backward on the GPU (the math: kernels/dropout_math.hpp).
//
// Mask element i at (seed, step) is word i % 4 of philox_block(seed, step, i / 4): the draw of
// curand_init(seed, step, 4 * (i / 4)) + curand_uniform4(). It is a pure function of (seed, step, i), so
// the CPU backend computes the same mask bit for bit, backward regenerates it (nothing is stored), and
// the launch shape never enters it.
//
//   y = keep ? x / keep_prob : 0        (forward on x, backward on dy: d(x / p)/dx = 1 / p)
//
// With DropoutLaunch::iteration the step is *iteration + step, read by each thread when the kernel runs
// (fit's StepCounters), so one recorded launch (a CUDA graph) draws the mask of whichever step it replays.
#include "kernels/dropout_math.hpp"
#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

// Mask shape == input shape: thread handles Philox block j = elements 4j .. 4j+3, one generator call per
// four elements, with 16-byte loads and stores when both pointers allow them (kVector).
// The mask's step: `step`, or *iteration + step (uint64 wraparound, as on the CPU) when it is given.
__device__ __forceinline__ std::uint64_t mask_step(const std::uint64_t* iteration, std::uint64_t step) {
  return iteration != nullptr ? *iteration + step : step;
}

template <bool kVector>
__global__ void dropout_contiguous(const float* in, float* out, std::int64_t count, std::uint64_t seed,
                                   const std::uint64_t* iteration, std::uint64_t step_offset, float keep_prob) {
  const std::uint64_t step = mask_step(iteration, step_offset);
  const std::int64_t blocks = (count + 3) / 4;
  DROPNET_GRID_STRIDE(j, blocks) {
    const PhiloxBlock r = philox_block(seed, step, static_cast<std::uint64_t>(j));
    const std::int64_t base = 4 * j;
    if (kVector && base + 4 <= count) {
      float4 v = reinterpret_cast<const float4*>(in)[j];
      v.x = dropout_apply(v.x, dropout_keep(r.w[0], keep_prob), keep_prob);
      v.y = dropout_apply(v.y, dropout_keep(r.w[1], keep_prob), keep_prob);
      v.z = dropout_apply(v.z, dropout_keep(r.w[2], keep_prob), keep_prob);
      v.w = dropout_apply(v.w, dropout_keep(r.w[3], keep_prob), keep_prob);
      reinterpret_cast<float4*>(out)[j] = v;
    } else {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if (base + c < count) out[base + c] = dropout_apply(in[base + c], dropout_keep(r.w[c], keep_prob), keep_prob);
      }
    }
  }
}

// noise_shape with 1s: the mask index of element i drops the coordinates of broadcast dims (their mask
// stride is 0). One generator call per element; this path serves SpatialDropout-style masks only.
__global__ void dropout_broadcast(const float* in, float* out, DropoutLaunch call) {
  const std::uint64_t step = mask_step(call.iteration, call.step);
  DROPNET_GRID_STRIDE(i, call.count) {
    std::int64_t rest = i, mask_index = 0;
    for (int d = call.rank - 1; d >= 0; --d) {
      const std::int64_t coord = rest % call.dims[d];
      rest /= call.dims[d];
      mask_index += coord * call.mask_stride[d];
    }
    const bool keep = dropout_keep_at(call.seed, step, static_cast<std::uint64_t>(mask_index), call.keep_prob);
    out[i] = dropout_apply(in[i], keep, call.keep_prob);
  }
}

}  // namespace

void launch_dropout(const float* in, float* out, const DropoutLaunch& call, void* stream) {
  if (call.count <= 0) return;
  const auto count = static_cast<std::size_t>(call.count);
  if (call.broadcast) {
    detail::launch_linear("dropout_broadcast", dropout_broadcast, count, stream, in, out, call);
  } else if (detail::aligned16(in) && detail::aligned16(out)) {
    detail::launch_linear("dropout_contiguous<vector>", dropout_contiguous<true>, (count + 3) / 4, stream, in, out,
                          call.count, call.seed, call.iteration, call.step, call.keep_prob);
  } else {
    detail::launch_linear("dropout_contiguous<scalar>", dropout_contiguous<false>, (count + 3) / 4, stream, in,
                          out, call.count, call.seed, call.iteration, call.step, call.keep_prob);
  }
}

}  // namespace dropnet::kernels
