// winograd.cpp: 3x3 stride-1 convolutions by Winograd's minimal filtering, F(2x2,3x3) or F(4x4,3x3)
// (Lavin & Gray 2016; the 1-D transforms are in winograd_transforms.hpp).
//
// Forward: the output is cut into m x m tiles; tile t reads an alpha x alpha input patch d_t (alpha = m + 2,
// zeros where it leaves the input) and
//   y_t = A^T [ sum_c (G g_ck G^T) . (B^T d_tc B) ] A      (. = element-wise, per output channel k),
// i.e. per transformed position (alpha^2 of them) one GEMM [tiles x C] x [C x K] between the transformed
// input V and the transformed kernel U, then the output transform. U = G g G^T is computed once per call.
// The input gradient is the same correlation of dy (padding 2 - pad) with the kernel rotated by 180
// degrees and its C and K swapped. The weight gradient uses F(3x3, m x m), m x m tiles of dy as the
// "filters" (winograd_transforms.hpp): dw = G^T [ sum_t (A dy_t A^T) . (B^T x_t B) ] G, per position one
// GEMM [C x tiles] x [tiles x K] that sums over the tiles, and the output transform once per chunk.
//
// The tiles are processed in blocks of kBlockTiles: a block's tiles are transformed into a buffer that
// stays in the L2 cache, multiplied, and transformed back, so x and y (or dy) are each read or written
// once. The blocks depend on the geometry only; the threads claim them as they become free. Every block
// writes only its own outputs, and the weight gradient sums over kWeightChunks fixed groups of blocks, each
// into its own partial result, added in chunk order afterwards: no result depends on which thread did what,
// or on how many threads there are.
//
// K is padded to a multiple of kPad in the transformed domain (zero columns of U), so the GEMM kernel
// (winograd_gemm.hpp) always works on whole vectors; C needs no padding.
//
// The per-block work is compiled once per instruction set, with that set's vectors (AVX-512: 16 floats,
// AVX2: 8, x86-64 baseline: 4), and picked at run time: one set of template code, three register
// layouts. (GCC's target_clones would compile the same vector type into every clone; 16-float vectors on
// AVX2 spilled so much that its GEMMs ran at 6 GFLOP/s instead of ~100.)
#include "backend/cpu/winograd.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

// The tile code below (and in winograd_transforms.hpp) returns vectors by value; GCC notes that such a
// return has another ABI where the vector is wider than the target's. It is local to this file and
// inlined, so no call crosses an ABI boundary.
#pragma GCC diagnostic ignored "-Wpsabi"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/winograd_gemm.hpp"
#include "backend/cpu/winograd_transforms.hpp"

