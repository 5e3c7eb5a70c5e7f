// pool_window.hpp: the input positions of one pooling window, shared by MaxPooling2D (pool2d.cpp) and the
// fused Conv2D-ReLU -> MaxPooling2D block (relu_pool.cpp), so both walk a window in the same order: the
// order decides which of equal maxima takes the gradient.
#pragma once

#include <cstdint>

#include "backend/backend.hpp"

namespace dropnet::backend::cpu {

// Calls at(offset, index) for each input position of output position r's window that lies inside the
// input, in row-major window order: offset is the position's first channel in x (and dx), index its
// row-major place in the ph x pw window.
template <typename F>
void for_each_in_window(const PoolGeometry& g, std::int64_t r, F&& at) {
  const std::int64_t img = r / (g.oh * g.ow), oy = (r / g.ow) % g.oh, ox = r % g.ow;
  for (std::int64_t ky = 0; ky < g.ph; ++ky) {
    const std::int64_t iy = oy * g.sh - g.pad_top + ky;
    if (iy < 0 || iy >= g.h) continue;
    for (std::int64_t kx = 0; kx < g.pw; ++kx) {
      const std::int64_t ix = ox * g.sw - g.pad_left + kx;
      if (ix < 0 || ix >= g.w) continue;
      at(((img * g.h + iy) * g.w + ix) * g.c, ky * g.pw + kx);
    }
  }
}

}  // namespace dropnet::backend::cpu
