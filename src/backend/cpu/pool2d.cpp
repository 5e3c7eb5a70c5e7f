// pool2d.cpp: MaxPooling2D on the CPU, NHWC, channels innermost so the inner loops vectorise.
#include <algorithm>
#include <limits>

#include "backend/cpu/ops.hpp"

namespace dropnet::backend::cpu {

template <typename T>
void maxpool2d_forward(const T* x, T* y, const PoolGeometry& g) {
  for (std::int64_t r = 0; r < g.n * g.oh * g.ow; ++r) {
    const std::int64_t img = r / (g.oh * g.ow), oy = (r / g.ow) % g.oh, ox = r % g.ow;
    T* out = y + r * g.c;
    std::fill(out, out + g.c, -std::numeric_limits<T>::infinity());
    for (std::int64_t ky = 0; ky < g.ph; ++ky) {
      const std::int64_t iy = oy * g.sh - g.pad_top + ky;
      if (iy < 0 || iy >= g.h) continue;
      for (std::int64_t kx = 0; kx < g.pw; ++kx) {
        const std::int64_t ix = ox * g.sw - g.pad_left + kx;
        if (ix < 0 || ix >= g.w) continue;
        const T* in = x + ((img * g.h + iy) * g.w + ix) * g.c;
        for (std::int64_t c = 0; c < g.c; ++c) out[c] = std::max(out[c], in[c]);
      }
    }
  }
}

template <typename T>
void maxpool2d_backward(const T* x, const T* y, const T* dy, T* dx, const PoolGeometry& g) {
  std::fill(dx, dx + g.n * g.h * g.w * g.c, T(0));
  for (std::int64_t img = 0; img < g.n; ++img) {
    for (std::int64_t oy = 0; oy < g.oh; ++oy) {
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        const std::int64_t r = (img * g.oh + oy) * g.ow + ox;
        for (std::int64_t c = 0; c < g.c; ++c) {
          const T target = y[r * g.c + c];
          bool routed = false;
          for (std::int64_t ky = 0; ky < g.ph && !routed; ++ky) {
            const std::int64_t iy = oy * g.sh - g.pad_top + ky;
            if (iy < 0 || iy >= g.h) continue;
            for (std::int64_t kx = 0; kx < g.pw; ++kx) {
              const std::int64_t ix = ox * g.sw - g.pad_left + kx;
              if (ix < 0 || ix >= g.w) continue;
              const std::int64_t at = ((img * g.h + iy) * g.w + ix) * g.c + c;
              if (x[at] == target) {
                dx[at] += dy[r * g.c + c];
                routed = true;
                break;
              }
            }
          }
        }
      }
    }
  }
}

template void maxpool2d_forward<float>(const float*, float*, const PoolGeometry&);
template void maxpool2d_forward<double>(const double*, double*, const PoolGeometry&);
template void maxpool2d_backward<float>(const float*, const float*, const float*, float*, const PoolGeometry&);
template void maxpool2d_backward<double>(const double*, const double*, const double*, double*, const PoolGeometry&);

}  // namespace dropnet::backend::cpu
