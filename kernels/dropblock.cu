// dropblock.cu: DropBlock2D forward and backward on the GPU (the rule: kernels/dropblock_math.hpp).
//
// One call is two kernels on the stream, both regenerating the mask from (seed, step):
//   dropblock_count   kept += the elements no set seed's block covers (an unsigned long long atomicAdd of
//                     each warp's sum: an exact integer, whatever the order)
//   dropblock_write   out = dropped ? 0 : in * dropblock_scale(total, kept)
// The caller zeroes `kept` before (launch_dropblock does, on the stream). Nothing else is stored: backward
// makes the same two passes on dy, so a recorded step (a CUDA graph) is right at every replay, and two
// DropBlock2D layers may share the one counter (the stream orders their calls).
//
// The step and the rate are read from the slot when the kernels run (DropBlockLaunch::slot), so a replay
// draws the mask of whichever step it replays at that step's rate; a rate of 0 or 1 is an edge (copy or
// zeros, dropout_rate_edge).
//
// Cost: an element tests the seeds of the blocks that cover it, up to k^2 (kernels::dropblock_dropped). When
// C is a multiple of 4 a thread takes four neighbouring channels of one position: their seeds at any (h0, w0)
// are the four words of one Philox block, so a window costs k^2 Philox calls per four elements.
#include "kernels/launch.cuh"

#include "kernels/dropblock_math.hpp"
#include "kernels/dropout_math.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

struct StepAndRate {
  std::uint64_t step;
  float rate;
};
__device__ __forceinline__ StepAndRate step_and_rate(const DropBlockLaunch& call) {
  return call.slot != nullptr ? StepAndRate{call.slot->step, call.slot->rate} : StepAndRate{call.step, call.rate};
}

// Bit j set: channel c4 + j of element group `group` (four channels of one (n, h, w)) is dropped. C % 4 == 0.
__device__ __forceinline__ unsigned dropped_quad(const DropBlockLaunch& call, std::uint64_t step, float gamma,
                                                 std::int64_t group) {
  const DropBlockGeometry& g = call;
  const std::int64_t quads = g.c / 4;
  const std::int64_t c4 = (group % quads) * 4;
  const std::int64_t pos = group / quads;  // (n, h, w)
  const std::int64_t w = pos % g.w, h = (pos / g.w) % g.h, n = pos / (g.w * g.h);
  const std::int64_t hs = dropblock_seed_rows(g), ws = dropblock_seed_cols(g);
  const DropBlockRange rows = dropblock_cover(h, g.block, hs), cols = dropblock_cover(w, g.block, ws);
  unsigned bits = 0;
  for (std::int64_t h0 = rows.first; h0 <= rows.last && bits != 0xFu; ++h0) {
    for (std::int64_t w0 = cols.first; w0 <= cols.last && bits != 0xFu; ++w0) {
      const auto s = static_cast<std::uint64_t>(((n * hs + h0) * ws + w0) * g.c + c4);  // a multiple of 4
      const PhiloxBlock b = philox_block(call.seed, step, s / 4);
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (dropblock_seed_uniform(uniform_from_bits(b.w[j]), gamma)) bits |= 1u << j;
    }
  }
  return bits;
}

// Items: groups of four channels when C % 4 == 0 (quad), else single elements.
__device__ __forceinline__ std::int64_t items(const DropBlockLaunch& call) {
  const std::int64_t total = dropblock_total(call);
  return call.c % 4 == 0 ? total / 4 : total;
}

// The number of kept elements among item j's (one or four).
__device__ __forceinline__ unsigned kept_in_item(const DropBlockLaunch& call, std::uint64_t step, float gamma,
                                                 std::int64_t j) {
  if (call.c % 4 == 0) {
    const unsigned bits = dropped_quad(call, step, gamma, j);
    return 4u - ((bits & 1u) + ((bits >> 1) & 1u) + ((bits >> 2) & 1u) + (bits >> 3));
  }
  return dropblock_dropped(call.seed, step, call, j, gamma) ? 0u : 1u;
}

__global__ void dropblock_count(DropBlockLaunch call, unsigned long long* kept) {
  const auto [step, rate] = step_and_rate(call);
  if (dropout_rate_edge(rate) >= 0) return;  // the same for every thread: the apply kernel needs no count
  const float gamma = dropblock_gamma(rate, call);
  unsigned long long local = 0;
  DROPNET_GRID_STRIDE(j, items(call)) { local += kept_in_item(call, step, gamma, j); }
  // Every thread of the warp reaches the butterfly (the grid-stride loop has ended for all of them).
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) local += __shfl_xor_sync(0xffffffffu, local, offset);
  if ((threadIdx.x & 31u) == 0 && local != 0) atomicAdd(kept, local);
}

__global__ void dropblock_write(const float* in, float* out, DropBlockLaunch call, const unsigned long long* kept) {
  const auto [step, rate] = step_and_rate(call);
  const std::int64_t total = dropblock_total(call);
  if (const int edge = dropout_rate_edge(rate); edge >= 0) {
    DROPNET_GRID_STRIDE(i, total) { out[i] = edge == 1 ? in[i] : 0.0f; }
    return;
  }
  const float gamma = dropblock_gamma(rate, call);
  const float scale = dropblock_scale<float>(static_cast<std::uint64_t>(total), *kept);
  if (call.c % 4 == 0) {
    DROPNET_GRID_STRIDE(j, total / 4) {
      const unsigned bits = dropped_quad(call, step, gamma, j);
#pragma unroll
      for (int q = 0; q < 4; ++q) out[4 * j + q] = dropblock_apply(in[4 * j + q], ((bits >> q) & 1u) != 0, scale);
    }
  } else {
    DROPNET_GRID_STRIDE(i, total) {
      out[i] = dropblock_apply(in[i], dropblock_dropped(call.seed, step, call, i, gamma), scale);
    }
  }
}

}  // namespace

void launch_dropblock(const float* in, float* out, const DropBlockLaunch& call, unsigned long long* kept,
                      void* stream) {
  const std::int64_t total = dropblock_total(call);
  if (total <= 0) return;
  CUDA_CHECK(cudaMemsetAsync(kept, 0, sizeof(unsigned long long), detail::as_stream(stream)));
  const auto work = static_cast<std::size_t>(call.c % 4 == 0 ? total / 4 : total);
  DROPNET_LAUNCH_LINEAR(dropblock_count, work, stream, call, kept);
  DROPNET_LAUNCH_LINEAR(dropblock_write, work, stream, in, out, call, static_cast<const unsigned long long*>(kept));
}

}  // namespace dropnet::kernels
