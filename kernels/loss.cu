// loss.cu: Keras' losses and metrics (Backend::loss), their gradient and the batch sums, in one pass over
// the rows. The math and the order of every sum: kernels/loss_math.hpp (the CPU, src/backend/cpu/losses.cpp,
// runs the same expressions in the same order). The launch shape is softmax_xent.cu's (one warp per row,
// xent_blocks(rows) blocks, a second one-block launch adding the blocks' partials), so the batch adds up in
// xent_batch_sum's order; nothing uses atomics, so the sums are the same on every run and under graph replay.
#include <climits>

#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"
#include "kernels/loss_math.hpp"
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

__device__ __forceinline__ void warp_sums(LossSums<float>& s) {
  s.a = warp_sum(s.a);
  s.b = warp_sum(s.b);
  s.c = warp_sum(s.c);
  s.m = warp_sum(s.m);
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

// Element c of row r's target: t's, or the one-hot row of the sparse label.
__device__ __forceinline__ float target(const float* t, std::int64_t r, std::int64_t c, std::int64_t cols,
                                        bool sparse, std::int64_t label) {
  return sparse ? (c == label ? 1.0f : 0.0f) : t[r * cols + c];
}

__global__ void loss_rows(const float* y, const float* t, float* dy, LossLaunch call, std::int64_t rows,
                          std::int64_t cols, float* partials) {
  __shared__ float block_loss[kWarps], block_metric[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float loss = 0.0f, metric = 0.0f;  // this warp's rows (meaningful in every lane after the reductions)
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp; r < rows;
       r += static_cast<std::int64_t>(gridDim.x) * kWarps) {
    const float* yr = y + r * cols;
    const std::int64_t label = call.sparse ? sparse_label(t[r], cols) : -1;
    float ymax = 0.0f;
    bool hit = false;
    if (loss_needs_max(call.kind, call.metric)) {
      float ym = RowLowest<float>::value, tm = RowLowest<float>::value;
      int yarg = INT_MAX, targ = INT_MAX;
      for (std::int64_t c = lane; c < cols; c += 32) {
        const float yv = yr[c], tv = target(t, r, c, cols, call.sparse, label);
        if (yv > ym) { ym = yv; yarg = static_cast<int>(c); }
        if (tv > tm) { tm = tv; targ = static_cast<int>(c); }
      }
      warp_argmax(ym, yarg);
      warp_argmax(tm, targ);
      ymax = ym;
      if (call.metric == MetricKind::CategoricalAccuracy)
        hit = call.sparse ? (yarg != INT_MAX && static_cast<float>(yarg) == t[r]) : yarg == targ;
    }
    LossSums<float> first;
    for (std::int64_t c = lane; c < cols; c += 32)
      loss_add_terms(call.kind, call.metric, yr[c], target(t, r, c, cols, call.sparse, label), ymax, first);
    warp_sums(first);
    LossSums<float> second;
    if (call.kind == LossKind::CategoricalProbs) {
      for (std::int64_t c = lane; c < cols; c += 32)
        cce_prob_add(yr[c], target(t, r, c, cols, call.sparse, label), first.a, second);
      warp_sums(second);
    }
    loss += loss_row(call.kind, first, second, ymax, cols);
    metric += metric_row(call.metric, first, cols, hit);
    if (dy != nullptr) {
      float* dyr = dy + r * cols;
      for (std::int64_t c = lane; c < cols; c += 32)
        dyr[c] = loss_grad(call.kind, yr[c], target(t, r, c, cols, call.sparse, label), ymax, first, second, cols,
                           call.grad_scale);
    }
  }
  if (lane == 0) {
    block_loss[warp] = loss;
    block_metric[warp] = metric;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float l = 0.0f, m = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      l += block_loss[w];
      m += block_metric[w];
    }
    partials[2 * blockIdx.x] = l;
    partials[2 * blockIdx.x + 1] = m;
  }
}

// One block: thread k takes block k's partials (at most 256 blocks), then a fixed-order tree; the totals,
// scaled, are added to stats.
__global__ void loss_total(const float* partials, int blocks, float stat_scale, float* stats) {
  __shared__ float loss[detail::kBlock], metric[detail::kBlock];
  float l = 0.0f, m = 0.0f;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    l += partials[2 * b];
    m += partials[2 * b + 1];
  }
  loss[threadIdx.x] = l;
  metric[threadIdx.x] = m;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      loss[threadIdx.x] += loss[threadIdx.x + half];
      metric[threadIdx.x] += metric[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    stats[0] += loss[0] * stat_scale;
    stats[1] += metric[0] * stat_scale;
  }
}

}  // namespace

std::size_t loss_partials(std::size_t rows) { return 2 * xent_blocks(rows); }

void launch_loss(const float* y, const float* t, float* dy, const LossLaunch& call, float* stats, std::size_t rows,
                 std::size_t cols, float* partials, void* stream) {
  if (rows == 0 || cols == 0) return;
  const auto blocks = static_cast<unsigned>(xent_blocks(rows));
  DROPNET_LAUNCH(loss_rows, dim3(blocks), dim3(detail::kBlock), stream, y, t, dy, call,
                 static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols), partials);
  DROPNET_LAUNCH(loss_total, dim3(1), dim3(detail::kBlock), stream, partials, static_cast<int>(blocks),
                 call.stat_scale, stats);
}

}  // namespace dropnet::kernels
