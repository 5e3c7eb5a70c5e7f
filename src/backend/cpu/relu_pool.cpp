// relu_pool.cpp: the fused block Conv2D(relu) -> MaxPooling2D [-> Dropout] on the CPU (Backend::relu_pool_*):
// one pass over the convolution's pre-activation z instead of three over its relu output (model/fused_blocks.hpp
// says when the model runs it).
//
// Why it gives the unfused bits: relu is applied to every window element before the max, exactly as the
// unfused relu pass does, so the max and the first row-major position holding it (the one the unfused
// backward routes the gradient to) are the same; relu's output is never -0 and never NaN, so the compares
// see the same values. The dropout of the max is kernels::dropout_apply with the mask drawn by draw_below,
// as in dropout.cpp. Backward: the unfused chain gives dz = relu'(y) * route(dropout'(dy)), where relu'(y)
// at the routed position is (max > 0) and every other position gets +0; the forward stores, per pooled
// element, the window position the gradient goes to, or kReluPoolNoRoute where relu's gate or the mask
// stops it, and backward scatters kernels::dropout_apply(dy, true, keep_prob) there.
#include <algorithm>
#include <vector>

#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "kernels/activation_math.hpp"
#include "kernels/dropout_math.hpp"

namespace dropnet::backend::cpu {
namespace {

// Channels per inner loop: the per-channel state (max, position) stays in L1 and the loops have a fixed
// bound the compiler unrolls.
constexpr std::int64_t kChunk = 64;

// What happens after the max: nothing (no dropout, or a rate of 0), zeros (a rate of 1), or the mask.
enum class DropMode : int { None = 0, Zeros = 1, Mask = 2 };

// The in-bounds positions of one window: their first channel in z (and dz) and their row-major index
// in the ph x pw window (the route).
struct Window {
  std::int64_t count = 0;
  std::int64_t offset[kReluPoolMaxWindow];
  std::int32_t index[kReluPoolMaxWindow];
};

Window window_of(const PoolGeometry& g, std::int64_t r) {
  Window win;
  const std::int64_t img = r / (g.oh * g.ow), oy = (r / g.ow) % g.oh, ox = r % g.ow;
  for (std::int64_t ky = 0; ky < g.ph; ++ky) {
    const std::int64_t iy = oy * g.sh - g.pad_top + ky;
    if (iy < 0 || iy >= g.h) continue;
    for (std::int64_t kx = 0; kx < g.pw; ++kx) {
      const std::int64_t ix = ox * g.sw - g.pad_left + kx;
      if (ix < 0 || ix >= g.w) continue;
      win.offset[win.count] = ((img * g.h + iy) * g.w + ix) * g.c;
      win.index[win.count] = static_cast<std::int32_t>(ky * g.pw + kx);
      ++win.count;
    }
  }
  return win;
}

// The running max of one more window position: relu(v) replaces `best` (and its position `at`) only when
// strictly larger, so a tie keeps the first position, as maxpool2d_backward routes it.
[[gnu::always_inline]] inline void take_max(float v, std::int32_t position, float& best, std::int32_t& at) {
  const float r = kernels::relu_forward(v);
  const bool later_max = r > best;
  best = later_max ? r : best;
  at = later_max ? position : at;
}

// After the max: the output and the route of one pooled element.
template <DropMode M>
[[gnu::always_inline]] inline void finish(float best, std::int32_t at, unsigned char keep, float keep_prob, float& y,
                                          std::uint8_t& route) {
  constexpr std::int32_t none = kReluPoolNoRoute;
  if constexpr (M == DropMode::None) {
    y = best;
    route = static_cast<std::uint8_t>(best > 0.0f ? at : none);
  } else if constexpr (M == DropMode::Zeros) {
    y = 0.0f;
    route = static_cast<std::uint8_t>(none);
  } else {
    const bool kept = keep != 0;
    y = kernels::dropout_apply(best, kept, keep_prob);
    route = static_cast<std::uint8_t>((best > 0.0f) & kept ? at : none);
  }
}

// One pooled row of n <= kChunk channels: y = dropout(max_k relu(z_k)) and the route. z[k] points at the
// row's channels in window position k (index[k] in the window), keep at the row's mask bytes (Mask only).
// The outputs are __restrict so that the loops vectorise over the channels.
template <DropMode M>
[[gnu::always_inline]] inline void pool_chunk(const float* const* z, const std::int32_t* index, std::int64_t positions,
                                              std::int64_t n, const unsigned char* __restrict keep, float keep_prob,
                                              float* __restrict y, std::uint8_t* __restrict route) {
  if (positions == 4) {  // the 2x2 pool: each channel's max stays in a register
    const float* __restrict z0 = z[0];
    const float* __restrict z1 = z[1];
    const float* __restrict z2 = z[2];
    const float* __restrict z3 = z[3];
    const std::int32_t i0 = index[0], i1 = index[1], i2 = index[2], i3 = index[3];
    for (std::int64_t c = 0; c < n; ++c) {
      float best = kernels::relu_forward(z0[c]);
      std::int32_t at = i0;
      take_max(z1[c], i1, best, at);
      take_max(z2[c], i2, best, at);
      take_max(z3[c], i3, best, at);
      finish<M>(best, at, M == DropMode::Mask ? keep[c] : 0, keep_prob, y[c], route[c]);
    }
    return;
  }
  float best[kChunk];
  std::int32_t at[kChunk];
  for (std::int64_t c = 0; c < n; ++c) {
    best[c] = kernels::relu_forward(z[0][c]);
    at[c] = index[0];
  }
  for (std::int64_t k = 1; k < positions; ++k) {
    const float* __restrict zk = z[k];
    const std::int32_t ik = index[k];
    for (std::int64_t c = 0; c < n; ++c) take_max(zk[c], ik, best[c], at[c]);
  }
  for (std::int64_t c = 0; c < n; ++c) finish<M>(best[c], at[c], M == DropMode::Mask ? keep[c] : 0, keep_prob, y[c], route[c]);
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void relu_pool_chunk(
    const float* const* z, const std::int32_t* index, std::int64_t positions, std::int64_t n,
    const unsigned char* keep, float keep_prob, int mode, float* y, std::uint8_t* route) {
  switch (static_cast<DropMode>(mode)) {
    case DropMode::None: return pool_chunk<DropMode::None>(z, index, positions, n, keep, keep_prob, y, route);
    case DropMode::Zeros: return pool_chunk<DropMode::Zeros>(z, index, positions, n, keep, keep_prob, y, route);
    case DropMode::Mask: return pool_chunk<DropMode::Mask>(z, index, positions, n, keep, keep_prob, y, route);
  }
}

// Backward of one pooled row of n <= kChunk channels: dz at window position k (index[k]) gets
// dropout'(dy) where the route says k, +0 elsewhere; assigned, or added where windows overlap.
template <bool Mask, bool Accumulate>
[[gnu::always_inline]] inline void pool_backward_chunk(float* const* dz, const std::int32_t* index,
                                                       std::int64_t positions, std::int64_t n,
                                                       const float* __restrict dy,
                                                       const std::uint8_t* __restrict route, float keep_prob) {
  float give[kChunk];
  std::int32_t to[kChunk];
  for (std::int64_t c = 0; c < n; ++c) {
    give[c] = Mask ? kernels::dropout_apply(dy[c], true, keep_prob) : dy[c];
    to[c] = route[c];
  }
  if (!Accumulate && positions == 4) {  // the 2x2 pool: four output rows in one pass
    float* __restrict d0 = dz[0];
    float* __restrict d1 = dz[1];
    float* __restrict d2 = dz[2];
    float* __restrict d3 = dz[3];
    const std::int32_t i0 = index[0], i1 = index[1], i2 = index[2], i3 = index[3];
    for (std::int64_t c = 0; c < n; ++c) {
      d0[c] = to[c] == i0 ? give[c] : 0.0f;
      d1[c] = to[c] == i1 ? give[c] : 0.0f;
      d2[c] = to[c] == i2 ? give[c] : 0.0f;
      d3[c] = to[c] == i3 ? give[c] : 0.0f;
    }
    return;
  }
  for (std::int64_t k = 0; k < positions; ++k) {
    float* __restrict dzk = dz[k];
    const std::int32_t ik = index[k];
    for (std::int64_t c = 0; c < n; ++c) {
      const float routed = to[c] == ik ? give[c] : 0.0f;
      dzk[c] = Accumulate ? dzk[c] + routed : routed;
    }
  }
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void relu_pool_backward_chunk(
    float* const* dz, const std::int32_t* index, std::int64_t positions, std::int64_t n, const float* dy,
    const std::uint8_t* route, float keep_prob, int mode, bool accumulate) {
  const bool mask = static_cast<DropMode>(mode) == DropMode::Mask;
  if (mask) {
    if (accumulate) pool_backward_chunk<true, true>(dz, index, positions, n, dy, route, keep_prob);
    else pool_backward_chunk<true, false>(dz, index, positions, n, dy, route, keep_prob);
  } else {
    if (accumulate) pool_backward_chunk<false, true>(dz, index, positions, n, dy, route, keep_prob);
    else pool_backward_chunk<false, false>(dz, index, positions, n, dy, route, keep_prob);
  }
}

// Windows that tile the input (stride == pool, no leading pad) visit each input position at most once, so
// backward assigns dz; only positions past the last window need zeros.
bool tiles(const PoolGeometry& g) { return g.sh == g.ph && g.sw == g.pw && g.pad_top == 0 && g.pad_left == 0; }

// The dropout of a call: its mode, keep_prob and (Mask) the keep byte of each mask element, drawn as
// dropout_apply draws them. The step and the rate are read from the slot when there is one.
struct Drop {
  DropMode mode = DropMode::None;
  float keep_prob = 1.0f;
  kernels::DropoutBroadcast broadcast{};
  kernels::DropoutRunBroadcast run{};
};

Drop drop_of(const DropoutCall* call) {
  Drop d;
  if (call == nullptr) return d;
  const float rate = call->slot != nullptr ? call->slot->rate : call->rate;
  if (const int edge = kernels::dropout_rate_edge(rate); edge >= 0) {
    d.mode = edge == 1 ? DropMode::None : DropMode::Zeros;
    return d;
  }
  d.mode = DropMode::Mask;
  d.keep_prob = kernels::dropout_keep_prob(rate);
  d.broadcast = kernels::dropout_broadcast(call->input_shape.data(), call->mask_shape.data(),
                                           static_cast<int>(call->input_shape.size()));
  d.run = kernels::dropout_run_broadcast(d.broadcast);
  return d;
}

// The keep bytes of the pooled elements [first, first + n) of one row: the mask's own bytes where the mask
// has the input's shape or a run broadcast keeps them contiguous (SpatialDropout: one byte per channel),
// else gathered into `buffer` through dropout_mask_index.
const unsigned char* keep_row(const Drop& d, const unsigned char* keep, std::int64_t first, std::int64_t n,
                              unsigned char* buffer) {
  if (!d.broadcast.broadcast) return keep + first;
  if (d.run.run) {
    const std::int64_t block = d.run.middle * d.run.inner, inner_at = first % d.run.inner;
    if (inner_at + n <= d.run.inner) return keep + first / block * d.run.inner + inner_at;
  }
  for (std::int64_t i = 0; i < n; ++i) buffer[i] = keep[kernels::dropout_mask_index(first + i, d.broadcast)];
  return buffer;
}

}  // namespace

void relu_pool_forward(const float* z, float* y, std::uint8_t* route, const PoolGeometry& g, const DropoutCall* call) {
  const Drop d = drop_of(call);
  // One byte per mask element, kept between calls (as dropout_apply's).
  thread_local std::vector<unsigned char> keep;
  if (d.mode == DropMode::Mask) {
    const std::uint64_t step = call->slot != nullptr ? call->slot->step : call->step;
    keep.resize(static_cast<std::size_t>(element_count(call->mask_shape)));
    draw_below(call->seed, step, kernels::dropout_keep_threshold(d.keep_prob), std::int64_t(keep.size()),
               keep.data());
  }
  const unsigned char* keep_bytes = keep.data();
  // Inference needs no route; its bytes then go to a scratch row.
  parallel_for(g.n * g.oh * g.ow, 256, [&](std::int64_t r0, std::int64_t r1) {
    std::uint8_t scratch_route[kChunk];
    unsigned char keep_buffer[kChunk];
    const float* rows[kReluPoolMaxWindow];
    for (std::int64_t r = r0; r < r1; ++r) {
      const Window win = window_of(g, r);
      for (std::int64_t c0 = 0; c0 < g.c; c0 += kChunk) {
        const std::int64_t n = std::min(kChunk, g.c - c0), at = r * g.c + c0;
        for (std::int64_t k = 0; k < win.count; ++k) rows[k] = z + win.offset[k] + c0;
        const unsigned char* kept = d.mode == DropMode::Mask ? keep_row(d, keep_bytes, at, n, keep_buffer) : nullptr;
        relu_pool_chunk(rows, win.index, win.count, n, kept, d.keep_prob, int(d.mode), y + at,
                        route != nullptr ? route + at : scratch_route);
      }
    }
  });
}

void relu_pool_backward(const float* dy, const std::uint8_t* route, float* dz, const PoolGeometry& g,
                        const DropoutCall* call) {
  const Drop d = drop_of(call);
  const bool assign = tiles(g);
  // Split by image: windows of one image may overlap in dz, those of two images never do.
  parallel_for(g.n, 2, [&](std::int64_t i0, std::int64_t i1) {
    const std::int64_t image = g.h * g.w * g.c;
    if (!assign) std::fill(dz + i0 * image, dz + i1 * image, 0.0f);
    float* rows[kReluPoolMaxWindow];
    for (std::int64_t r = i0 * g.oh * g.ow; r < i1 * g.oh * g.ow; ++r) {
      const Window win = window_of(g, r);
      for (std::int64_t c0 = 0; c0 < g.c; c0 += kChunk) {
        const std::int64_t n = std::min(kChunk, g.c - c0), at = r * g.c + c0;
        for (std::int64_t k = 0; k < win.count; ++k) rows[k] = dz + win.offset[k] + c0;
        relu_pool_backward_chunk(rows, win.index, win.count, n, dy + at, route + at, d.keep_prob, int(d.mode), !assign);
      }
    }
    if (assign) {  // rows and columns past the last window
      for (std::int64_t img = i0; img < i1; ++img)
        for (std::int64_t iy = 0; iy < g.h; ++iy)
          for (std::int64_t ix = 0; ix < g.w; ++ix)
            if (iy >= g.oh * g.sh || ix >= g.ow * g.sw) std::fill_n(dz + ((img * g.h + iy) * g.w + ix) * g.c, g.c, 0.0f);
    }
  });
}

}  // namespace dropnet::backend::cpu
