// pool2d.cpp: MaxPooling2D on the CPU, NHWC, channels innermost so the inner loops vectorise.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/pool_window.hpp"

namespace dropnet::backend::cpu {
namespace {

// The output positions [ox0, ox1) of output row q (image q / oh, row q % oh) whose 2x2 windows lie inside
// the input: the runs the one-pass rows below take; empty unless the pool is 2x2.
struct Run {
  std::int64_t ox0 = 0, ox1 = 0;
};
Run full_2x2_run(const PoolGeometry& g, std::int64_t q) {
  if (g.ph != 2 || g.pw != 2 || g.w < 2) return {};
  const std::int64_t iy = (q % g.oh) * g.sh - g.pad_top;
  if (iy < 0 || iy + 1 >= g.h) return {};
  // ix = ox * sw - pad_left must satisfy ix >= 0 and ix + 1 < w.
  const std::int64_t ox0 = (g.pad_left + g.sw - 1) / g.sw;
  const std::int64_t ox1 = std::min(g.ow, (g.w - 2 + g.pad_left) / g.sw + 1);
  return ox0 < ox1 ? Run{ox0, ox1} : Run{};
}

// The first channel in x of output position (q, ox)'s top-left input position.
std::int64_t window_origin(const PoolGeometry& g, std::int64_t q, std::int64_t ox) {
  const std::int64_t img = q / g.oh, iy = (q % g.oh) * g.sh - g.pad_top, ix = ox * g.sw - g.pad_left;
  return ((img * g.h + iy) * g.w + ix) * g.c;
}

// `value` where `take`, else +0 (the bits of take ? value : T(0)), as a bit mask: written as a select, GCC
// turned the four stores below into masked stores (vmaskmovps), several times slower on AMD cores.
template <typename T>
[[gnu::always_inline]] inline T value_or_zero(bool take, T value) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  return std::bit_cast<T>(std::bit_cast<Bits>(value) & (Bits(0) - Bits(take)));
}

// One full 2x2 window in one pass over the channels: the same std::max chain as the general loop (from
// -inf, in window order), so the same bits, NaN included.
template <typename T>
[[gnu::always_inline]] inline void max_2x2_row(const T* __restrict x0, const T* __restrict x1, const T* __restrict x2,
                                               const T* __restrict x3, T* __restrict y, std::int64_t c) {
  for (std::int64_t i = 0; i < c; ++i)
    y[i] = std::max(std::max(std::max(std::max(-std::numeric_limits<T>::infinity(), x0[i]), x1[i]), x2[i]), x3[i]);
}

// Its gradient where the windows tile the input, assigned: dy goes to the first position (window order)
// where x == y, +0 to the others, as the general loop's pending values give.
template <typename T>
[[gnu::always_inline]] inline void route_2x2_row(const T* __restrict x0, const T* __restrict x1,
                                                 const T* __restrict x2, const T* __restrict x3,
                                                 const T* __restrict ymax, const T* __restrict dy, T* __restrict d0,
                                                 T* __restrict d1, T* __restrict d2, T* __restrict d3, std::int64_t c) {
  for (std::int64_t i = 0; i < c; ++i) {
    const T m = ymax[i], p = dy[i];
    const bool h0 = x0[i] == m, h1 = x1[i] == m, h2 = x2[i] == m, h3 = x3[i] == m;
    d0[i] = value_or_zero(h0, p);
    d1[i] = value_or_zero(h1 & !h0, p);
    d2[i] = value_or_zero(h2 & !(h0 | h1), p);
    d3[i] = value_or_zero(h3 & !(h0 | h1 | h2), p);
  }
}

// A run of full 2x2 windows: window j's positions are x + j * step (top left), + c (top right), + row
// (bottom left), + row + c; its outputs at y + j * c. One call per run keeps the per-window overhead out.
template <typename T>
[[gnu::always_inline]] inline void max_2x2_run(const T* x, std::int64_t windows, std::int64_t step, std::int64_t row,
                                               std::int64_t c, T* y) {
  for (std::int64_t j = 0; j < windows; ++j) {
    const T* x0 = x + j * step;
    max_2x2_row<T>(x0, x0 + c, x0 + row, x0 + row + c, y + j * c, c);
  }
}

// The gradient of a run of windows that tile the input (step = 2c).
template <typename T>
[[gnu::always_inline]] inline void route_2x2_run(const T* x, const T* ymax, const T* dy, T* dx, std::int64_t windows,
                                                 std::int64_t row, std::int64_t c) {
  for (std::int64_t j = 0; j < windows; ++j) {
    const T* x0 = x + 2 * j * c;
    T* d0 = dx + 2 * j * c;
    route_2x2_row<T>(x0, x0 + c, x0 + row, x0 + row + c, ymax + j * c, dy + j * c, d0, d0 + c, d0 + row,
                     d0 + row + c, c);
  }
}

// The float runs (training's) for the machine's widest vectors; double (the gradient checks) inlines the
// templates above.
[[gnu::target_clones("avx512f", "avx2", "default")]] void max_2x2_run_float(const float* x, std::int64_t windows,
                                                                          std::int64_t step, std::int64_t row,
                                                                          std::int64_t c, float* y) {
  max_2x2_run<float>(x, windows, step, row, c, y);
}
[[gnu::target_clones("avx512f", "avx2", "default")]] void route_2x2_run_float(const float* x, const float* ymax,
                                                                            const float* dy, float* dx,
                                                                            std::int64_t windows, std::int64_t row,
                                                                            std::int64_t c) {
  route_2x2_run<float>(x, ymax, dy, dx, windows, row, c);
}
template <typename T>
void max_2x2(const T* x, std::int64_t windows, std::int64_t step, std::int64_t row, std::int64_t c, T* y) {
  if constexpr (std::is_same_v<T, float>) max_2x2_run_float(x, windows, step, row, c, y);
  else max_2x2_run<T>(x, windows, step, row, c, y);
}
template <typename T>
void route_2x2(const T* x, const T* ymax, const T* dy, T* dx, std::int64_t windows, std::int64_t row, std::int64_t c) {
  if constexpr (std::is_same_v<T, float>) route_2x2_run_float(x, ymax, dy, dx, windows, row, c);
  else route_2x2_run<T>(x, ymax, dy, dx, windows, row, c);
}

}  // namespace

