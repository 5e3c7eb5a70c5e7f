// maxnorm.cu: Keras' MaxNorm constraint on one kernel, in place (the math: kernels/maxnorm_math.hpp):
//   w *= clip(n, 0, max_value) / (1e-7 + n),   n = the L2 norm of w's group over the constrained axes.
//
// Three launches, no atomics (the sums are the same on every run):
//   1. partial sums of squares: block (tile, split) covers 32 consecutive groups (threadIdx.x) and one
//      chunk of each group's elements, spread over 16 rows of threads (threadIdx.y);
//   2. one factor per group from its partial sums;
//   3. rescaling, with the blocks of step 1.
// Splitting each group over many blocks keeps every SM busy when there are few, long groups (a Dense
// kernel (2304, 256) with axis 0 has 256 groups of 2304). With the usual Keras axes (Dense axis 0,
// Conv2D axes {0, 1, 2}) the kept axis is the last, so a block's 32 groups are 32 adjacent floats and
// every access is coalesced.
#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"
#include "kernels/maxnorm_math.hpp"

namespace dropnet::kernels {
namespace {

constexpr int kGroupsPerBlock = 32;
constexpr int kLanesPerGroup = 16;
constexpr std::int64_t kMinChunk = kLanesPerGroup * 16;  // elements of a group per block (16 per thread)
constexpr std::int64_t kMaxSplits = 65535;               // grid.y limit

struct Split {
  std::int64_t chunk, splits;
};

Split split_for(std::int64_t group_size) {
  std::int64_t chunk = kMinChunk;
  if ((group_size + chunk - 1) / chunk > kMaxSplits) {
    chunk = (group_size + kMaxSplits - 1) / kMaxSplits;
    chunk = (chunk + kLanesPerGroup - 1) / kLanesPerGroup * kLanesPerGroup;
  }
  return Split{chunk, std::max<std::int64_t>(1, (group_size + chunk - 1) / chunk)};
}

// partials[split * groups + group] = sum of squares of the group's elements in this block's chunk.
__global__ void maxnorm_partial_kernel(const float* w, MaxNormLaunch p, std::int64_t chunk, float* partials) {
  __shared__ float lane_sum[kLanesPerGroup][kGroupsPerBlock + 1];
  const std::int64_t group = static_cast<std::int64_t>(blockIdx.x) * kGroupsPerBlock + threadIdx.x;
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.y) * chunk;
  const std::int64_t end = min(begin + chunk, p.group_size);
  float sum = 0.0f;
  if (group < p.groups) {
    const std::int64_t base = maxnorm_offset(group, p.kept_rank, p.kept_extent, p.kept_stride);
    for (std::int64_t r = begin + threadIdx.y; r < end; r += kLanesPerGroup) {
      const float x = w[base + maxnorm_offset(r, p.reduced_rank, p.reduced_extent, p.reduced_stride)];
      sum += x * x;
    }
  }
  lane_sum[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && group < p.groups) {
    float total = 0.0f;
#pragma unroll
    for (int k = 0; k < kLanesPerGroup; ++k) total += lane_sum[k][threadIdx.x];
    partials[static_cast<std::int64_t>(blockIdx.y) * p.groups + group] = total;
  }
}

__global__ void maxnorm_factor_kernel(const float* partials, std::int64_t groups, std::int64_t splits,
                                      float max_value, float* factors) {
  DROPNET_GRID_STRIDE(g, groups) {
    float total = 0.0f;
    for (std::int64_t s = 0; s < splits; ++s) total += partials[s * groups + g];
    factors[g] = maxnorm_scale(total, max_value);
  }
}

__global__ void maxnorm_scale_kernel(float* w, MaxNormLaunch p, std::int64_t chunk, const float* factors) {
  const std::int64_t group = static_cast<std::int64_t>(blockIdx.x) * kGroupsPerBlock + threadIdx.x;
  if (group >= p.groups) return;
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.y) * chunk;
  const std::int64_t end = min(begin + chunk, p.group_size);
  const std::int64_t base = maxnorm_offset(group, p.kept_rank, p.kept_extent, p.kept_stride);
  const float f = factors[group];
  for (std::int64_t r = begin + threadIdx.y; r < end; r += kLanesPerGroup)
    w[base + maxnorm_offset(r, p.reduced_rank, p.reduced_extent, p.reduced_stride)] *= f;
}

}  // namespace

std::size_t maxnorm_scratch_floats(const MaxNormLaunch& call) {
  if (call.groups <= 0) return 0;
  const Split s = split_for(call.group_size);
  return static_cast<std::size_t>(s.splits * call.groups + call.groups);
}

void launch_maxnorm(float* w, const MaxNormLaunch& call, float* scratch, void* stream) {
  if (call.groups <= 0) return;
  const Split s = split_for(call.group_size);
  float* partials = scratch;
  float* factors = scratch + s.splits * call.groups;
  const dim3 grid(static_cast<unsigned>((call.groups + kGroupsPerBlock - 1) / kGroupsPerBlock),
                  static_cast<unsigned>(s.splits));
  const dim3 block(kGroupsPerBlock, kLanesPerGroup);
  DROPNET_LAUNCH(maxnorm_partial_kernel, grid, block, stream, w, call, s.chunk, partials);
  DROPNET_LAUNCH_LINEAR(maxnorm_factor_kernel, static_cast<std::size_t>(call.groups), stream,
                        partials, call.groups, s.splits, call.max_value, factors);
  DROPNET_LAUNCH(maxnorm_scale_kernel, grid, block, stream, w, call, s.chunk, factors);
}

}  // namespace dropnet::kernels
