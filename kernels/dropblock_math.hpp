// dropblock_math.hpp: DropBlock2D (Ghiasi, Lin, Le 2018, "DropBlock: A regularization method for
// convolutional networks", Algorithm 1), element by element, for both backends.
//
// Input (N, H, W, C), NHWC, block size k (1 <= k <= H, W). The paper's seed positions are the block
// positions that fit entirely inside the feature map: top-left corners (h0, w0) with 0 <= h0 < Hs = H - k + 1
// and 0 <= w0 < Ws = W - k + 1, one seed grid (N, Hs, Ws, C) per call. Seed s (row-major in that grid) at
// training step `step` of a layer seeded `seed` is set iff
//     u = uniform_from_bits(philox_block(seed, step, s / 4).w[s % 4]) < gamma,
//     gamma = rate / k^2 * (H * W) / (Hs * Ws)                                  (the paper's eq. 1)
// i.e. each (n, channel) draws its seeds independently with P(seed) = gamma (exactly: the number of 32-bit
// words below the gamma threshold / 2^32, dropout_keep_threshold). Element (n, h, w, c) is dropped iff a set
// seed's k x k block covers it: some set seed (n, h0, w0, c) with h0 <= h < h0 + k and w0 <= w < w0 + k.
// A position covered by m valid seed positions is therefore dropped with probability 1 - (1 - gamma)^m;
// gamma is the paper's choice that makes the dropped fraction about `rate` when blocks rarely overlap.
//
// Scale: the output is x * mask * total / kept over the whole tensor (the paper's "normalize the features":
// A * count(M) / count_ones(M)), with total = N*H*W*C and kept the number of kept elements, both integers,
// so the scale is the same float on both backends (dropblock_scale). When nothing is kept the output is all
// zeros (where the paper and keras-cv's DropBlock2D would divide by zero). The mask does not depend on x, so
// backward is the same expression on dy (scale included). rate <= 0 is the identity and rate >= 1 gives zeros
// (dropout_rate_edge), as for Dropout.
//
// gamma <= rate for every valid geometry (H / (k (H - k + 1)) <= 1 since (k - 1)(H - k) >= 0), and it is
// computed as rate * (float(H W) / float(k^2 Hs Ws)), whose quotient rounds to <= 1, so gamma < 1 whenever
// the rate is: no seed is certain unless the whole call is an edge.
#pragma once

#include <cstdint>

#include "hd.hpp"
#include "philox.hpp"

namespace dropnet::kernels {

struct DropBlockGeometry {
  std::int64_t n, h, w, c;    // input (N, H, W, C)
  std::int64_t block;         // k
};

DROPNET_HD std::int64_t dropblock_seed_rows(const DropBlockGeometry& g) { return g.h - g.block + 1; }
DROPNET_HD std::int64_t dropblock_seed_cols(const DropBlockGeometry& g) { return g.w - g.block + 1; }
DROPNET_HD std::int64_t dropblock_total(const DropBlockGeometry& g) { return g.n * g.h * g.w * g.c; }

// The paper's gamma for a rate read at run time (the slot's): one float multiply of the rate by the
// correctly rounded quotient of two exact integers, the same on both backends.
DROPNET_HD float dropblock_gamma(float rate, const DropBlockGeometry& g) {
  const std::int64_t area = g.h * g.w;
  const std::int64_t seeds_area = g.block * g.block * dropblock_seed_rows(g) * dropblock_seed_cols(g);
  return rate * (static_cast<float>(area) / static_cast<float>(seeds_area));
}

// The seed rule on a uniform in (0, 1] (the GPU's and the CPU's, as dropout_keep_uniform).
DROPNET_HD bool dropblock_seed_uniform(float u, float gamma) { return u < gamma; }

DROPNET_HD bool dropblock_seed_at(std::uint64_t seed, std::uint64_t step, std::uint64_t s, float gamma) {
  const PhiloxBlock b = philox_block(seed, step, s / 4);
  return dropblock_seed_uniform(uniform_from_bits(b.w[s % 4]), gamma);
}

// The seed rows (or columns) whose blocks cover row h: [first, last], empty when first > last (never for
// 1 <= k <= H).
struct DropBlockRange {
  std::int64_t first, last;
};
DROPNET_HD DropBlockRange dropblock_cover(std::int64_t h, std::int64_t block, std::int64_t seed_rows) {
  const std::int64_t first = h - block + 1 > 0 ? h - block + 1 : 0;
  const std::int64_t last = h < seed_rows - 1 ? h : seed_rows - 1;
  return {first, last};
}

// Whether element i (row-major in (N, H, W, C)) is dropped: the definition, seed by seed (up to k^2 Philox
// calls). The CPU backend computes the same set by dilating the seed grid; the tests compare both with this.
DROPNET_HD bool dropblock_dropped(std::uint64_t seed, std::uint64_t step, const DropBlockGeometry& g,
                                  std::int64_t i, float gamma) {
  const std::int64_t c = i % g.c;
  const std::int64_t w = (i / g.c) % g.w;
  const std::int64_t h = (i / (g.c * g.w)) % g.h;
  const std::int64_t n = i / (g.c * g.w * g.h);
  const std::int64_t hs = dropblock_seed_rows(g), ws = dropblock_seed_cols(g);
  const DropBlockRange rows = dropblock_cover(h, g.block, hs), cols = dropblock_cover(w, g.block, ws);
  for (std::int64_t h0 = rows.first; h0 <= rows.last; ++h0) {
    for (std::int64_t w0 = cols.first; w0 <= cols.last; ++w0) {
      const auto s = static_cast<std::uint64_t>(((n * hs + h0) * ws + w0) * g.c + c);
      if (dropblock_seed_at(seed, step, s, gamma)) return true;
    }
  }
  return false;
}

// total / kept, rounded once to T (the division in double is correctly rounded on both backends); 0 when
// nothing is kept, so that the output is all zeros.
template <typename T>
DROPNET_HD T dropblock_scale(std::uint64_t total, std::uint64_t kept) {
  return kept == 0 ? T(0) : static_cast<T>(static_cast<double>(total) / static_cast<double>(kept));
}

// Forward on x and backward on dy: d(x * scale)/dx = scale where kept.
template <typename T>
DROPNET_HD T dropblock_apply(T value, bool dropped, T scale) {
  return dropped ? T(0) : value * scale;
}

}  // namespace dropnet::kernels
