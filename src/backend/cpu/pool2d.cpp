// pool2d.cpp: MaxPooling2D on the CPU, NHWC, channels innermost so the inner loops vectorise.
#include <algorithm>
#include <limits>
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

}  // namespace

template <typename T>
void maxpool2d_forward(const T* x, T* y, const PoolGeometry& g) {
  parallel_for(g.n * g.oh * g.ow, 1024, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      T* out = y + r * g.c;
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
    for (std::int64_t r = i0 * g.oh * g.ow; r < i1 * g.oh * g.ow; ++r) {
      const T* ymax = y + r * g.c;
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
