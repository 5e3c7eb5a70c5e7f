// conv2d.cpp: Conv2D on the CPU as im2col + GEMM. NHWC input and the Keras kernel layout (KH, KW, C, K)
// make this natural: a patch row is (ky, kx, c) in memory order, and the kernel is already the
// (KH*KW*C, K) matrix, so y = patches @ kernel needs no transposes. OpenBLAS threads the GEMMs; the
// copies around them are split over the cores by parallel_for.
//
// The bias rides in the GEMMs: with a bias each patch row gets a trailing 1 and the kernel the bias as an
// extra last row, so the forward GEMM adds it, and the weight-gradient GEMM's extra last row is the bias
// gradient (the column sums of dy). That saves a pass over y in forward and one over dy in backward.
#include <algorithm>
#include <vector>

#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"

namespace dropnet::backend::cpu {
namespace {

// A per-thread patch buffer of at least `count` elements, kept between calls: allocating (and zeroing) up
// to 16 MiB twice per layer and step cost more than the copies that fill it. im2col writes every element
// that a GEMM then reads, so stale contents never matter.
template <typename T>
T* scratch(std::size_t count) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

// Images per GEMM: bounds the patch matrix to ~16 MiB of floats while keeping the GEMM tall.
std::int64_t images_per_chunk(const ConvGeometry& g) {
  const std::int64_t per_image = g.oh * g.ow * (g.kh * g.kw * g.c + 1);
  return std::clamp<std::int64_t>((std::int64_t(4) << 20) / std::max<std::int64_t>(per_image, 1), 1, g.n);
}

// patches (rows = images [n0, n1) x OH x OW, row stride ld): KH*KW*C values, zeros where the window leaves
// the input, then a 1 when ld has room for it (the bias column).
template <typename T>
void im2col(const T* x, T* patches, std::int64_t n0, std::int64_t n1, const ConvGeometry& g, std::int64_t ld) {
  const std::int64_t cols = g.kh * g.kw * g.c;
  const std::int64_t rows = (n1 - n0) * g.oh * g.ow;
  parallel_for(rows, 4096, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t img = n0 + r / (g.oh * g.ow);
      const std::int64_t oy = (r / g.ow) % g.oh, ox = r % g.ow;
      T* out = patches + r * ld;
      if (ld > cols) out[cols] = T(1);
      const std::int64_t ix0 = ox * g.sw - g.pad_left;
      const bool row_inside = ix0 >= 0 && ix0 + g.kw <= g.w;
      for (std::int64_t ky = 0; ky < g.kh; ++ky) {
        const std::int64_t iy = oy * g.sh - g.pad_top + ky;
        if (row_inside && iy >= 0 && iy < g.h) {
          // The window's row is KW * C contiguous floats of x (NHWC): one copy, as a plain loop (conv1's
          // rows are 9 floats, too short for a library call).
          const T* in = x + ((img * g.h + iy) * g.w + ix0) * g.c;
          for (std::int64_t j = 0; j < g.kw * g.c; ++j) out[j] = in[j];
          out += g.kw * g.c;
          continue;
        }
        for (std::int64_t kx = 0; kx < g.kw; ++kx, out += g.c) {
          const std::int64_t ix = ix0 + kx;
          if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
            std::fill(out, out + g.c, T(0));
          } else {
            const T* in = x + ((img * g.h + iy) * g.w + ix) * g.c;
            for (std::int64_t c = 0; c < g.c; ++c) out[c] = in[c];
          }
        }
      }
    }
  });
}

