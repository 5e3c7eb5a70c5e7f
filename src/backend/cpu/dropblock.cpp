// dropblock.cpp: DropBlock2D on the CPU (the rule: kernels/dropblock_math.hpp). Rather than testing up to
// k^2 seeds per element as the definition (dropblock_dropped) does, the CPU draws the seed grid once and
// dilates it by a k x k box in two separable passes (along W, then along H): the same set of dropped
// elements, computed in O(k) per element. The kept count is an exact integer and the scale comes from
// dropblock_scale, so the output is bit-identical to the CUDA kernels'.
#include <algorithm>
#include <atomic>
#include <vector>

#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "kernels/dropout_math.hpp"

namespace dropnet::backend::cpu {

template <typename T>
std::uint64_t dropblock_apply(const T* in, T* out, const DropBlockCall& call, const kernels::DropBlockGeometry& g) {
  const std::uint64_t step = call.slot != nullptr ? call.slot->step : call.step;
  const float rate = call.slot != nullptr ? call.slot->rate : call.rate;
  const std::int64_t total = kernels::dropblock_total(g);
  if (const int edge = kernels::dropout_rate_edge(rate); edge >= 0) {
    if (edge == 1) std::copy(in, in + total, out);
    else std::fill(out, out + total, T(0));
    return edge == 1 ? std::uint64_t(total) : 0;
  }
  const float gamma = kernels::dropblock_gamma(rate, g);
  // u < gamma <=> word < threshold (uniform_from_bits is monotone; dropout_keep_threshold's search).
  const std::uint64_t threshold = kernels::dropout_keep_threshold(gamma);
  const std::int64_t hs = kernels::dropblock_seed_rows(g), ws = kernels::dropblock_seed_cols(g);
  const std::int64_t k = g.block, C = g.c;

  // Seeds (N, Hs, Ws, C), one byte each, four per Philox block (the seed index's block and word).
  thread_local std::vector<unsigned char> seeds, rows, dropped;
  const std::int64_t seed_count = g.n * hs * ws * C;
  seeds.resize(static_cast<std::size_t>(seed_count));
  unsigned char* sp = seeds.data();
  draw_below(call.seed, step, threshold, seed_count, sp);

  // Along W: rows[n, h0, w, c] = some seed (n, h0, w0, c) with w0 in dropblock_cover(w).
  rows.resize(static_cast<std::size_t>(g.n * hs * g.w * C));
  unsigned char* rp = rows.data();
  parallel_for(g.n * hs, 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      for (std::int64_t w = 0; w < g.w; ++w) {
        const kernels::DropBlockRange cover = kernels::dropblock_cover(w, k, ws);
        unsigned char* dst = rp + (r * g.w + w) * C;
        std::fill(dst, dst + C, 0);
        for (std::int64_t w0 = cover.first; w0 <= cover.last; ++w0) {
          const unsigned char* src = sp + (r * ws + w0) * C;
          for (std::int64_t c = 0; c < C; ++c) dst[c] |= src[c];
        }
      }
    }
  });

  // Along H: dropped[n, h, w, c] = some rows[n, h0, w, c] with h0 in dropblock_cover(h); count the kept.
  dropped.resize(static_cast<std::size_t>(total));
  unsigned char* dp = dropped.data();
  std::atomic<std::uint64_t> kept{0};
  const std::int64_t plane = g.w * C;  // one image row of (w, c)
  parallel_for(g.n * g.h, 16, [&](std::int64_t r0, std::int64_t r1) {
    std::uint64_t local = 0;
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t n = r / g.h, h = r % g.h;
      const kernels::DropBlockRange cover = kernels::dropblock_cover(h, k, hs);
      unsigned char* dst = dp + r * plane;
      std::fill(dst, dst + plane, 0);
      for (std::int64_t h0 = cover.first; h0 <= cover.last; ++h0) {
        const unsigned char* src = rp + (n * hs + h0) * plane;
        for (std::int64_t j = 0; j < plane; ++j) dst[j] |= src[j];
      }
      for (std::int64_t j = 0; j < plane; ++j) local += dst[j] == 0;
    }
    kept += local;  // an integer sum: the order of the threads does not matter
  });

  const T scale = kernels::dropblock_scale<T>(std::uint64_t(total), kept.load());
  parallel_for(total, 1 << 16, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) out[i] = kernels::dropblock_apply(in[i], dp[i] != 0, scale);
  });
  return kept.load();
}

template std::uint64_t dropblock_apply<float>(const float*, float*, const DropBlockCall&,
                                              const kernels::DropBlockGeometry&);
template std::uint64_t dropblock_apply<double>(const double*, double*, const DropBlockCall&,
                                               const kernels::DropBlockGeometry&);

}  // namespace dropnet::backend::cpu
