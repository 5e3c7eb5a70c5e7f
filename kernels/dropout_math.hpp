// dropout_math.hpp: Keras' Dropout, element by element, for both backends.
//
// Keep rule. Element i of the mask (row-major index into the mask shape, i.e. the input shape with
// noise_shape's 1s broadcast) at training step `step` of a layer seeded `seed` uses
//     u = uniform_from_bits(philox_block(seed, step, i / 4).w[i % 4])      (in (0, 1])
//     keep  <=>  u < keep_prob,   keep_prob = 1 - rate
// which is exactly curand_init(seed, /*subsequence=*/step, /*offset=*/4 * (i / 4)) followed by
// curand_uniform4() and its component i % 4. So the mask is a pure function of (seed, step, i): no launch
// shape, thread count or backend enters it, and backward regenerates it instead of storing it.
//
// Scale: kept elements are divided by keep_prob (Keras: `inputs / keep_prob`, inverted dropout).
// rate == 0 is the identity and rate == 1 gives zeros, as Keras does: a layer with a fixed rate skips the
// op, and an op whose rate is read at run time (a schedule) applies dropout_rate_edge first.
#pragma once

#include <cstdint>

#include "hd.hpp"
#include "philox.hpp"

namespace dropnet::kernels {

// keep_prob as both backends derive it from the layer's rate (rounded to float once, by the layer).
DROPNET_HD float dropout_keep_prob(float rate) { return 1.0f - rate; }

// The keep rule on a uniform in (0, 1]: the GPU applies it to curand_uniform4()'s values, the CPU to
// uniform_from_bits() of the same Philox words (kernels/philox.hpp).
DROPNET_HD bool dropout_keep_uniform(float u, float keep_prob) { return u < keep_prob; }

DROPNET_HD bool dropout_keep(std::uint32_t bits, float keep_prob) {
  return dropout_keep_uniform(uniform_from_bits(bits), keep_prob);
}

// The same rule as an integer comparison, for loops where converting uint32 to float is slow (SSE2 has no
// unsigned conversion): uniform_from_bits is non-decreasing in its argument, so the words it maps below
// keep_prob are exactly [0, threshold), and dropout_keep(x, p) == (x < dropout_keep_threshold(p)).
// A binary search over the 2^32 words, done once per call.
DROPNET_HD std::uint64_t dropout_keep_threshold(float keep_prob) {
  std::uint64_t lo = 0, hi = std::uint64_t(1) << 32;
  while (lo < hi) {
    const std::uint64_t mid = (lo + hi) / 2;
    if (dropout_keep(static_cast<std::uint32_t>(mid), keep_prob)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// The two rates where no draw decides: <= 0 keeps everything unscaled (the identity), >= 1 drops
// everything. Returns 1 for the identity, 0 for zeros, -1 when the draws decide.
DROPNET_HD int dropout_rate_edge(float rate) { return rate <= 0.0f ? 1 : rate >= 1.0f ? 0 : -1; }

DROPNET_HD bool dropout_keep_at(std::uint64_t seed, std::uint64_t step, std::uint64_t mask_index,
                                float keep_prob) {
  const PhiloxBlock b = philox_block(seed, step, mask_index / 4);
  return dropout_keep(b.w[mask_index % 4], keep_prob);
}

// ---- noise_shape: one mask element broadcast over several input elements -------------------------------

constexpr int kDropoutMaxRank = 8;

// The input's dims and, per dim, the row-major stride of that dim in the mask, 0 where the mask is
// broadcast (its extent is 1 and the input's is not). `broadcast` is false when the mask has the input's
// shape; then the mask index of element i is i.
struct DropoutBroadcast {
  int rank;
  bool broadcast;
  std::int64_t dims[kDropoutMaxRank];
  std::int64_t mask_stride[kDropoutMaxRank];
};

// For an input and a mask shape of the same rank <= kDropoutMaxRank, each mask dim equal to the input's
// or 1 (the caller checks: backend/op_checks.hpp).
inline DropoutBroadcast dropout_broadcast(const std::int64_t* input_dims, const std::int64_t* mask_dims, int rank) {
  DropoutBroadcast b{};
  b.rank = rank;
  std::int64_t stride = 1;
  for (int d = rank - 1; d >= 0; --d) {
    const bool broadcast_dim = mask_dims[d] == 1 && input_dims[d] != 1;
    b.dims[d] = input_dims[d];
    b.mask_stride[d] = broadcast_dim ? 0 : stride;
    b.broadcast = b.broadcast || broadcast_dim;
    stride *= mask_dims[d];
  }
  return b;
}

// A broadcast whose broadcast dims form one run (dims of extent 1 anywhere): the input is (outer, middle,
// inner) and the mask (outer, 1, inner), so element (a, b, c) has the mask index a * inner + c, as
// dropout_mask_index computes it. SpatialDropout's masks are this form: (N, spatial, C). `run` is false for
// any other broadcast; then only dropout_mask_index applies.
struct DropoutRunBroadcast {
  bool run;
  std::int64_t outer, middle, inner;
};
inline DropoutRunBroadcast dropout_run_broadcast(const DropoutBroadcast& b) {
  int first = -1, last = -1;
  for (int d = 0; d < b.rank; ++d) {
    if (b.mask_stride[d] == 0) {
      if (first < 0) first = d;
      last = d;
    }
  }
  if (first < 0) return {false, 0, 0, 0};
  DropoutRunBroadcast r{true, 1, 1, 1};
  for (int d = 0; d < b.rank; ++d) {
    if (d >= first && d <= last && b.mask_stride[d] != 0 && b.dims[d] != 1) return {false, 0, 0, 0};
    (d < first ? r.outer : d <= last ? r.middle : r.inner) *= b.dims[d];
  }
  return r;
}

// The mask index of input element i (row-major): its coordinates, less those of broadcast dims, in the mask.
DROPNET_HD std::int64_t dropout_mask_index(std::int64_t i, const DropoutBroadcast& b) {
  std::int64_t mask_index = 0;
  for (int d = b.rank - 1; d >= 0; --d) {
    mask_index += (i % b.dims[d]) * b.mask_stride[d];
    i /= b.dims[d];
  }
  return mask_index;
}

// The same expression serves forward (x -> y) and backward (dy -> dx): d(x / p)/dx = 1 / p.
template <typename T>
DROPNET_HD T dropout_apply(T value, bool keep, T keep_prob) {
  return keep ? value / keep_prob : T(0);
}

}  // namespace dropnet::kernels