template <typename T>
void maxpool2d_forward(const T* x, T* y, const PoolGeometry& g) {
  // By output rows: a run of full 2x2 windows in one call, the other windows one by one.
  parallel_for(g.n * g.oh, 16, [&](std::int64_t q0, std::int64_t q1) {
    for (std::int64_t q = q0; q < q1; ++q) {
      const Run run = full_2x2_run(g, q);
      if (run.ox1 > run.ox0)
        max_2x2(x + window_origin(g, q, run.ox0), run.ox1 - run.ox0, g.sw * g.c, g.w * g.c, g.c,
                y + (q * g.ow + run.ox0) * g.c);
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        if (ox == run.ox0 && run.ox1 > run.ox0) ox = run.ox1;
        if (ox >= g.ow) break;
        const std::int64_t r = q * g.ow + ox;
        T* out = y + r * g.c;
        std::fill(out, out + g.c, -std::numeric_limits<T>::infinity());
        for_each_in_window(g, r, [&](std::int64_t at, std::int64_t) {
          for (std::int64_t c = 0; c < g.c; ++c) out[c] = std::max(out[c], x[at + c]);
        });
      }
    }
  });
}

template <typename T>
void maxpool2d_backward(const T* x, const T* y, const T* dy, T* dx, const PoolGeometry& g) {
  // Windows that tile the input without overlap (stride == pool, no padding: the seed's case) visit each
  // input position at most once, so they can assign dx instead of adding to a zero-filled one; only the
  // positions no window covers (right and bottom edges) are zeroed.
  const bool tiles = g.sh == g.ph && g.sw == g.pw && g.pad_top == 0 && g.pad_left == 0;
  if (!tiles) std::fill(dx, dx + g.n * g.h * g.w * g.c, T(0));
  // pending[c]: the gradient of output channel c not yet delivered. Window positions are visited in
  // row-major order with channels innermost (contiguous); the first position holding the maximum takes
  // the gradient and zeroes pending, so later ties get 0. Branch-free, so the channel loop vectorises.
  // Split by image: windows of one image may overlap in dx (stride < pool), those of two images never do.
  parallel_for(g.n, 2, [&](std::int64_t i0, std::int64_t i1) {
    std::vector<T> pending(std::size_t(g.c));
    for (std::int64_t q = i0 * g.oh; q < i1 * g.oh; ++q) {
      // The seed's windows (2x2 that tile): runs in one pass, no pending values.
      const Run run = tiles ? full_2x2_run(g, q) : Run{};
      if (run.ox1 > run.ox0) {
        const std::int64_t at = window_origin(g, q, run.ox0), r = q * g.ow + run.ox0;
        route_2x2(x + at, y + r * g.c, dy + r * g.c, dx + at, run.ox1 - run.ox0, g.w * g.c, g.c);
      }
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        if (ox == run.ox0 && run.ox1 > run.ox0) ox = run.ox1;
        if (ox >= g.ow) break;
        const std::int64_t r = q * g.ow + ox;
        const T* ymax = y + r * g.c;
        std::copy(dy + r * g.c, dy + (r + 1) * g.c, pending.begin());
        T* pend = pending.data();
        for_each_in_window(g, r, [&](std::int64_t at, std::int64_t) {
          for (std::int64_t c = 0; c < g.c; ++c) {
            const bool hit = x[at + c] == ymax[c];
            const T p = pend[c];
            const T give = hit ? p : T(0);
            dx[at + c] = tiles ? give : dx[at + c] + give;
            pend[c] = hit ? T(0) : p;
          }
        });
      }
    }
    if (tiles) {  // rows and columns past the last window
      for (std::int64_t img = i0; img < i1; ++img)
        for (std::int64_t iy = 0; iy < g.h; ++iy)
          for (std::int64_t ix = 0; ix < g.w; ++ix)
            if (iy >= g.oh * g.sh || ix >= g.ow * g.sw)
              std::fill_n(dx + ((img * g.h + iy) * g.w + ix) * g.c, g.c, T(0));
    }
  });
}

template void maxpool2d_forward<float>(const float*, float*, const PoolGeometry&);
template void maxpool2d_forward<double>(const double*, double*, const PoolGeometry&);
template void maxpool2d_backward<float>(const float*, const float*, const float*, float*, const PoolGeometry&);
template void maxpool2d_backward<double>(const double*, const double*, const double*, double*, const PoolGeometry&);

}  // namespace dropnet::backend::cpu