namespace dropnet::backend::cpu {
namespace {

using winograd::for_each_slice;
using winograd::kPad;
using winograd::kWidth;
using winograd::load;
using winograd::Operand;
using winograd::store;
using winograd::transform_2d;
using winograd::Transforms;

// Tiles per block. With C = K = 64 and F(4x4) a block's transformed inputs and products are 2 x 36 x 32 x 64
// floats = 590 KB, in the 1 MB L2 of a core; 16 to 32 tiles were fastest on the seed's conv2d_1 (48 to 96
// up to 9% slower; docs/cpu-convolution.md).
constexpr std::int64_t kBlockTiles = 32;
// Groups of blocks whose weight gradients are summed separately (then added in order): enough for two
// threads to share unevenly loaded cores, few enough that each group's output transform and partial result
// (~0.1 ms each for conv2d_1) stay small.
constexpr std::int64_t kWeightChunks = 8;

std::int64_t round_up(std::int64_t v, std::int64_t to) { return (v + to - 1) / to * to; }

// `count` floats of `storage` (grown as needed, never shrunk), starting at a 64-byte boundary.
float* aligned_floats(std::vector<float>& storage, std::int64_t count) {
  if (storage.size() < std::size_t(count + 16)) storage.resize(std::size_t(count + 16));
  const auto misalignment = reinterpret_cast<std::uintptr_t>(storage.data()) % 64;
  return storage.data() + (misalignment == 0 ? 0 : (64 - misalignment) / sizeof(float));
}

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
ImageSpan image_span(const TileGrid& grid, std::int64_t t0, std::int64_t t1, const float* data,
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

// Calls fn(part, item) for every item of [0, items), on `parts` threads (part = which one: it owns that
// part's scratch buffer) that claim runs of `grain` consecutive items as they become free. Which thread
// computes an item changes no result: every item writes only its own outputs (or its own partial sums), so
// a thread slowed by other processes on the machine holds up only the items it has claimed.
template <typename F>
void for_each_claimed(std::int64_t items, std::int64_t parts, std::int64_t grain, F&& fn) {
  std::atomic<std::int64_t> next{0};
  parallel_for(parts, 1, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t part = p0; part < p1; ++part)
      for (std::int64_t first; (first = next.fetch_add(grain)) < items;)
        for (std::int64_t item = first; item < std::min(items, first + grain); ++item) fn(part, item);
  });
}

// One scratch buffer per run, kept by the calling thread between calls (faulting in a fresh ~1 MB per call
// and thread costs more than the work that fills it; conv2d.cpp does the same).
std::vector<float*> run_buffers(std::int64_t parts, std::int64_t floats) {
  thread_local std::vector<std::vector<float>> calling_thread_buffers;
  std::vector<std::vector<float>>& buffers = calling_thread_buffers;
  if (buffers.size() < std::size_t(parts)) buffers.resize(std::size_t(parts));
  std::vector<float*> out;
  for (std::int64_t p = 0; p < parts; ++p) out.push_back(aligned_floats(buffers[std::size_t(p)], floats));
  return out;
}

// ---- per-ISA tile work ----------------------------------------------------------------------------

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

// ---- one set of the tile work per instruction set ---------------------------------------------------

// The work of one block (correlate, weight), once per call (kernel) and once per weight-gradient chunk
// (taps), with `m` the tile, for one instruction set.
struct IsaKernels {
  void (*correlate)(const Correlation&, const TileGrid&, std::int64_t, std::int64_t, float*);
  void (*weight)(const WeightGradient&, const TileGrid&, std::int64_t, std::int64_t, float*, float*, float*, bool);
  void (*kernel)(int m, const float* w, std::int64_t c, std::int64_t k, std::int64_t kp, float* u);
  void (*taps)(int m, const float* sums, std::int64_t c, std::int64_t k, std::int64_t kp, float* dw);
};

template <typename Vec>
struct TileWork {
  [[gnu::always_inline]] static void correlate(const Correlation& p, const TileGrid& grid, std::int64_t t0,
                                               std::int64_t t1, float* scratch) {
    if (grid.m == 2) correlate_tiles<2, Vec>(p, grid, t0, t1, scratch);
    else correlate_tiles<4, Vec>(p, grid, t0, t1, scratch);
  }
  [[gnu::always_inline]] static void weight(const WeightGradient& p, const TileGrid& grid, std::int64_t t0,
                                            std::int64_t t1, float* scratch, float* sums, float* db_sum, bool first) {
    if (grid.m == 2) weight_tiles<2, Vec>(p, grid, t0, t1, scratch, sums, db_sum, first);
    else weight_tiles<4, Vec>(p, grid, t0, t1, scratch, sums, db_sum, first);
  }
  [[gnu::always_inline]] static void kernel(int m, const float* w, std::int64_t c, std::int64_t k, std::int64_t kp,
                                            float* u) {
    if (m == 2) transform_kernel<2, Vec>(w, c, k, kp, u);
    else transform_kernel<4, Vec>(w, c, k, kp, u);
  }
  [[gnu::always_inline]] static void taps(int m, const float* sums, std::int64_t c, std::int64_t k, std::int64_t kp,
                                          float* dw) {
    if (m == 2) weight_taps<2, Vec>(sums, c, k, kp, dw);
    else weight_taps<4, Vec>(sums, c, k, kp, dw);
  }
};

// The same four functions compiled for AVX-512, AVX2 + FMA and the baseline (SSE2). `flatten` inlines all
// the tile code into them, lambdas included, so that none of it is left compiled for the baseline only.
#define DROPNET_WINOGRAD_ISA(name, target, Vec)                                                           \
  target [[gnu::flatten]] void name##_correlate(const Correlation& p, const TileGrid& grid, std::int64_t t0, \
                                                std::int64_t t1, float* scratch) {                        \
    TileWork<Vec>::correlate(p, grid, t0, t1, scratch);                                                   \
  }                                                                                                        \
  target [[gnu::flatten]] void name##_weight(const WeightGradient& p, const TileGrid& grid, std::int64_t t0, \
                                             std::int64_t t1, float* scratch, float* sums, float* db_sum,  \
                                             bool first) {                                                 \
    TileWork<Vec>::weight(p, grid, t0, t1, scratch, sums, db_sum, first);                                 \
  }                                                                                                        \
  target [[gnu::flatten]] void name##_kernel(int m, const float* w, std::int64_t c, std::int64_t k,         \
                                             std::int64_t kp, float* u) {                                  \
    TileWork<Vec>::kernel(m, w, c, k, kp, u);                                                              \
  }                                                                                                        \
  target [[gnu::flatten]] void name##_taps(int m, const float* sums, std::int64_t c, std::int64_t k,        \
                                           std::int64_t kp, float* dw) {                                   \
    TileWork<Vec>::taps(m, sums, c, k, kp, dw);                                                            \
  }                                                                                                        \
  constexpr IsaKernels name##_kernels{name##_correlate, name##_weight, name##_kernel, name##_taps};

