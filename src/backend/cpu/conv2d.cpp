// conv2d.cpp: Conv2D on the CPU as im2col + GEMM. NHWC input and the Keras kernel layout (KH, KW, C, K)
// make this natural: a patch row is (ky, kx, c) in memory order, and the kernel is already the
// (KH*KW*C, K) matrix, so y = patches @ kernel needs no transposes.
//
// The batch is cut into blocks of whole images, about kBlockRows patch rows each, and the threads take the
// blocks in contiguous runs. A thread writes one block's patches into its own buffer (a few MiB at most) and
// hands them to a single-threaded OpenBLAS GEMM at once, so the patch matrix is read from cache rather than
// from memory, and the copies and the GEMMs of the two threads overlap. (One im2col of 16 MiB chunks
// followed by an OpenBLAS-threaded GEMM was ~1.5x slower for conv2 and 2x for conv1 of the seed model.)
// The block layout depends on the geometry only, never on the thread count, and the weight gradient sums
// the blocks' partial gradients in block order, so results are the same for any number of threads.
//
// The bias rides in the GEMMs: with a bias each patch row gets a trailing 1 and the kernel the bias as an
// extra last row, so the forward GEMM adds it, and the weight-gradient GEMM's extra last row is the bias
// gradient (the column sums of dy). That saves a pass over y in forward and one over dy in backward.
//
// float convolutions go elsewhere where conv_path.hpp's rule says so, pass by pass: few input channels to the
// direct kernels of conv2d_small_c.cpp (forward and weight gradient), 3x3 stride-1 ones to the Winograd
// passes (winograd.cpp); the im2col + GEMM code here takes every other case, and double.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "backend/cpu/conv2d_small_c.hpp"
#include "backend/cpu/conv_path.hpp"
#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/winograd.hpp"

namespace dropnet::backend::cpu {
namespace {

// Patch rows per block of work: measured on the seed model's convolutions (AMD EPYC, 2 threads), blocks of
// 512-1024 rows ran ~10% faster than 128 and 2.5x faster than 8192, whose patches no longer fit in cache.
constexpr std::int64_t kBlockRows = 1024;

struct Blocks {
  std::int64_t images;  // images per block (the last block may have fewer)
  std::int64_t count;
};

Blocks blocks_of(const ConvGeometry& g) {
  const std::int64_t images =
      std::clamp<std::int64_t>(kBlockRows / std::max<std::int64_t>(g.oh * g.ow, 1), 1, std::max<std::int64_t>(g.n, 1));
  return {images, (g.n + images - 1) / images};
}

// Calls fn(block, n0, n1, patches) for every block of blocks_of(g) (images [n0, n1)), the blocks split over the threads in
// contiguous runs; `patches` is the running thread's buffer of `ld`-wide rows for one block. The buffers
// belong to the calling thread and are kept between calls (allocating and faulting in up to a few MiB per
// thread and call cost more than the copies that fill them); im2col writes every element a GEMM reads.
template <typename T, typename F>
void for_each_block(const ConvGeometry& g, const Blocks& blocks, std::int64_t ld, F&& fn) {
  const std::int64_t parts = std::min<std::int64_t>(cpu_threads(), blocks.count);
  thread_local std::vector<std::vector<T>> calling_thread_buffers;
  std::vector<std::vector<T>>& buffers = calling_thread_buffers;  // the workers must see the caller's, not theirs
  if (buffers.size() < std::size_t(parts)) buffers.resize(std::size_t(parts));
  const auto capacity = std::size_t(blocks.images * g.oh * g.ow * ld);
  for (std::int64_t p = 0; p < parts; ++p)
    if (buffers[std::size_t(p)].size() < capacity) buffers[std::size_t(p)].resize(capacity);
  parallel_for(parts, 1, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      T* patches = buffers[std::size_t(p)].data();
      for (std::int64_t block = blocks.count * p / parts; block < blocks.count * (p + 1) / parts; ++block) {
        const std::int64_t n0 = block * blocks.images;
        fn(block, n0, std::min(g.n, n0 + blocks.images), patches);
      }
    }
  });
}

