// softmax_xent.cu: softmax cross-entropy on logits, its gradient and the accuracy count, in one pass.
//
//   loss_i    = logsumexp(z_i) - sum_j t_ij z_ij          (stable: logsumexp = m + log sum exp(z - m))
//   correct_i = argmax_j z_ij == argmax_j t_ij           (first maximum wins, as numpy's argmax)
//   dz_ij     = (softmax(z_i)_j - t_ij) * grad_scale      (when dz is requested)
//
// One warp per row. The per-row losses and hits are summed per block, in a fixed order, into `partials`;
// a second one-block launch adds the partials up in a fixed order and adds them to stats. Nothing uses
// atomics, so the loss is the same on every run (and under graph replay).
#include <cfloat>
#include <climits>

#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

constexpr int kWarps = detail::kBlock / 32;
constexpr std::size_t kMaxBlocks = 256;  // fixed, not derived from the GPU, so the sum order is too

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The larger value, or on a tie the smaller index: the first maximum.
__device__ __forceinline__ void warp_argmax(float& value, int& index) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, value, o);
    const int i = __shfl_xor_sync(0xffffffffu, index, o);
    if (v > value || (v == value && i < index)) {
      value = v;
      index = i;
    }
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
    float zmax = -FLT_MAX, tmax = -FLT_MAX;
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
      sum_exp += expf(zr[c] - zmax);
      dot += tr[c] * zr[c];
    }
    sum_exp = warp_sum(sum_exp);
    dot = warp_sum(dot);
    loss += zmax + logf(sum_exp) - dot;
    hits += (zarg == targ) ? 1.0f : 0.0f;
    if (dz != nullptr) {
      float* dzr = dz + r * cols;
      for (std::int64_t c = lane; c < cols; c += 32) dzr[c] = (expf(zr[c] - zmax) / sum_exp - tr[c]) * grad_scale;
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

std::size_t blocks_for(std::size_t rows) {
  const std::size_t b = (rows + kWarps - 1) / kWarps;
  return b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b);
}

}  // namespace

std::size_t softmax_xent_partials(std::size_t rows) { return 2 * blocks_for(rows); }

void launch_softmax_xent(const float* z, const float* t, float* dz, float grad_scale, float* stats, std::size_t rows,
                         std::size_t cols, float* partials, void* stream) {
  if (rows == 0 || cols == 0) return;
  const auto blocks = static_cast<unsigned>(blocks_for(rows));
  DROPNET_LAUNCH(softmax_xent_rows, dim3(blocks), dim3(detail::kBlock), stream, z, t, dz, grad_scale,
                 static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols), partials);
  DROPNET_LAUNCH(softmax_xent_total, dim3(1), dim3(detail::kBlock), stream, partials, static_cast<int>(blocks), stats);
}

}  // namespace dropnet::kernels
