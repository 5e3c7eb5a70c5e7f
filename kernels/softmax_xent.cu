// softmax_xent.cu: softmax cross-entropy on logits, its gradient and the accuracy count, in one pass. The
// math, the order of every sum and the launch shape that fixes it: kernels/softmax_xent_math.hpp (the CPU
// runs the same expressions in the same order).
//
// One warp per row; the warp's lanes are row_math.hpp's lanes, their butterfly the __shfl_xor_sync loops
// below. The per-row losses and hits are summed per block, in a fixed order, into `partials`; a second
// one-block launch adds the partials up in a fixed order and adds them to stats. Nothing uses atomics, so
// the loss is the same on every run (and under graph replay).
#include <climits>

#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"
#include "kernels/softmax_xent_math.hpp"

namespace dropnet::kernels {
namespace {

constexpr int kWarps = kXentWarpsPerBlock;
static_assert(kWarps * 32 == detail::kBlock && kXentTotalThreads == detail::kBlock);

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The first maximum over the warp (combine_first_max, row_math.hpp).
__device__ __forceinline__ void warp_argmax(float& value, int& index) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, value, o);
    const int i = __shfl_xor_sync(0xffffffffu, index, o);
    combine_first_max(value, index, v, i);
  }
}

__global__ void softmax_xent_rows(const float* z, const float* t, float* dz, float grad_scale, std::int64_t rows,
                                  std::int64_t cols, float* partials) {
  __shared__ float block_loss[kWarps], block_hits[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float loss = 0.0f, hits = 0.0f;  // this warp's rows (meaningful in every lane after the reductions)
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp; r < rows;
       r += static_cast<std::int64_t>(gridDim.x) * kWarps) {
    const float* zr = z + r * cols;
    const float* tr = t + r * cols;
    float zmax = RowLowest<float>::value, tmax = RowLowest<float>::value;
    int zarg = INT_MAX, targ = INT_MAX;
    for (std::int64_t c = lane; c < cols; c += 32) {
      const float zv = zr[c], tv = tr[c];
      if (zv > zmax) { zmax = zv; zarg = static_cast<int>(c); }
      if (tv > tmax) { tmax = tv; targ = static_cast<int>(c); }
    }
    warp_argmax(zmax, zarg);
    warp_argmax(tmax, targ);
    float sum_exp = 0.0f, dot = 0.0f;
    for (std::int64_t c = lane; c < cols; c += 32) {
      sum_exp += softmax_term(zr[c], zmax);
      dot += tr[c] * zr[c];
    }
    sum_exp = warp_sum(sum_exp);
    dot = warp_sum(dot);
    loss += xent_row_loss(zmax, sum_exp, dot);
    hits += (zarg == targ) ? 1.0f : 0.0f;
    if (dz != nullptr) {
      float* dzr = dz + r * cols;
      for (std::int64_t c = lane; c < cols; c += 32) dzr[c] = xent_grad(zr[c], tr[c], zmax, sum_exp, grad_scale);
    }
  }
  if (lane == 0) {
    block_loss[warp] = loss;
    block_hits[warp] = hits;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float l = 0.0f, h = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      l += block_loss[w];
      h += block_hits[w];
    }
    partials[2 * blockIdx.x] = l;
    partials[2 * blockIdx.x + 1] = h;
  }
}

// One block: thread k sums partials k, k + 256, ... (at most one here), then a fixed-order tree.
__global__ void softmax_xent_total(const float* partials, int blocks, float* stats) {
  __shared__ float loss[detail::kBlock], hits[detail::kBlock];
  float l = 0.0f, h = 0.0f;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    l += partials[2 * b];
    h += partials[2 * b + 1];
  }
  loss[threadIdx.x] = l;
  hits[threadIdx.x] = h;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      loss[threadIdx.x] += loss[threadIdx.x + half];
      hits[threadIdx.x] += hits[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    stats[0] += loss[0];
    stats[1] += hits[0];
  }
}

}  // namespace

std::size_t softmax_xent_partials(std::size_t rows) { return 2 * xent_blocks(rows); }

void launch_softmax_xent(const float* z, const float* t, float* dz, float grad_scale, float* stats, std::size_t rows,
                         std::size_t cols, float* partials, void* stream) {
  if (rows == 0 || cols == 0) return;
  const auto blocks = static_cast<unsigned>(xent_blocks(rows));
  DROPNET_LAUNCH(softmax_xent_rows, dim3(blocks), dim3(detail::kBlock), stream, z, t, dz, grad_scale,
                 static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols), partials);
  DROPNET_LAUNCH(softmax_xent_total, dim3(1), dim3(detail::kBlock), stream, partials, static_cast<int>(blocks), stats);
}

}  // namespace dropnet::kernels