// patches (rows = images [n0, n1) x OH x OW, row stride ld): KH*KW*C values, zeros where the window leaves
// the input, then a 1 when ld has room for it (the bias column).
template <typename T>
void im2col(const T* x, T* patches, std::int64_t n0, std::int64_t n1, const ConvGeometry& g, std::int64_t ld) {
  const std::int64_t cols = g.kh * g.kw * g.c;
  const std::int64_t rows = (n1 - n0) * g.oh * g.ow;
  for (std::int64_t r = 0; r < rows; ++r) {
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
}

// The adjoint of im2col: adds each patch entry (row stride ld) back onto the input position it came from.
template <typename T>
void col2im_add(const T* patches, T* dx, std::int64_t n0, std::int64_t n1, const ConvGeometry& g, std::int64_t ld) {
  for (std::int64_t img = n0; img < n1; ++img) {
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
}

template <typename T>
void direct_forward(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g) {
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
  for_each_block<T>(g, blocks_of(g), ld, [&](std::int64_t, std::int64_t n0, std::int64_t n1, T* patches) {
    im2col(x, patches, n0, n1, g, ld);
    gemm_on_this_thread<T>(false, false, (n1 - n0) * per_image, g.k, ld, T(1), patches, ld, kernel, g.k, T(0),
                           y + n0 * per_image * g.k, g.k);
  });
}

// dx only (the weight gradient went elsewhere): dpatches = dy w^T, then col2im; x is not read.
template <typename T>
void direct_input_grad(const T* w, const T* dy, T* dx, const ConvGeometry& g) {
  const std::int64_t cols = g.kh * g.kw * g.c, per_image = g.oh * g.ow;
  for_each_block<T>(g, blocks_of(g), cols, [&](std::int64_t, std::int64_t n0, std::int64_t n1, T* patches) {
    gemm_on_this_thread<T>(false, true, (n1 - n0) * per_image, cols, g.k, T(1), dy + n0 * per_image * g.k, g.k, w,
                           g.k, T(0), patches, cols);
    std::fill(dx + n0 * g.h * g.w * g.c, dx + n1 * g.h * g.w * g.c, T(0));
    col2im_add(patches, dx, n0, n1, g, cols);
  });
}

template <typename T>
void direct_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, const ConvGeometry& g) {
  const std::int64_t cols = g.kh * g.kw * g.c, per_image = g.oh * g.ow;
  const std::int64_t ld = cols + (db != nullptr ? 1 : 0);
  if (g.n == 0) {  // no patches: zero gradients
    std::fill(dw, dw + cols * g.k, T(0));
    if (db != nullptr) std::fill(db, db + g.k, T(0));
    return;
  }
  // Each block's dw (and db as the last row when there is a bias column) goes to its own slot, and the
  // slots are summed in block order afterwards, so no thread count or split changes the result.
  const Blocks blocks = blocks_of(g);
  const auto slot = std::size_t(ld * g.k);
  thread_local std::vector<T> calling_thread_partial;
  std::vector<T>& partial = calling_thread_partial;  // the workers must see the caller's, not theirs
  if (partial.size() < slot * std::size_t(blocks.count)) partial.resize(slot * std::size_t(blocks.count));
  for_each_block<T>(g, blocks, ld, [&](std::int64_t block, std::int64_t n0, std::int64_t n1, T* patches) {
    const std::int64_t rows = (n1 - n0) * per_image;
    const T* dy_block = dy + n0 * per_image * g.k;
    im2col(x, patches, n0, n1, g, ld);
    // dw (ld x K) = patches^T (ld x rows) @ dy (rows x K); with the bias column its last row is sum dy.
    gemm_on_this_thread<T>(true, false, ld, g.k, rows, T(1), patches, ld, dy_block, g.k, T(0),
                           partial.data() + slot * std::size_t(block), g.k);
    if (dx != nullptr) {
      // dpatches (rows x cols, stride ld) = dy (rows x K) @ w^T (K x cols), reusing the patch buffer; the
      // block's images are this thread's alone, so it zeroes and accumulates their dx without locks.
      gemm_on_this_thread<T>(false, true, rows, cols, g.k, T(1), dy_block, g.k, w, g.k, T(0), patches, ld);
      std::fill(dx + n0 * g.h * g.w * g.c, dx + n1 * g.h * g.w * g.c, T(0));
      col2im_add(patches, dx, n0, n1, g, ld);
    }
  });
  T* dw_target = dw;
  std::vector<T> dw_and_db;  // (cols + 1, K) when there is a bias column: dw, then db as the last row
  if (ld > cols) {
    dw_and_db.resize(slot);
    dw_target = dw_and_db.data();
  }
  parallel_for(std::int64_t(slot), 4096, [&](std::int64_t e0, std::int64_t e1) {
    std::copy(partial.data() + e0, partial.data() + e1, dw_target + e0);
    for (std::int64_t block = 1; block < blocks.count; ++block) {
      const T* part = partial.data() + slot * std::size_t(block);
      for (std::int64_t e = e0; e < e1; ++e) dw_target[e] += part[e];
    }
  });
  if (ld > cols) {
    std::copy(dw_and_db.begin(), dw_and_db.begin() + cols * g.k, dw);
    std::copy(dw_and_db.begin() + cols * g.k, dw_and_db.end(), db);
  }
}

}  // namespace

