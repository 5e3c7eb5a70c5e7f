// avg_pool_math.hpp: AveragePooling2D and GlobalAveragePooling2D, one output or one input gradient per
// call, shared by the CPU backend (backend/cpu/avg_pool.cpp) and the CUDA kernels (kernels/avg_pool.cu):
// the same sums in the same order, so the same bits on both. NHWC, float.
//
// Keras' average over a window counts the positions inside the input only ("same" padding excludes the
// pad). Backward gathers rather than scatters: input position (iy, ix) sums dy / count over the windows
// that contain it, in row-major window order, so no two threads write one element and no atomics reorder
// the sum.
#pragma once

#include <cstdint>

#include "kernels/hd.hpp"

namespace dropnet::kernels {

struct AvgPoolGeometry {
  std::int64_t n, h, w, c;
  std::int64_t ph, pw, sh, sw;
  std::int64_t pad_top, pad_left;
  std::int64_t oh, ow;
};

DROPNET_HD std::int64_t avg_pool_min(std::int64_t a, std::int64_t b) { return a < b ? a : b; }
DROPNET_HD std::int64_t avg_pool_max(std::int64_t a, std::int64_t b) { return a > b ? a : b; }

// The input rows [*begin, *end) of output row o (likewise columns).
DROPNET_HD void avg_pool_span(std::int64_t o, std::int64_t stride, std::int64_t pad, std::int64_t size,
                              std::int64_t extent, std::int64_t* begin, std::int64_t* end) {
  const std::int64_t first = o * stride - pad;
  *begin = avg_pool_max(first, 0);
  *end = avg_pool_min(first + size, extent);
}

// How many input positions window (oy, ox) averages.
DROPNET_HD float avg_pool_count(const AvgPoolGeometry& g, std::int64_t oy, std::int64_t ox) {
  std::int64_t y0, y1, x0, x1;
  avg_pool_span(oy, g.sh, g.pad_top, g.ph, g.h, &y0, &y1);
  avg_pool_span(ox, g.sw, g.pad_left, g.pw, g.w, &x0, &x1);
  return float((y1 - y0) * (x1 - x0));
}

// y[img, oy, ox, ch]: the window's sum (row-major order) divided by its count.
DROPNET_HD float avg_pool_output(const float* x, const AvgPoolGeometry& g, std::int64_t img, std::int64_t oy,
                                 std::int64_t ox, std::int64_t ch) {
  std::int64_t y0, y1, x0, x1;
  avg_pool_span(oy, g.sh, g.pad_top, g.ph, g.h, &y0, &y1);
  avg_pool_span(ox, g.sw, g.pad_left, g.pw, g.w, &x0, &x1);
  float sum = 0.0f;
  for (std::int64_t iy = y0; iy < y1; ++iy)
    for (std::int64_t ix = x0; ix < x1; ++ix) sum += x[((img * g.h + iy) * g.w + ix) * g.c + ch];
  return sum / float((y1 - y0) * (x1 - x0));
}

// The outputs [*begin, *end) along one axis whose windows contain input index i: o * s - pad <= i and
// i < o * s - pad + size.
DROPNET_HD void avg_pool_windows_of(std::int64_t i, std::int64_t stride, std::int64_t pad, std::int64_t size,
                                    std::int64_t out, std::int64_t* begin, std::int64_t* end) {
  const std::int64_t hi = i + pad;              // o * s <= hi
  const std::int64_t lo = hi - size + 1;        // o * s >= lo
  *begin = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  *end = avg_pool_min(hi / stride + 1, out);
}

// dx[img, iy, ix, ch] = sum over the windows holding (iy, ix) of dy / count.
DROPNET_HD float avg_pool_input_grad(const float* dy, const AvgPoolGeometry& g, std::int64_t img, std::int64_t iy,
                                     std::int64_t ix, std::int64_t ch) {
  std::int64_t oy0, oy1, ox0, ox1;
  avg_pool_windows_of(iy, g.sh, g.pad_top, g.ph, g.oh, &oy0, &oy1);
  avg_pool_windows_of(ix, g.sw, g.pad_left, g.pw, g.ow, &ox0, &ox1);
  float sum = 0.0f;
  for (std::int64_t oy = oy0; oy < oy1; ++oy)
    for (std::int64_t ox = ox0; ox < ox1; ++ox)
      sum += dy[((img * g.oh + oy) * g.ow + ox) * g.c + ch] / avg_pool_count(g, oy, ox);
  return sum;
}

}  // namespace dropnet::kernels
