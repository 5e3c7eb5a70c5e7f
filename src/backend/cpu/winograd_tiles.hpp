// winograd_tiles.hpp: the tile work of the Winograd convolutions (winograd.cpp), as templates on the tile m
// and the vector type: the transforms of whole tiles and the blocks of the forward correlation and of the
// weight gradient. winograd.cpp instantiates them once per instruction set. Internal to winograd.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backend/backend.hpp"
#include "backend/cpu/winograd_gemm.hpp"
#include "backend/cpu/winograd_transforms.hpp"

namespace dropnet::backend::cpu::winograd {

// Tiles per block. With C = K = 64 and F(4x4) a block's transformed inputs and products are 2 x 36 x 32 x 64
// floats = 590 KB, in the 1 MB L2 of a core; 16 to 32 tiles were fastest on the seed's conv2d_1 (48 to 96
// up to 9% slower; docs/cpu-convolution.md).
constexpr std::int64_t kBlockTiles = 32;

inline std::int64_t round_up(std::int64_t v, std::int64_t to) { return (v + to - 1) / to * to; }

// The m x m tiles of an (N, out_h, out_w) output, row-major within each image, images in order.
struct TileGrid {
  std::int64_t m, rows, cols, per_image, count;
  TileGrid(std::int64_t n, std::int64_t out_h, std::int64_t out_w, std::int64_t tile)
      : m(tile), rows((out_h + tile - 1) / tile), cols((out_w + tile - 1) / tile), per_image(rows * cols),
        count(n * per_image) {}
  struct Tile {
    std::int64_t image, y, x;  // the tile's first output position
  };
  Tile at(std::int64_t t) const {
    const std::int64_t in_image = t % per_image;
    return {t / per_image, (in_image / cols) * m, (in_image % cols) * m};
  }
  std::int64_t blocks() const { return (count + kBlockTiles - 1) / kBlockTiles; }
};

// The memory of the whole images that tiles [t0, t1) of `grid` cover in an (N, rows, cols, channels) tensor.
struct ImageSpan {
  const char* begin;
  std::int64_t bytes;
};
inline ImageSpan image_span(const TileGrid& grid, std::int64_t t0, std::int64_t t1, const float* data,
                     std::int64_t image_floats) {
  if (t0 >= t1) return {nullptr, 0};
  const std::int64_t first = grid.at(t0).image, last = grid.at(t1 - 1).image;
  return {reinterpret_cast<const char*>(data + first * image_floats),
          (last + 1 - first) * image_floats * std::int64_t(sizeof(float))};
}

// Part `part` of `parts` of a prefetch of `span` into the cache (for reading, or for writing when `write`).
// The blocks spread the next block's reads and this block's writes over their GEMMs, which are
// compute-bound, so that the transforms that follow find the data in the cache: without it ~25% of the
// seed's forward went to waiting for memory (measured by running the same tiles on a batch small enough
// to stay in the cache).
template <bool kWrite>
[[gnu::always_inline]] inline void prefetch_part(const ImageSpan& span, int part, int parts) {
  constexpr std::int64_t kLine = 64;
  const std::int64_t lines = (span.bytes + kLine - 1) / kLine;
  for (std::int64_t line = lines * part / parts; line < lines * (part + 1) / parts; ++line)
    __builtin_prefetch(span.begin + line * kLine, kWrite ? 1 : 0, 3);
}

// V = B^T d B of the alpha x alpha input patch whose top-left corner is (image, y0, x0), zero where it
// leaves the input; position (i, j) at dst + (i * alpha + j) * pos_step. A patch that lies inside is read
// without checks; one at an edge checks each pixel (reads nothing outside x) rather than being copied.
template <int M, typename Vec>
[[gnu::always_inline]] inline void input_tile(const float* x, const ConvGeometry& g, std::int64_t image,
                                              std::int64_t y0, std::int64_t x0, float* dst, std::ptrdiff_t pos_step) {
  constexpr int A = M + 2;
  const std::int64_t c = g.c, corner = ((image * g.h + y0) * g.w + x0) * c, row_step = g.w * c;
  auto transform = [&]<bool kInside>() {
    for_each_slice<Vec>(c, [&]<typename V>(std::int64_t s) {
      transform_2d<A, A, V>(
          [](const auto& d, auto& o) { Transforms<M>::input(d, o); },
          [&](int i, int j) {
            if (!kInside && (y0 + i < 0 || y0 + i >= g.h || x0 + j < 0 || x0 + j >= g.w)) return V{};
            return load<V>(x + (corner + i * row_step + j * c + s));
          },
          [&](int i, int j, const V& v) { store(dst + (i * A + j) * pos_step + s, v); });
    });
  };
  if (y0 >= 0 && x0 >= 0 && y0 + A <= g.h && x0 + A <= g.w) transform.template operator()<true>();
  else transform.template operator()<false>();
}

// ---- forward correlation (the forward pass and the input gradient) ---------------------------------

struct Correlation {
  const float* x;     // (N, H, W, C)
  const float* u;     // transformed kernel: alpha^2 positions x (C, kp)
  const float* bias;  // (kp): the bias, or zeros, then zeros up to kp
  float* y;           // (N, OH, OW, K)
  ConvGeometry g;     // 3x3, stride 1
  std::int64_t kp;    // K rounded up to kPad
};

// Where a block's buffers lie in its run's scratch. The transformed tiles are stored position by position
// (one GEMM operand each); the positions are a multiple of 16 floats plus one vector apart, not a power of
// two: with 32 tiles of 64 channels they would be 8 KiB apart, and the 36 values of one tile's transform
// would fall into one L1 set (that made the transforms ~5x slower).
struct BlockLayout {
  std::int64_t v_step, d_step;       // position strides of the transformed inputs (C wide) and of the products
  std::int64_t d, dy_tile, total;     // offsets (floats) of the products and of the dy tile; size
  BlockLayout(const ConvGeometry& g, std::int64_t kp, int m) {
    const std::int64_t a = m + 2;
    v_step = round_up(kBlockTiles * g.c, kPad) + kPad;
    d_step = kBlockTiles * kp + kPad;
    d = a * a * v_step;
    dy_tile = d + a * a * d_step;
    total = dy_tile + m * m * kp;
  }
};

template <int M, typename Vec>
[[gnu::always_inline]] inline void correlate_tiles(const Correlation& p, const TileGrid& grid, std::int64_t t0,
                                                   std::int64_t t1, float* scratch) {
  constexpr int A = M + 2, P = A * A;
  const ConvGeometry& g = p.g;
  const std::int64_t c = g.c, kp = p.kp, bt = t1 - t0;
  const BlockLayout layout(g, kp, M);
  float* v = scratch;                      // P positions x bt tiles x C
  float* prod = scratch + layout.d;        // P positions x bt tiles x kp
  for (std::int64_t t = t0; t < t1; ++t) {
    const TileGrid::Tile tile = grid.at(t);
    input_tile<M, Vec>(p.x, g, tile.image, tile.y - g.pad_top, tile.x - g.pad_left, v + (t - t0) * c, layout.v_step);
  }
  const ImageSpan next_x = image_span(grid, t1, std::min(grid.count, t1 + kBlockTiles), p.x, g.h * g.w * c);
  const ImageSpan this_y = image_span(grid, t0, t1, p.y, g.oh * g.ow * g.k);
  for (int pos = 0; pos < P; ++pos) {
    prefetch_part<false>(next_x, pos, P);
    prefetch_part<true>(this_y, pos, P);
    winograd::small_gemm<Vec>(bt, kp, c, {v + pos * layout.v_step, c, 1}, p.u + pos * c * kp, kp,
                         prod + pos * layout.d_step, kp, false);
  }
  // y = A^T M A + b, where the tile lies inside the output; the channels beyond K are not stored.
  for (std::int64_t t = t0; t < t1; ++t) {
    const TileGrid::Tile tile = grid.at(t);
    const std::int64_t rows = std::min<std::int64_t>(M, g.oh - tile.y), cols = std::min<std::int64_t>(M, g.ow - tile.x);
    const float* src = prod + (t - t0) * kp;
    float* y = p.y + ((tile.image * g.oh + tile.y) * g.ow + tile.x) * g.k;
    for (std::int64_t s = 0; s < g.k; s += kWidth<Vec>) {  // the slices that hold channels below K
      const Vec bias = load<Vec>(p.bias + s);
      const bool whole = s + kWidth<Vec> <= g.k;
      const std::size_t bytes = std::size_t(std::min(kWidth<Vec>, g.k - s)) * sizeof(float);
      transform_2d<A, M, Vec>([](const auto& d, auto& o) { Transforms<M>::output(d, o); },
                              [&](int i, int j) { return load<Vec>(src + (i * A + j) * layout.d_step + s); },
                              [&](int i, int j, const Vec& out) {
                                if (i >= rows || j >= cols) return;
                                const Vec value = out + bias;
                                float* to = y + (i * g.ow + j) * g.k + s;
                                if (whole) store(to, value);  // not through memcpy's variable size
                                else std::memcpy(to, &value, bytes);
                              });
    }
  }
}

// U = G g G^T for every (c, k) of a kernel (3, 3, C, K) -> alpha^2 positions x (C, kp), zero beyond K.
template <int M, typename Vec>
[[gnu::always_inline]] inline void transform_kernel(const float* w, std::int64_t c_count, std::int64_t k_count,
                                                    std::int64_t kp, float* u) {
  constexpr int A = M + 2;
  if (k_count < kp) std::fill(u, u + A * A * c_count * kp, 0.0f);
  for (std::int64_t c = 0; c < c_count; ++c)
    for_each_slice<Vec>(k_count, [&]<typename V>(std::int64_t s) {
      transform_2d<3, A, V>([](const auto& d, auto& o) { Transforms<M>::kernel(d, o); },
                            [&](int i, int j) { return load<V>(w + ((i * 3 + j) * c_count + c) * k_count + s); },
                            [&](int i, int j, const V& v) { store(u + ((i * A + j) * c_count + c) * kp + s, v); });
    });
}

// ---- weight gradient ---------------------------------------------------------------------------------

struct WeightGradient {
  const float* x;   // (N, H, W, C)
  const float* dy;  // (N, OH, OW, K)
  ConvGeometry g;
  std::int64_t kp;
};

// Adds the block's tiles to sums (alpha^2 positions x (C, kp)) and their dy rows to db_sum (kp); the first
// block of a chunk sets sums instead (db_sum is zeroed by the caller).
template <int M, typename Vec>
[[gnu::always_inline]] inline void weight_tiles(const WeightGradient& p, const TileGrid& grid, std::int64_t t0,
                                                std::int64_t t1, float* scratch, float* sums, float* db_sum,
                                                bool first) {
  constexpr int A = M + 2, P = A * A;
  const ConvGeometry& g = p.g;
  const std::int64_t c = g.c, k = g.k, kp = p.kp, bt = t1 - t0;
  const BlockLayout layout(g, kp, M);
  float* v = scratch;                        // P positions x bt tiles x C: the x patches
  float* d = scratch + layout.d;             // P positions x bt tiles x kp: the dy tiles
  float* dy_tile = scratch + layout.dy_tile; // M x M x kp
  for (std::int64_t t = t0; t < t1; ++t) {
    const TileGrid::Tile tile = grid.at(t);
    input_tile<M, Vec>(p.x, g, tile.image, tile.y - g.pad_top, tile.x - g.pad_left, v + (t - t0) * c, layout.v_step);
    // The dy tile, zero past the output's edge and beyond K; its rows also go into db.
    const std::int64_t rows = std::min<std::int64_t>(M, g.oh - tile.y), cols = std::min<std::int64_t>(M, g.ow - tile.x);
    if (rows < M || cols < M || k < kp) std::fill(dy_tile, dy_tile + M * M * kp, 0.0f);
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) {
        const float* from = p.dy + ((tile.image * g.oh + tile.y + i) * g.ow + tile.x + j) * k;
        float* to = dy_tile + (i * M + j) * kp;
        for (std::int64_t q = 0; q < k; ++q) {
          to[q] = from[q];
          db_sum[q] += from[q];
        }
      }
    // A z A^T, position (i, j) at d + (i * A + j) * d_step.
    float* dst = d + (t - t0) * kp;
    for (std::int64_t s = 0; s < kp; s += kWidth<Vec>)
      transform_2d<M, A, Vec>([](const auto& z, auto& o) { Transforms<M>::gradient(z, o); },
                              [&](int i, int j) { return load<Vec>(dy_tile + (i * M + j) * kp + s); },
                              [&](int i, int j, const Vec& value) { store(dst + (i * A + j) * layout.d_step + s, value); });
  }
  // sums[pos] (C x kp) += V[pos]^T (C x bt) D[pos] (bt x kp): V read transposed in place.
  const std::int64_t next = std::min(grid.count, t1 + kBlockTiles);
  const ImageSpan next_x = image_span(grid, t1, next, p.x, g.h * g.w * c);
  const ImageSpan next_dy = image_span(grid, t1, next, p.dy, g.oh * g.ow * k);
  for (int pos = 0; pos < P; ++pos) {
    prefetch_part<false>(next_x, pos, P);
    prefetch_part<false>(next_dy, pos, P);
    winograd::small_gemm<Vec>(c, kp, bt, {v + pos * layout.v_step, 1, c}, d + pos * layout.d_step, kp,
                         sums + pos * c * kp, kp, !first);
  }
}

// dw (3, 3, C, K) = G^T S G for each (c, k) of the sums S (alpha^2 positions x (C, kp)).
template <int M, typename Vec>
[[gnu::always_inline]] inline void weight_taps(const float* sums, std::int64_t c_count, std::int64_t k_count,
                                               std::int64_t kp, float* dw) {
  constexpr int A = M + 2;
  for (std::int64_t c = 0; c < c_count; ++c)
    for_each_slice<Vec>(k_count, [&]<typename V>(std::int64_t s) {
      transform_2d<A, 3, V>([](const auto& d, auto& o) { Transforms<M>::taps(d, o); },
                            [&](int i, int j) { return load<V>(sums + ((i * A + j) * c_count + c) * kp + s); },
                            [&](int i, int j, const V& v) { store(dw + ((i * 3 + j) * c_count + c) * k_count + s, v); });
    });
}

}  // namespace dropnet::backend::cpu::winograd
