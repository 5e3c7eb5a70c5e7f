// maxnorm_math.hpp: Keras' MaxNorm constraint (keras/src/constraints/constraints.py), both backends.
//
//   norms   = sqrt(sum(square(w), axis, keepdims=True))
//   desired = clip(norms, 0, max_value)
//   w       = w * (desired / (epsilon + norms))              epsilon = 1e-7 (backend.epsilon())
// Weights already inside the ball are still multiplied by n / (n + 1e-7), as in Keras.
//
// Grouping: the kernel's dims split into kept dims (one norm per combination of their coordinates: the
// groups) and reduced dims (the `axis` of Keras, summed over within a group). maxnorm_grouping lists each
// kind outermost first as (extent, element stride), merging neighbours that are contiguous in memory, and
// maxnorm_offset turns a group number or an index within a group into an element offset; element
// offset(g, kept) + offset(r, reduced) is the r-th element of group g. Both backends group with these.
#pragma once

#include <cmath>
#include <cstdint>

#include "hd.hpp"

namespace dropnet::kernels {

constexpr float kMaxNormEpsilon = 1e-7f;

// The factor that multiplies every element of one norm group, given that group's sum of squares.
DROPNET_HD float maxnorm_scale(float sum_of_squares, float max_value) {
  const float norm = sqrtf(sum_of_squares);
  const float desired = fminf(fmaxf(norm, 0.0f), max_value);
  return desired / (kMaxNormEpsilon + norm);
}

constexpr int kMaxNormMaxRank = 8;

struct MaxNormGrouping {
  std::int64_t groups;      // number of norms
  std::int64_t group_size;  // elements in each
  int kept_rank;
  int reduced_rank;
  std::int64_t kept_extent[kMaxNormMaxRank], kept_stride[kMaxNormMaxRank];
  std::int64_t reduced_extent[kMaxNormMaxRank], reduced_stride[kMaxNormMaxRank];
};

// The grouping of a row-major kernel of `rank` <= kMaxNormMaxRank dims whose dims d with reduced[d] are
// summed over (the caller checks the rank and the axes: backend/op_checks.hpp).
inline MaxNormGrouping maxnorm_grouping(const std::int64_t* shape, int rank, const bool* reduced) {
  MaxNormGrouping g{};
  g.groups = 1;
  g.group_size = 1;
  std::int64_t strides[kMaxNormMaxRank];  // row-major
  std::int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d];
  }
  for (int d = 0; d < rank; ++d) {
    const std::int64_t extent = shape[d], stride = strides[d];
    const bool r = reduced[d];
    int& n = r ? g.reduced_rank : g.kept_rank;
    std::int64_t* ext = r ? g.reduced_extent : g.kept_extent;
    std::int64_t* str = r ? g.reduced_stride : g.kept_stride;
    (r ? g.group_size : g.groups) *= extent;
    if (n > 0 && str[n - 1] == extent * stride) {
      ext[n - 1] *= extent;  // the previous dim of this list continues right after this one: one run
      str[n - 1] = stride;
    } else {
      ext[n] = extent;
      str[n] = stride;
      ++n;
    }
  }
  return g;
}

// The element offset of `index` (a group number over the kept dims, or an index within a group over the
// reduced dims), given that list's (extent, stride) pairs outermost first.
DROPNET_HD std::int64_t maxnorm_offset(std::int64_t index, int rank, const std::int64_t* extent,
                                       const std::int64_t* stride) {
  // One run (the usual case after merging contiguous dims): no 64-bit division per element.
  if (rank == 1) return index * stride[0];
  std::int64_t offset = 0;
  for (int d = rank - 1; d >= 0; --d) {
    offset += (index % extent[d]) * stride[d];
    index /= extent[d];
  }
  return offset;
}

}  // namespace dropnet::kernels
