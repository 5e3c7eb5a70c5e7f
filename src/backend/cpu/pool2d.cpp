// pool2d.cpp: MaxPooling2D on the CPU, NHWC, channels innermost so the inner loops vectorise.
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"

namespace dropnet::backend::cpu {
namespace {

// Calls at(offset) for each input position of output position r's window that lies inside the input, in
// row-major window order; offset is the position's first channel in x (and dx).
template <typename F>
void for_each_in_window(const PoolGeometry& g, std::int64_t r, F&& at) {
  const std::int64_t img = r / (g.oh * g.ow), oy = (r / g.ow) % g.oh, ox = r % g.ow;
  for (std::int64_t ky = 0; ky < g.ph; ++ky) {
    const std::int64_t iy = oy * g.sh - g.pad_top + ky;
    if (iy < 0 || iy >= g.h) continue;
    for (std::int64_t kx = 0; kx < g.pw; ++kx) {
      const std::int64_t ix = ox * g.sw - g.pad_left + kx;
      if (ix < 0 || ix >= g.w) continue;
      at(((img * g.h + iy) * g.w + ix) * g.c);
    }
  }
}

// The first channel in x of the four positions of output position r's 2x2 window, when the window has
// four positions inside the input (row-major: top left, top right, bottom left, bottom right); else false.
bool full_2x2(const PoolGeometry& g, std::int64_t r, std::int64_t at[4]) {
  if (g.ph != 2 || g.pw != 2) return false;
  const std::int64_t img = r / (g.oh * g.ow), oy = (r / g.ow) % g.oh, ox = r % g.ow;
  const std::int64_t iy = oy * g.sh - g.pad_top, ix = ox * g.sw - g.pad_left;
  if (iy < 0 || ix < 0 || iy + 1 >= g.h || ix + 1 >= g.w) return false;
  at[0] = ((img * g.h + iy) * g.w + ix) * g.c;
  at[1] = at[0] + g.c;
  at[2] = at[0] + g.w * g.c;
  at[3] = at[2] + g.c;
  return true;
}

// One output row of a full 2x2 window in one pass over the channels: the same std::max chain as the
// general loop (from -inf, in window order), so the same bits, NaN included.
template <typename T>
[[gnu::always_inline]] inline void max_2x2_row(const T* __restrict x0, const T* __restrict x1, const T* __restrict x2,
                                               const T* __restrict x3, T* __restrict y, std::int64_t c) {
  for (std::int64_t i = 0; i < c; ++i)
    y[i] = std::max(std::max(std::max(std::max(-std::numeric_limits<T>::infinity(), x0[i]), x1[i]), x2[i]), x3[i]);
}

// The gradient of one output row of a full 2x2 window that tiles the input, assigned: dy goes to the first
// position (window order) where x == y, +0 to the others, as the general loop's pending values give.
template <typename T>
[[gnu::always_inline]] inline void route_2x2_row(const T* __restrict x0, const T* __restrict x1,
                                                 const T* __restrict x2, const T* __restrict x3,
                                                 const T* __restrict ymax, const T* __restrict dy, T* __restrict d0,
                                                 T* __restrict d1, T* __restrict d2, T* __restrict d3, std::int64_t c) {
  for (std::int64_t i = 0; i < c; ++i) {
    const T m = ymax[i], p = dy[i];
    const bool h0 = x0[i] == m, h1 = x1[i] == m, h2 = x2[i] == m, h3 = x3[i] == m;
    d0[i] = h0 ? p : T(0);
    d1[i] = h1 & !h0 ? p : T(0);
    d2[i] = h2 & !(h0 | h1) ? p : T(0);
    d3[i] = h3 & !(h0 | h1 | h2) ? p : T(0);
  }
}

// The float rows (training's) for the machine's widest vectors; double (the gradient checks) inlines the
// templates above.
[[gnu::target_clones("avx512f", "avx2", "default")]] void max_2x2_row_float(const float* x, const std::int64_t* at,
                                                                          float* y, std::int64_t c) {
  max_2x2_row<float>(x + at[0], x + at[1], x + at[2], x + at[3], y, c);
}
[[gnu::target_clones("avx512f", "avx2", "default")]] void route_2x2_row_float(const float* x, const std::int64_t* at,
                                                                            const float* ymax, const float* dy,
                                                                            float* dx, std::int64_t c) {
  route_2x2_row<float>(x + at[0], x + at[1], x + at[2], x + at[3], ymax, dy, dx + at[0], dx + at[1], dx + at[2],
                       dx + at[3], c);
}
template <typename T>
void max_2x2(const T* x, const std::int64_t* at, T* y, std::int64_t c) {
  if constexpr (std::is_same_v<T, float>) max_2x2_row_float(x, at, y, c);
  else max_2x2_row<T>(x + at[0], x + at[1], x + at[2], x + at[3], y, c);
}
template <typename T>
void route_2x2(const T* x, const std::int64_t* at, const T* ymax, const T* dy, T* dx, std::int64_t c) {
  if constexpr (std::is_same_v<T, float>) route_2x2_row_float(x, at, ymax, dy, dx, c);
  else route_2x2_row<T>(x + at[0], x + at[1], x + at[2], x + at[3], ymax, dy, dx + at[0], dx + at[1], dx + at[2], dx + at[3], c);
}

}  // namespace

template <typename T>
void maxpool2d_forward(const T* x, T* y, const PoolGeometry& g) {
  parallel_for(g.n * g.oh * g.ow, 1024, [&](std::int64_t r0, std::int64_t r1) {
    std::int64_t at[4];
    for (std::int64_t r = r0; r < r1; ++r) {
      T* out = y + r * g.c;
      if (full_2x2(g, r, at)) {
        max_2x2(x, at, out, g.c);
        continue;
      }
      std::fill(out, out + g.c, -std::numeric_limits<T>::infinity());
      for_each_in_window(g, r, [&](std::int64_t at) {
        for (std::int64_t c = 0; c < g.c; ++c) out[c] = std::max(out[c], x[at + c]);
      });
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
    std::int64_t at2x2[4];
    for (std::int64_t r = i0 * g.oh * g.ow; r < i1 * g.oh * g.ow; ++r) {
      const T* ymax = y + r * g.c;
      if (tiles && full_2x2(g, r, at2x2)) {  // the seed's windows: one pass, no pending values
        route_2x2(x, at2x2, ymax, dy + r * g.c, dx, g.c);
        continue;
      }
      std::copy(dy + r * g.c, dy + (r + 1) * g.c, pending.begin());
      T* pend = pending.data();
      for_each_in_window(g, r, [&](std::int64_t at) {
        for (std::int64_t c = 0; c < g.c; ++c) {
          const bool hit = x[at + c] == ymax[c];
          const T p = pend[c];
          const T give = hit ? p : T(0);
          dx[at + c] = tiles ? give : dx[at + c] + give;
          pend[c] = hit ? T(0) : p;
        }
      });
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