// The adjoint of im2col: adds each patch entry (row stride ld) back onto the input position it came from.
template <typename T>
void col2im_add(const T* patches, T* dx, std::int64_t n0, std::int64_t n1, const ConvGeometry& g, std::int64_t ld) {
  // Split by image: the patches of one image overlap in dx, those of two images never do.
  parallel_for(n1 - n0, 2, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t img = n0 + i0; img < n0 + i1; ++img) {
      for (std::int64_t oy = 0; oy < g.oh; ++oy) {
        for (std::int64_t ox = 0; ox < g.ow; ++ox) {
          const T* in = patches + (((img - n0) * g.oh + oy) * g.ow + ox) * ld;
          const std::int64_t ix0 = ox * g.sw - g.pad_left;
          const bool row_inside = ix0 >= 0 && ix0 + g.kw <= g.w;
          for (std::int64_t ky = 0; ky < g.kh; ++ky) {
            const std::int64_t iy = oy * g.sh - g.pad_top + ky;
            if (row_inside && iy >= 0 && iy < g.h) {  // KW * C contiguous floats, as in im2col
              T* out = dx + ((img * g.h + iy) * g.w + ix0) * g.c;
              for (std::int64_t j = 0; j < g.kw * g.c; ++j) out[j] += in[j];
              in += g.kw * g.c;
              continue;
            }
            for (std::int64_t kx = 0; kx < g.kw; ++kx, in += g.c) {
              const std::int64_t ix = ix0 + kx;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              T* out = dx + ((img * g.h + iy) * g.w + ix) * g.c;
              for (std::int64_t c = 0; c < g.c; ++c) out[c] += in[c];
            }
          }
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g) {
  const std::int64_t cols = g.kh * g.kw * g.c, per_image = g.oh * g.ow;
  const std::int64_t ld = cols + (b != nullptr ? 1 : 0);
  const T* kernel = w;
  std::vector<T> kernel_and_bias;  // (cols + 1, K): the kernel with the bias as its last row
  if (b != nullptr) {
    kernel_and_bias.resize(std::size_t(ld * g.k));
    std::copy(w, w + cols * g.k, kernel_and_bias.begin());
    std::copy(b, b + g.k, kernel_and_bias.begin() + cols * g.k);
    kernel = kernel_and_bias.data();
  }
  const std::int64_t chunk = images_per_chunk(g);
  T* patches = scratch<T>(std::size_t(chunk * per_image * ld));
  for (std::int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const std::int64_t n1 = std::min(g.n, n0 + chunk), rows = (n1 - n0) * per_image;
    im2col(x, patches, n0, n1, g, ld);
    gemm<T>(false, false, rows, g.k, ld, T(1), patches, ld, kernel, g.k, T(0), y + n0 * per_image * g.k, g.k);
  }
}

template <typename T>
void conv2d_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, const ConvGeometry& g) {
  const std::int64_t cols = g.kh * g.kw * g.c, per_image = g.oh * g.ow;
  const std::int64_t ld = cols + (db != nullptr ? 1 : 0);
  std::vector<T> dw_and_db;  // (cols + 1, K) when there is a bias: dw, then db as the last row
  if (db != nullptr) dw_and_db.resize(std::size_t(ld * g.k));
  T* dw_target = db != nullptr ? dw_and_db.data() : dw;
  const std::int64_t chunk = images_per_chunk(g);
  T* patches = scratch<T>(std::size_t(chunk * per_image * ld));
  if (dx != nullptr) std::fill(dx, dx + g.n * g.h * g.w * g.c, T(0));
  for (std::int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const std::int64_t n1 = std::min(g.n, n0 + chunk), rows = (n1 - n0) * per_image;
    const T* dy_chunk = dy + n0 * per_image * g.k;
    im2col(x, patches, n0, n1, g, ld);
    // dw (ld x K) += patches^T (ld x rows) @ dy (rows x K); with the bias column its last row is sum dy.
    gemm<T>(true, false, ld, g.k, rows, T(1), patches, ld, dy_chunk, g.k, n0 == 0 ? T(0) : T(1), dw_target,
            g.k);
    if (dx != nullptr) {
      // dpatches (rows x cols, stride ld) = dy (rows x K) @ w^T (K x cols), reusing the patch buffer.
      gemm<T>(false, true, rows, cols, g.k, T(1), dy_chunk, g.k, w, g.k, T(0), patches, ld);
      col2im_add(patches, dx, n0, n1, g, ld);
    }
  }
  if (db != nullptr) {
    std::copy(dw_and_db.begin(), dw_and_db.begin() + cols * g.k, dw);
    std::copy(dw_and_db.begin() + cols * g.k, dw_and_db.end(), db);
  }
}

template void conv2d_forward<float>(const float*, const float*, const float*, float*, const ConvGeometry&);
template void conv2d_forward<double>(const double*, const double*, const double*, double*, const ConvGeometry&);
template void conv2d_backward<float>(const float*, const float*, const float*, float*, float*, float*,
                                     const ConvGeometry&);
template void conv2d_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                      const ConvGeometry&);

}  // namespace dropnet::backend::cpu
