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

// The tile code (winograd_tiles.hpp, winograd_transforms.hpp) returns vectors by value; GCC notes that
// such a return has another ABI where the vector is wider than the target's. That code is internal to this
// file and inlined, so no call crosses an ABI boundary.
#pragma GCC diagnostic ignored "-Wpsabi"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/winograd_tiles.hpp"

namespace dropnet::backend::cpu {
namespace {

using namespace winograd;  // the tile work (winograd_tiles.hpp) and its vector types

// Groups of blocks whose weight gradients are summed separately (then added in order): enough for two
// threads to share unevenly loaded cores, few enough that each group's output transform and partial result
// (~0.1 ms each for conv2d_1) stay small.
constexpr std::int64_t kWeightChunks = 8;

// `count` floats of `storage` (grown as needed, never shrunk), starting at a 64-byte boundary.
float* aligned_floats(std::vector<float>& storage, std::int64_t count) {
  if (storage.size() < std::size_t(count + 16)) storage.resize(std::size_t(count + 16));
  const auto misalignment = reinterpret_cast<std::uintptr_t>(storage.data()) % 64;
  return storage.data() + (misalignment == 0 ? 0 : (64 - misalignment) / sizeof(float));
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