DROPNET_WINOGRAD_ISA(avx512, [[gnu::target("avx512f")]], winograd::Vec16)
DROPNET_WINOGRAD_ISA(avx2, [[gnu::target("avx2,fma")]], winograd::Vec8)
DROPNET_WINOGRAD_ISA(baseline, , winograd::Vec4)
#undef DROPNET_WINOGRAD_ISA

bool isa_supported(WinogradIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case WinogradIsa::Avx512: return __builtin_cpu_supports("avx512f");
    case WinogradIsa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
}

const IsaKernels& isa_kernels(WinogradIsa isa) {
  static const WinogradIsa best = isa_supported(WinogradIsa::Avx512) ? WinogradIsa::Avx512
                                  : isa_supported(WinogradIsa::Avx2) ? WinogradIsa::Avx2
                                                                     : WinogradIsa::Baseline;
  switch (isa == WinogradIsa::Best ? best : isa) {
    case WinogradIsa::Avx512: return avx512_kernels;
    case WinogradIsa::Avx2: return avx2_kernels;
    default: return baseline_kernels;
  }
}

// ---- the passes ------------------------------------------------------------------------------------

void correlate(const IsaKernels& isa, const Correlation& p, int m, unsigned parts_wanted) {
  const TileGrid grid(p.g.n, p.g.oh, p.g.ow, m);
  const std::int64_t blocks = grid.blocks();
  if (blocks == 0) return;
  const std::int64_t parts = std::min<std::int64_t>(std::max(parts_wanted, 1u), blocks);
  const std::vector<float*> scratch = run_buffers(parts, BlockLayout(p.g, p.kp, m).total);
  // Runs of a few blocks per claim, so that the next block a block prefetches is mostly its thread's own.
  const std::int64_t grain = std::max<std::int64_t>(1, blocks / (8 * parts));
  for_each_claimed(blocks, parts, grain, [&](std::int64_t part, std::int64_t block) {
    isa.correlate(p, grid, block * kBlockTiles, std::min(grid.count, (block + 1) * kBlockTiles),
                  scratch[std::size_t(part)]);
  });
}

// y = x (*) w + b through U, for a kernel laid out (3, 3, C, K) of the geometry's C and K.
void correlate_with_kernel(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g, int m,
                           unsigned parts, WinogradIsa which) {
  const IsaKernels& isa = isa_kernels(which);
  const std::int64_t kp = round_up(g.k, kPad), a = m + 2;
  // Kept by the calling thread between calls, as the blocks' buffers are (run_buffers).
  thread_local std::vector<float> calling_thread_kernel, calling_thread_bias;
  float* u = aligned_floats(calling_thread_kernel, a * a * g.c * kp);
  float* bias = aligned_floats(calling_thread_bias, kp);
  isa.kernel(m, w, g.c, g.k, kp, u);
  std::fill(bias, bias + kp, 0.0f);
  if (b != nullptr) std::copy(b, b + g.k, bias);
  correlate(isa, {x, u, bias, y, g, kp}, m, parts);
}

}  // namespace

bool winograd_applies(const ConvGeometry& g) { return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1; }

bool winograd_isa_supported(WinogradIsa isa) { return isa_supported(isa); }

void winograd_forward(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g, int tile,
                      unsigned parts, WinogradIsa isa) {
  correlate_with_kernel(x, w, b, y, g, tile, parts, isa);
}

