// conv2d_small_c.cpp: direct Conv2D kernels for few input channels (conv2d_small_c.hpp).
//
// With C = 3 and a 3x3 kernel a window holds 27 values ("taps") and a filter bank of K = 64 outputs is
// 27 x 64 weights (7 KB, L1-resident). im2col + GEMM spends as long building and reading the 27-wide patch
// matrix as multiplying it, and OpenBLAS runs the skinny weight-gradient GEMM (27 x 64, inner dimension
// = pixels) at a fraction of its speed. Here the patches are never built:
//
//   forward          for P output pixels at a time, the K outputs of each pixel sit in vector registers
//                    (AVX-512: K = 64 is 4 zmm per pixel, P = 6), start from the bias, and take one
//                    multiply-add per tap: the tap's input value broadcast times the tap's weight row.
//   weight gradient  for a group of 6 taps at a time, a 6 x 64 block of dw sits in registers and takes,
//                    per output pixel, the pixel's 6 input values broadcast times its dy row; the bias
//                    gradient is one more tap whose input is 1 everywhere.
//
// Each image is first copied into a zero-padded buffer (Hp x Wp x (C + 1), a few KB), so that every window
// of every output pixel lies inside it and tap t is at the same offset from each pixel's window corner: no
// bounds checks in the loops, any stride and padding. The extra channel holds ones (the bias tap).
//
// Instruction sets: one binary, the kernels compiled three times (always-inlined templates on GCC vector
// types, instantiated in functions marked [[gnu::target]]) and the widest path the CPU has picked at run
// time (isa.hpp). The multiply-adds are contracted into FMAs where the target has FMA (GCC's default
// -ffp-contract=fast in GNU C++; this file is deliberately not in DROPNET_NO_CONTRACT_SOURCES): a
// convolution is tolerance-tested against a double reference, not bit-compared with the GPU.
//
// Determinism: the forward has no reduction across threads (each output is one thread's). The weight
// gradient sums in blocks of whole images fixed by the geometry (as conv2d.cpp's blocks), each block into
// its own slot, pixels in order; the slots are added in block order. No thread count changes a bit.
#include "backend/cpu/conv2d_small_c.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "dropnet/errors.hpp"

