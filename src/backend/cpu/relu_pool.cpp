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
#include <bit>
#include <vector>

#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/pool_window.hpp"
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
  for_each_in_window(g, r, [&](std::int64_t offset, std::int64_t index) {
    win.offset[win.count] = offset;
    win.index[win.count] = static_cast<std::int32_t>(index);
    ++win.count;
  });
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
template <DropMode M, typename Route>
[[gnu::always_inline]] inline void finish(float best, std::int32_t at, std::int32_t keep, float keep_prob, float& y,
                                          Route& route) {
  constexpr std::int32_t none = kReluPoolNoRoute;
  if constexpr (M == DropMode::None) {
    y = best;
    route = static_cast<Route>(best > 0.0f ? at : none);
  } else if constexpr (M == DropMode::Zeros) {
    y = 0.0f;
    route = static_cast<Route>(none);
  } else {
    const bool kept = keep != 0;
    y = kernels::dropout_apply(best, kept, keep_prob);
    route = static_cast<Route>((best > 0.0f) & kept ? at : none);
  }
}

// `value` where `take`, else +0.0f (the bits of take ? value : 0.0f), as a bit mask: written as a select,
// GCC turned the four stores of a 2x2 window's gradient into masked stores (vmaskmovps), which run
// several times slower than plain ones on AMD cores.
[[gnu::always_inline]] inline float value_or_zero(bool take, float value) {
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>(value) & (0u - std::uint32_t(take)));
}

// ---- full 2x2 windows that tile the input (the seed's pools): a run of windows along one output row ----
// Window j's positions: top + 2jc (0), + c (1), bottom + 2jc (2), + c (3); its outputs at j * c. The
// pointers are __restrict so that the channel loops vectorise; one call per run keeps the per-window
// overhead out.