void winograd_input_grad(const float* dy, const float* w, float* dx, const ConvGeometry& g, int tile,
                         unsigned parts, WinogradIsa isa) {
  // dx[iy, ix, c] = sum dy[iy + pad_top - ky, ix + pad_left - kx, k] w[ky, kx, c, k]: with ky' = 2 - ky a
  // correlation of dy (padding 2 - pad) with the kernel rotated by 180 degrees, laid out (3, 3, K, C).
  thread_local std::vector<float> calling_thread_rotated;  // kept, as correlate_with_kernel's buffers are
  std::vector<float>& rotated = calling_thread_rotated;
  rotated.resize(std::size_t(9 * g.c * g.k));
  for (std::int64_t ky = 0; ky < 3; ++ky)
    for (std::int64_t kx = 0; kx < 3; ++kx)
      for (std::int64_t c = 0; c < g.c; ++c)
        for (std::int64_t k = 0; k < g.k; ++k)
          rotated[std::size_t(((ky * 3 + kx) * g.k + k) * g.c + c)] = w[(((2 - ky) * 3 + (2 - kx)) * g.c + c) * g.k + k];
  const ConvGeometry transposed{g.n, g.oh, g.ow, g.k, 3, 3, g.c, 1, 1, 2 - g.pad_top, 2 - g.pad_left, g.h, g.w};
  correlate_with_kernel(dy, rotated.data(), nullptr, dx, transposed, tile, parts, isa);
}

void winograd_weight_grad(const float* x, const float* dy, float* dw, float* db, const ConvGeometry& g, int tile,
                          unsigned parts_wanted, WinogradIsa which) {
  const IsaKernels& isa = isa_kernels(which);
  const TileGrid grid(g.n, g.oh, g.ow, tile);
  const std::int64_t taps = 9 * g.c * g.k, slot = taps + g.k;  // a chunk's dw, then its db
  const std::int64_t blocks = grid.blocks();
  if (blocks == 0) {
    std::fill(dw, dw + taps, 0.0f);
    if (db != nullptr) std::fill(db, db + g.k, 0.0f);
    return;
  }
  const WeightGradient p{x, dy, g, round_up(g.k, kPad)};
  const std::int64_t a = tile + 2, sums_floats = a * a * g.c * p.kp;
  const std::int64_t chunks = std::min(blocks, kWeightChunks);
  const std::int64_t parts = std::min<std::int64_t>(std::max(parts_wanted, 1u), chunks);
  // Per run: the block scratch, then the chunk's sums and db sum.
  const std::int64_t scratch_floats = round_up(BlockLayout(g, p.kp, tile).total, kPad);
  const std::vector<float*> scratch = run_buffers(parts, scratch_floats + sums_floats + p.kp);
  thread_local std::vector<float> calling_thread_partials;
  std::vector<float>& partials = calling_thread_partials;  // the workers must see the caller's, not theirs
  if (partials.size() < std::size_t(chunks * slot)) partials.resize(std::size_t(chunks * slot));
  for_each_claimed(chunks, parts, 1, [&](std::int64_t part, std::int64_t chunk) {
    float* block_scratch = scratch[std::size_t(part)];
    float* sums = block_scratch + scratch_floats;
    float* db_sum = sums + sums_floats;
    std::fill(db_sum, db_sum + p.kp, 0.0f);
    const std::int64_t first = blocks * chunk / chunks;
    for (std::int64_t block = first; block < blocks * (chunk + 1) / chunks; ++block)
      isa.weight(p, grid, block * kBlockTiles, std::min(grid.count, (block + 1) * kBlockTiles), block_scratch,
                   sums, db_sum, block == first);
    float* out = partials.data() + chunk * slot;
    isa.taps(tile, sums, g.c, g.k, p.kp, out);
    std::copy(db_sum, db_sum + g.k, out + taps);
  });
  // The chunks' partials in chunk order, element by element.
  parallel_for(slot, 4096, [&](std::int64_t e0, std::int64_t e1) {
    for (std::int64_t e = e0; e < e1; ++e) {
      float sum = partials[std::size_t(e)];
      for (std::int64_t chunk = 1; chunk < chunks; ++chunk) sum += partials[std::size_t(chunk * slot + e)];
      if (e < taps) dw[e] = sum;
      else if (db != nullptr) db[e - taps] = sum;
    }
  });
}

}  // namespace dropnet::backend::cpu