namespace dropnet::backend::cpu {
namespace {

// L floats in one vector register: 16 (zmm), 8 (ymm), 4 (xmm). Unaligned and allowed to alias float.
template <int L>
struct VectorOf {
  typedef float type __attribute__((vector_size(L * sizeof(float)), aligned(sizeof(float)), may_alias));
};

// Taps per weight-gradient tile; the tap list is padded to a multiple of it (the padding taps read offset
// 0 and their rows are dropped).
constexpr int kGradientTaps = 6;
// Output pixels per block of the weight gradient: as conv2d.cpp's blocks (whole images, about this many
// pixels), so the partial sums depend on the geometry only.
constexpr std::int64_t kBlockPixels = 1024;
// Pixels per pass of the weight-gradient tiles over dy: 128 rows of 64 floats (32 KB) stay in L1 while
// the tap groups take turns over them.
constexpr std::int64_t kChunkPixels = 128;
// The packed weights' row length is K rounded up to this (the widest chunk of channels, 4 zmm).
constexpr std::int64_t kChannelAlign = 64;

// ---- the padded image --------------------------------------------------------------------------------

struct Padded {
  std::int64_t hp, wp, cp;  // rows, columns, channels (C + 1: the last is all ones)
  std::int64_t size() const { return hp * wp * cp; }
};

Padded padded_of(const ConvGeometry& g) {
  return {std::max(g.h + g.pad_top, (g.oh - 1) * g.sh + g.kh), std::max(g.w + g.pad_left, (g.ow - 1) * g.sw + g.kw),
          g.c + 1};
}

// xp = image n of x, shifted by the leading pads, zeros around it, and a channel of ones after the C real
// ones everywhere (the padding too: the bias tap sees 1 at every window corner).
void pad_image(const float* x, std::int64_t n, const ConvGeometry& g, const Padded& p, float* xp) {
  for (std::int64_t yy = 0; yy < p.hp; ++yy) {
    const std::int64_t iy = yy - g.pad_top;
    for (std::int64_t xx = 0; xx < p.wp; ++xx) {
      const std::int64_t ix = xx - g.pad_left;
      float* out = xp + (yy * p.wp + xx) * p.cp;
      const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
      const float* in = x + ((n * g.h + iy) * g.w + ix) * g.c;
      for (std::int64_t c = 0; c < g.c; ++c) out[c] = inside ? in[c] : 0.0f;  // a few floats: no memcpy call
      out[g.c] = 1.0f;
    }
  }
}

// Offsets in the padded image of the window's taps (ky, kx, c), in the kernel's row order, from the
// window's corner; then the ones tap when `ones`, then offset-0 padding up to a multiple of `multiple`.
std::vector<std::int64_t> tap_offsets(const ConvGeometry& g, const Padded& p, bool ones, std::int64_t multiple) {
  std::vector<std::int64_t> off;
  for (std::int64_t ky = 0; ky < g.kh; ++ky)
    for (std::int64_t kx = 0; kx < g.kw; ++kx)
      for (std::int64_t c = 0; c < g.c; ++c) off.push_back((ky * p.wp + kx) * p.cp + c);
  if (ones) off.push_back(g.c);
  while (off.size() % std::size_t(multiple) != 0) off.push_back(0);
  return off;
}

// The window corner of output pixel q (row-major over OH x OW) in a padded image.
inline const float* window_of(const float* xp, std::int64_t q, const ConvGeometry& g, const Padded& p) {
  return xp + ((q / g.ow) * g.sh * p.wp + (q % g.ow) * g.sw) * p.cp;
}

// ---- forward -----------------------------------------------------------------------------------------

struct ForwardImage {
  const float* xp;                // padded image
  const std::int64_t* off;        // tap offsets
  std::int64_t taps;
  const float* w;                 // (taps, kp) packed weights, zeros beyond K
  const float* bias;              // (kp), zeros beyond K
  std::int64_t kp;
  float* y;                       // (OH * OW, K) outputs of the image
  const ConvGeometry* g;
  const Padded* p;
};

// out[p][0, L*KV) = bias + sum over taps of window[p][off[t]] * w[t]: the accumulators (P x KV vectors)
// never leave the registers.
template <int L, int KV, int P>
[[gnu::always_inline]] inline void forward_tile(const float* const* window, const std::int64_t* off,
                                                 std::int64_t taps, const float* w, std::int64_t kp,
                                                 const float* bias, float* const* out) {
  using V = typename VectorOf<L>::type;
  V acc[P][KV];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) acc[p][v] = *reinterpret_cast<const V*>(bias + v * L);
  for (std::int64_t t = 0; t < taps; ++t) {
    const std::int64_t o = off[t];
    V wt[KV];
#pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) wt[v] = *reinterpret_cast<const V*>(w + t * kp + v * L);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const float s = window[p][o];
#pragma GCC unroll 16
      for (int v = 0; v < KV; ++v) acc[p][v] += s * wt[v];
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) *reinterpret_cast<V*>(out[p] + v * L) = acc[p][v];
}

// One image: tiles of P pixels (row-major, across row ends) times chunks of L*KV channels. A chunk past K
// or a pixel past the last goes to `spill` first and only what exists is copied out.
template <int L, int KV, int P>
[[gnu::always_inline]] inline void forward_image(const ForwardImage& f) {
  constexpr std::int64_t kWidth = L * KV;
  const ConvGeometry& g = *f.g;
  const std::int64_t pixels = g.oh * g.ow;
  alignas(64) float spill[P][kWidth];
  for (std::int64_t q0 = 0; q0 < pixels; q0 += P) {
    const std::int64_t count = std::min<std::int64_t>(P, pixels - q0);
    const float* window[P];
    for (int p = 0; p < P; ++p) window[p] = window_of(f.xp, q0 + std::min<std::int64_t>(p, count - 1), g, *f.p);
    for (std::int64_t kc = 0; kc < g.k; kc += kWidth) {
      const bool whole = kc + kWidth <= g.k;
      float* out[P];
      for (int p = 0; p < P; ++p) out[p] = whole && p < count ? f.y + (q0 + p) * g.k + kc : spill[p];
      forward_tile<L, KV, P>(window, f.off, f.taps, f.w + kc, f.kp, f.bias + kc, out);
      if (!whole)
        for (std::int64_t p = 0; p < count; ++p) std::copy(spill[p], spill[p] + (g.k - kc), f.y + (q0 + p) * g.k + kc);
    }
  }
}

// The three compilations. Registers: AVX-512 6 x 4 accumulators + 4 weights + 1 broadcast of 32 zmm;
// AVX2 6 x 2 + 2 + 1 of 16 ymm; SSE2 4 x 2 + 2 + 1 of 16 xmm.
[[gnu::target("avx512f")]] void forward_image_avx512(const ForwardImage& f) { forward_image<16, 4, 6>(f); }
[[gnu::target("avx2,fma")]] void forward_image_avx2(const ForwardImage& f) { forward_image<8, 2, 6>(f); }
void forward_image_baseline(const ForwardImage& f) { forward_image<4, 2, 4>(f); }

// ---- weight gradient ---------------------------------------------------------------------------------

struct GradientChunk {
  const float* const* window;     // the chunk's pixels' window corners
  std::int64_t pixels;
  const std::int64_t* off;        // tap offsets, a multiple of kGradientTaps of them
  std::int64_t taps;
  const float* dy;                // the chunk's dy rows (stride K)
  std::int64_t k;
  float* scratch;                 // kChunkPixels x 64: dy of a partial channel chunk, zero-padded
  float* partial;                 // (taps, kp) sums, added to
  std::int64_t kp;
  const float* next_dy;           // the next chunk's dy rows, to prefetch (null: none)
  std::int64_t next_floats;
};

// acc[j][0, L*KV) += sum over the pixels of window[q][off[j]] * dy[q]: a kGradientTaps x L*KV block of the
// sums held in registers across the pixels. Prefetches `lines_per_pixel` cache lines of [prefetch,
// prefetch_end) per pixel.
template <int L, int KV>
[[gnu::always_inline]] inline void gradient_tile(const float* const* window, std::int64_t pixels,
                                                  const std::int64_t* off, const float* dy, std::int64_t ldy,
                                                  float* acc_rows, std::int64_t kp, const char* prefetch,
                                                  const char* prefetch_end, std::int64_t lines_per_pixel) {
  using V = typename VectorOf<L>::type;
  constexpr int J = kGradientTaps;
  V acc[J][KV];
  std::int64_t o[J];
#pragma GCC unroll 16
  for (int j = 0; j < J; ++j) {
    o[j] = off[j];
#pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) acc[j][v] = *reinterpret_cast<const V*>(acc_rows + j * kp + v * L);
  }
  for (std::int64_t q = 0; q < pixels; ++q) {
    V d[KV];
#pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) d[v] = *reinterpret_cast<const V*>(dy + q * ldy + v * L);
    const float* win = window[q];
    for (std::int64_t i = 0; i < lines_per_pixel; ++i, prefetch += 64)
      if (prefetch < prefetch_end) __builtin_prefetch(prefetch);
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j) {
      const float s = win[o[j]];
#pragma GCC unroll 16
      for (int v = 0; v < KV; ++v) acc[j][v] += s * d[v];
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < J; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) *reinterpret_cast<V*>(acc_rows + j * kp + v * L) = acc[j][v];
}

template <int L, int KV>
[[gnu::always_inline]] inline void gradient_chunk(const GradientChunk& c) {
  constexpr std::int64_t kWidth = L * KV;
  for (std::int64_t kc = 0; kc < c.k; kc += kWidth) {
    const float* dy = c.dy + kc;
    std::int64_t ldy = c.k;
    if (kc + kWidth > c.k) {  // the last, partial chunk of channels: zero-padded rows, read in full
      for (std::int64_t q = 0; q < c.pixels; ++q) {
        float* row = c.scratch + q * kWidth;
        std::copy(dy + q * c.k, dy + q * c.k + (c.k - kc), row);
        std::fill(row + (c.k - kc), row + kWidth, 0.0f);
      }
      dy = c.scratch;
      ldy = kWidth;
    }
    for (std::int64_t t = 0; t < c.taps; t += kGradientTaps) {
      // The first pass over the chunk also fetches the next chunk's dy: with the hardware prefetchers
      // alone, dy's first reads wait on memory (dy is 58 MB for the seed model, read once).
      const bool first = kc == 0 && t == 0 && c.next_dy != nullptr;
      const auto* next = reinterpret_cast<const char*>(c.next_dy);
      const std::int64_t bytes = first ? c.next_floats * std::int64_t(sizeof(float)) : 0;
      gradient_tile<L, KV>(c.window, c.pixels, c.off + t, dy, ldy, c.partial + t * c.kp + kc, c.kp, next,
                           next + bytes, bytes > 0 ? (bytes / 64 + c.pixels) / c.pixels : 0);
    }
  }
}

// Registers: 6 taps x 4 accumulators + 4 dy + 1 broadcast of 32 zmm; 6 x 2 + 2 + 1 of 16 ymm or xmm.
[[gnu::target("avx512f")]] void gradient_chunk_avx512(const GradientChunk& c) { gradient_chunk<16, 4>(c); }
[[gnu::target("avx2,fma")]] void gradient_chunk_avx2(const GradientChunk& c) { gradient_chunk<8, 2>(c); }
void gradient_chunk_baseline(const GradientChunk& c) { gradient_chunk<4, 2>(c); }

// ---- dispatch ----------------------------------------------------------------------------------------

struct Kernels {
  void (*forward_image)(const ForwardImage&);
  void (*gradient_chunk)(const GradientChunk&);
};

// Whether `isa` gets the AVX-512 or the AVX2 + FMA kernels, not the baseline ones.
bool wide_kernels(CpuIsa isa) { return isa == CpuIsa::Avx512 || (isa == CpuIsa::Avx2 && cpu_has_fma()); }

Kernels kernels_for(CpuIsa isa) {
  if (!cpu_supports(isa))
    throw InvalidArgument(std::string("conv2d_small_c: this CPU cannot run the ") + cpu_isa_name(isa) + " path");
  if (isa == CpuIsa::Avx512) return {forward_image_avx512, gradient_chunk_avx512};
  if (wide_kernels(isa)) return {forward_image_avx2, gradient_chunk_avx2};
  return {forward_image_baseline, gradient_chunk_baseline};
}

std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Calls fn(begin, end) for `threads` contiguous runs of [0, count) (fewer if count is smaller), the runs
// spread over the threads of parallel.hpp.
template <typename F>
void for_each_part(std::int64_t count, std::int64_t threads, F&& fn) {
  const std::int64_t parts = std::clamp<std::int64_t>(threads, 1, std::max<std::int64_t>(count, 1));
  parallel_for(parts, 1, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) fn(count * p / parts, count * (p + 1) / parts);
  });
}

}  // namespace