void conv2d_forward_on_path(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
                            ConvPath path) {
  if (path == ConvPath::SmallC && small_c_applies(g)) return conv2d_small_c_forward(x, w, b, y, g);
  if ((path == ConvPath::Winograd2 || path == ConvPath::Winograd4) && winograd_applies(g))
    return winograd_forward(x, w, b, y, g, winograd_tile(path), cpu_threads());
  direct_forward(x, w, b, y, g);
}

void conv2d_backward_on_paths(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                              const ConvGeometry& g, ConvPath dx_path, ConvPath dw_path) {
  const auto winograd = [&](ConvPath p) { return (p == ConvPath::Winograd2 || p == ConvPath::Winograd4) && winograd_applies(g); };
  if (dx != nullptr && winograd(dx_path)) {  // the small-C kernels have no input gradient
    winograd_input_grad(dy, w, dx, g, winograd_tile(dx_path), cpu_threads());
    dx = nullptr;
  }
  if (dw_path == ConvPath::SmallC && small_c_applies(g)) {
    conv2d_small_c_weight_gradient(x, dy, dw, db, g);
  } else if (winograd(dw_path)) {
    winograd_weight_grad(x, dy, dw, db, g, winograd_tile(dw_path), cpu_threads());
  } else {
    return direct_backward(x, w, dy, dx, dw, db, g);
  }
  if (dx != nullptr) direct_input_grad(w, dy, dx, g);
}

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g) {
  if constexpr (std::is_same_v<T, float>) conv2d_forward_on_path(x, w, b, y, g, conv_path(g, ConvPass::Forward));
  else direct_forward(x, w, b, y, g);
}

template <typename T>
void conv2d_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, const ConvGeometry& g) {
  if constexpr (std::is_same_v<T, float>) {
    const ConvPath dx_path = dx != nullptr ? conv_path(g, ConvPass::InputGrad) : ConvPath::Direct;
    conv2d_backward_on_paths(x, w, dy, dx, dw, db, g, dx_path, conv_path(g, ConvPass::WeightGrad));
  } else {
    direct_backward(x, w, dy, dx, dw, db, g);
  }
}

template void conv2d_forward<float>(const float*, const float*, const float*, float*, const ConvGeometry&);
template void conv2d_forward<double>(const double*, const double*, const double*, double*, const ConvGeometry&);
template void conv2d_backward<float>(const float*, const float*, const float*, float*, float*, float*,
                                     const ConvGeometry&);
template void conv2d_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                      const ConvGeometry&);

}  // namespace dropnet::backend::cpu