template <DropMode M>
[[gnu::always_inline]] inline void pool_2x2_run(const float* __restrict top, const float* __restrict bottom,
                                                std::int64_t windows, std::int64_t c,
                                                const unsigned char* __restrict keep, float keep_prob,
                                                float* __restrict y, std::uint8_t* __restrict route) {
  for (std::int64_t j = 0; j < windows; ++j) {
    const float* __restrict z0 = top + 2 * j * c;
    const float* __restrict z1 = z0 + c;
    const float* __restrict z2 = bottom + 2 * j * c;
    const float* __restrict z3 = z2 + c;
    const unsigned char* __restrict kj = M == DropMode::Mask ? keep + j * c : nullptr;
    float* __restrict yj = y + j * c;
    std::uint8_t* __restrict rj = route + j * c;
    // The mask bytes are widened to 32-bit lanes first and the routes narrowed to bytes after, so that the
    // main loop is all 32-bit lanes: one loop doing all three spilled its vector registers (2-3x slower).
    for (std::int64_t i0 = 0; i0 < c; i0 += kChunk) {
      const std::int64_t n = std::min(kChunk, c - i0);
      std::int32_t kept[kChunk], to[kChunk];
      if constexpr (M == DropMode::Mask)
        for (std::int64_t i = 0; i < n; ++i) kept[i] = kj[i0 + i];
      for (std::int64_t i = 0; i < n; ++i) {
        float best = kernels::relu_forward(z0[i0 + i]);
        std::int32_t at = 0;
        take_max(z1[i0 + i], 1, best, at);
        take_max(z2[i0 + i], 2, best, at);
        take_max(z3[i0 + i], 3, best, at);
        finish<M>(best, at, M == DropMode::Mask ? kept[i] : 0, keep_prob, yj[i0 + i], to[i]);
      }
      for (std::int64_t i = 0; i < n; ++i) rj[i0 + i] = static_cast<std::uint8_t>(to[i]);
    }
  }
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void relu_pool_2x2_run(
    const float* top, const float* bottom, std::int64_t windows, std::int64_t c, const unsigned char* keep,
    float keep_prob, int mode, float* y, std::uint8_t* route) {
  switch (static_cast<DropMode>(mode)) {
    case DropMode::None: return pool_2x2_run<DropMode::None>(top, bottom, windows, c, keep, keep_prob, y, route);
    case DropMode::Zeros: return pool_2x2_run<DropMode::Zeros>(top, bottom, windows, c, keep, keep_prob, y, route);
    case DropMode::Mask: return pool_2x2_run<DropMode::Mask>(top, bottom, windows, c, keep, keep_prob, y, route);
  }
}

// Backward of such a run, assigned: dy' (dropout_apply(dy, true, keep_prob) under a mask) at the routed
// position of each window, +0 at its other three.
template <bool Mask>
[[gnu::always_inline]] inline void pool_2x2_run_backward(float* __restrict top, float* __restrict bottom,
                                                         std::int64_t windows, std::int64_t c,
                                                         const float* __restrict dy,
                                                         const std::uint8_t* __restrict route, float keep_prob) {
  for (std::int64_t j = 0; j < windows; ++j) {
    float* __restrict d0 = top + 2 * j * c;
    float* __restrict d1 = d0 + c;
    float* __restrict d2 = bottom + 2 * j * c;
    float* __restrict d3 = d2 + c;
    const float* __restrict dyj = dy + j * c;
    const std::uint8_t* __restrict rj = route + j * c;
    for (std::int64_t i0 = 0; i0 < c; i0 += kChunk) {  // routes widened first, as in the forward
      const std::int64_t n = std::min(kChunk, c - i0);
      std::int32_t to[kChunk];
      for (std::int64_t i = 0; i < n; ++i) to[i] = rj[i0 + i];
      for (std::int64_t i = 0; i < n; ++i) {
        const float give = Mask ? kernels::dropout_apply(dyj[i0 + i], true, keep_prob) : dyj[i0 + i];
        d0[i0 + i] = value_or_zero(to[i] == 0, give);
        d1[i0 + i] = value_or_zero(to[i] == 1, give);
        d2[i0 + i] = value_or_zero(to[i] == 2, give);
        d3[i0 + i] = value_or_zero(to[i] == 3, give);
      }
    }
  }
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void relu_pool_2x2_run_backward(
    float* top, float* bottom, std::int64_t windows, std::int64_t c, const float* dy, const std::uint8_t* route,
    float keep_prob, int mode) {
  if (static_cast<DropMode>(mode) == DropMode::Mask) pool_2x2_run_backward<true>(top, bottom, windows, c, dy, route, keep_prob);
  else pool_2x2_run_backward<false>(top, bottom, windows, c, dy, route, keep_prob);
}

// ---- any other window, one at a time, kChunk channels per call ----------------------------------------

// One pooled element row of n <= kChunk channels: y = dropout(max_k relu(z_k)) and the route. z[k] points
// at the channels of window position k (index[k] in the window), keep at the row's mask bytes (Mask only).
template <DropMode M>
[[gnu::always_inline]] inline void pool_chunk(const float* const* z, const std::int32_t* index, std::int64_t positions,
                                              std::int64_t n, const unsigned char* __restrict keep, float keep_prob,
                                              float* __restrict y, std::uint8_t* __restrict route) {
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

// Backward of one pooled element row of n <= kChunk channels: dz at window position k (index[k]) gets
// dy' where the route says k, +0 elsewhere; assigned, or added where windows overlap.
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
  for (std::int64_t k = 0; k < positions; ++k) {
    float* __restrict dzk = dz[k];
    const std::int32_t ik = index[k];
    for (std::int64_t c = 0; c < n; ++c) {
      const float routed = value_or_zero(to[c] == ik, give[c]);
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

// The keep bytes of the pooled elements [first, first + n): the mask's own bytes where the mask has the
// input's shape or a run broadcast keeps them contiguous (SpatialDropout, n = C: one byte per channel),
// else gathered into `buffer` (n bytes) through dropout_mask_index.
const unsigned char* keep_bytes_of(const Drop& d, const unsigned char* keep, std::int64_t first, std::int64_t n,
                                   unsigned char* buffer) {
  if (!d.broadcast.broadcast) return keep + first;
  if (d.run.run) {
    const std::int64_t block = d.run.middle * d.run.inner, inner_at = first % d.run.inner;
    if (inner_at + n <= d.run.inner) return keep + first / block * d.run.inner + inner_at;
  }
  for (std::int64_t i = 0; i < n; ++i) buffer[i] = keep[kernels::dropout_mask_index(first + i, d.broadcast)];
  return buffer;
}

// How many windows at the start of output row q (image q / oh, row q % oh) are full 2x2 windows that tile
// the input: 0 unless the geometry is the 2x2 / 2 pool without leading pad; then all but a last window
// that runs past the right edge, or none where the window row runs past the bottom.
std::int64_t full_2x2_windows(const PoolGeometry& g, std::int64_t q) {
  if (g.ph != 2 || g.pw != 2 || g.sh != 2 || g.sw != 2 || g.pad_top != 0 || g.pad_left != 0) return 0;
  if (2 * (q % g.oh) + 1 >= g.h) return 0;
  return std::min(g.ow, g.w / 2);
}

// The first channel in z of output row q's top input row.
std::int64_t top_row(const PoolGeometry& g, std::int64_t q) {
  return ((q / g.oh) * g.h + (q % g.oh) * g.sh) * g.w * g.c;
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
  const unsigned char* keep_all = keep.data();
  const int mode = int(d.mode);
  // By output rows: each writes its own outputs. Inference needs no route; its bytes go to a scratch row.
  parallel_for(g.n * g.oh, 4, [&](std::int64_t q0, std::int64_t q1) {
    std::vector<std::uint8_t> scratch(route == nullptr ? std::size_t(g.ow * g.c) : 0);
    // A broadcast mask's bytes for the row's elements, window by window (SpatialDropout: the same C bytes
    // for every window of an image).
    std::vector<unsigned char> keep_gathered(d.broadcast.broadcast ? std::size_t(g.ow * g.c) : 0);
    std::vector<unsigned char> keep_window(d.broadcast.broadcast ? std::size_t(g.c) : 0);
    const float* rows[kReluPoolMaxWindow];
    for (std::int64_t q = q0; q < q1; ++q) {
      const std::int64_t first = q * g.ow * g.c;  // the row's first pooled element
      std::uint8_t* route_row = route != nullptr ? route + first : scratch.data();
      const unsigned char* keep_row = nullptr;
      if (d.mode == DropMode::Mask && !d.broadcast.broadcast) {
        keep_row = keep_all + first;
      } else if (d.mode == DropMode::Mask) {
        for (std::int64_t ox = 0; ox < g.ow; ++ox)
          std::copy_n(keep_bytes_of(d, keep_all, first + ox * g.c, g.c, keep_window.data()), g.c,
                      keep_gathered.data() + ox * g.c);
        keep_row = keep_gathered.data();
      }
      const std::int64_t full = full_2x2_windows(g, q);
      if (full > 0) {
        const float* top = z + top_row(g, q);
        relu_pool_2x2_run(top, top + g.w * g.c, full, g.c, keep_row, d.keep_prob, mode, y + first, route_row);
      }
      for (std::int64_t ox = full; ox < g.ow; ++ox) {
        const Window win = window_of(g, q * g.ow + ox);
        for (std::int64_t c0 = 0; c0 < g.c; c0 += kChunk) {
          const std::int64_t n = std::min(kChunk, g.c - c0), at = ox * g.c + c0;
          for (std::int64_t k = 0; k < win.count; ++k) rows[k] = z + win.offset[k] + c0;
          relu_pool_chunk(rows, win.index, win.count, n, keep_row != nullptr ? keep_row + at : nullptr, d.keep_prob,
                          mode, y + first + at, route_row + at);
        }
      }
    }
  });
}

void relu_pool_backward(const float* dy, const std::uint8_t* route, float* dz, const PoolGeometry& g,
                        const DropoutCall* call) {
  const Drop d = drop_of(call);
  const int mode = int(d.mode);
  // One window's gradient through the general loop (assigned or added).
  auto window_backward = [&](std::int64_t r, bool accumulate) {
    float* rows[kReluPoolMaxWindow];
    const Window win = window_of(g, r);
    for (std::int64_t c0 = 0; c0 < g.c; c0 += kChunk) {
      const std::int64_t n = std::min(kChunk, g.c - c0), at = r * g.c + c0;
      for (std::int64_t k = 0; k < win.count; ++k) rows[k] = dz + win.offset[k] + c0;
      relu_pool_backward_chunk(rows, win.index, win.count, n, dy + at, route + at, d.keep_prob, mode, accumulate);
    }
  };
  if (!tiles(g)) {
    // Overlapping (or padded) windows add into a zeroed dz. Split by image: windows of one image may
    // overlap, those of two images never do.
    parallel_for(g.n, 2, [&](std::int64_t i0, std::int64_t i1) {
      std::fill(dz + i0 * g.h * g.w * g.c, dz + i1 * g.h * g.w * g.c, 0.0f);
      for (std::int64_t r = i0 * g.oh * g.ow; r < i1 * g.oh * g.ow; ++r) window_backward(r, true);
    });
    return;
  }
  // Windows that tile the input: each input position in at most one window, so dz is assigned, output row
  // by output row; each row also zeroes its input rows' columns past the last window, and the image's last
  // output row the input rows below it.
  parallel_for(g.n * g.oh, 4, [&](std::int64_t q0, std::int64_t q1) {
    for (std::int64_t q = q0; q < q1; ++q) {
      const std::int64_t full = full_2x2_windows(g, q);
      if (full > 0) {
        float* top = dz + top_row(g, q);
        relu_pool_2x2_run_backward(top, top + g.w * g.c, full, g.c, dy + q * g.ow * g.c, route + q * g.ow * g.c,
                                   d.keep_prob, mode);
      }
      for (std::int64_t ox = full; ox < g.ow; ++ox) window_backward(q * g.ow + ox, false);
      const std::int64_t img = q / g.oh, oy = q % g.oh;
      const std::int64_t row_end = oy + 1 == g.oh ? g.h : std::min(g.h, (oy + 1) * g.sh);
      for (std::int64_t iy = oy * g.sh; iy < row_end; ++iy) {
        float* row = dz + (img * g.h + iy) * g.w * g.c;
        if (iy >= g.oh * g.sh) std::fill_n(row, g.w * g.c, 0.0f);
        else if (g.ow * g.sw < g.w) std::fill(row + g.ow * g.sw * g.c, row + g.w * g.c, 0.0f);
      }
    }
  });
}

}  // namespace dropnet::backend::cpu