bool small_c_applies(const ConvGeometry& g) {
  return g.c <= kSmallCMaxChannels && g.n > 0 && g.k > 0 && g.oh > 0 && g.ow > 0 && wide_kernels(cpu_isa());
}

void conv2d_small_c_forward(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
                            CpuIsa isa, std::int64_t threads) {
  const Kernels kernels = kernels_for(isa);
  const Padded p = padded_of(g);
  const std::vector<std::int64_t> off = tap_offsets(g, p, false, 1);
  const auto taps = std::int64_t(off.size());
  const std::int64_t kp = round_up(g.k, kChannelAlign);
  std::vector<float> packed(std::size_t((taps + 1) * kp), 0.0f);  // (taps, kp) weights, then the bias row
  for (std::int64_t t = 0; t < taps; ++t) std::copy(w + t * g.k, w + (t + 1) * g.k, packed.begin() + t * kp);
  if (b != nullptr) std::copy(b, b + g.k, packed.begin() + taps * kp);
  for_each_part(g.n, threads, [&](std::int64_t n0, std::int64_t n1) {
    std::vector<float> xp(std::size_t(p.size()));
    for (std::int64_t n = n0; n < n1; ++n) {
      pad_image(x, n, g, p, xp.data());
      kernels.forward_image({xp.data(), off.data(), taps, packed.data(), packed.data() + taps * kp, kp,
                             y + n * g.oh * g.ow * g.k, &g, &p});
    }
  });
}

void conv2d_small_c_weight_gradient(const float* x, const float* dy, float* dw, float* db, const ConvGeometry& g,
                                    CpuIsa isa, std::int64_t threads) {
  const std::int64_t taps = g.kh * g.kw * g.c, per_image = g.oh * g.ow;
  if (g.n == 0 || per_image == 0) {  // no pixels: zero gradients
    std::fill(dw, dw + taps * g.k, 0.0f);
    if (db != nullptr) std::fill(db, db + g.k, 0.0f);
    return;
  }
  const Kernels kernels = kernels_for(isa);
  const Padded p = padded_of(g);
  const std::vector<std::int64_t> off = tap_offsets(g, p, db != nullptr, kGradientTaps);
  const auto rows = std::int64_t(off.size());  // dw's taps, the bias tap, padding taps
  const std::int64_t kp = round_up(g.k, kChannelAlign);
  const std::int64_t images = std::clamp<std::int64_t>(kBlockPixels / per_image, 1, g.n);
  const std::int64_t blocks = (g.n + images - 1) / images;

  // One slot of (rows, kp) sums per block, kept between calls by the calling thread (the workers must see
  // the caller's, not theirs).
  const auto slot = std::size_t(rows * kp);
  thread_local std::vector<float> calling_thread_partial;
  std::vector<float>& partial = calling_thread_partial;
  if (partial.size() < slot * std::size_t(blocks)) partial.resize(slot * std::size_t(blocks));

  for_each_part(blocks, threads, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<float> xp(std::size_t(images * p.size()));
    std::vector<float> scratch(std::size_t(kChunkPixels * kChannelAlign));
    std::vector<const float*> windows(static_cast<std::size_t>(kChunkPixels));
    const std::int64_t part_end = std::min(g.n, b1 * images);  // this part's images end here
    for (std::int64_t block = b0; block < b1; ++block) {
      const std::int64_t n0 = block * images, n1 = std::min(g.n, n0 + images);
      for (std::int64_t n = n0; n < n1; ++n) pad_image(x, n, g, p, xp.data() + (n - n0) * p.size());
      float* sums = partial.data() + slot * std::size_t(block);
      std::fill(sums, sums + slot, 0.0f);
      const std::int64_t pixels = (n1 - n0) * per_image;
      for (std::int64_t q0 = 0; q0 < pixels; q0 += kChunkPixels) {
        const std::int64_t count = std::min(kChunkPixels, pixels - q0);
        std::int64_t image = q0 / per_image, oy = (q0 % per_image) / g.ow, ox = q0 % g.ow;
        for (std::int64_t q = 0; q < count; ++q) {  // pixel q0 + q is (image, oy, ox)
          windows[std::size_t(q)] = xp.data() + image * p.size() + (oy * g.sh * p.wp + ox * g.sw) * p.cp;
          if (++ox == g.ow) {
            ox = 0;
            if (++oy == g.oh) oy = 0, ++image;
          }
        }
        // The next chunk: of this block, or the next block's first (their dy rows follow these).
        const std::int64_t next = std::min(kChunkPixels, (part_end - n0) * per_image - q0 - count);
        const float* chunk_dy = dy + (n0 * per_image + q0) * g.k;
        kernels.gradient_chunk({windows.data(), count, off.data(), rows, chunk_dy, g.k, scratch.data(), sums, kp,
                                next > 0 ? chunk_dy + count * g.k : nullptr, next * g.k});
      }
    }
  });

  // dw and db: the slots added in block order, the rows split over the threads.
  parallel_for(taps + (db != nullptr ? 1 : 0), 8, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      float* out = t < taps ? dw + t * g.k : db;
      std::copy(partial.data() + t * kp, partial.data() + t * kp + g.k, out);
      for (std::int64_t block = 1; block < blocks; ++block) {
        const float* row = partial.data() + slot * std::size_t(block) + t * kp;
        for (std::int64_t k = 0; k < g.k; ++k) out[k] += row[k];
      }
    }
  });
}

}  // namespace dropnet::backend::cpu
