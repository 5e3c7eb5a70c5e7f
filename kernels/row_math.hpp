// row_math.hpp: the row reductions softmax and softmax cross-entropy share, and the order they add in.
//
// Both backends reduce a row of `cols` values in the same order, the GPU's: "lane" l (of 32) adds columns
// l, l + 32, l + 64, ... in turn, starting from 0; then the 32 lane values are combined by the butterfly
// the warp's __shfl_xor_sync loop does (offsets 16, 8, 4, 2, 1; after it every lane holds the same
// value, since each step adds the same two numbers in every lane). The CUDA kernels run the lanes as the
// threads of a warp; the CPU runs them in a loop (row_lane_sum). So a row's sums are the same additions
// in the same order on both backends; only exp and log may differ in the last bit between the host's
// libm and CUDA's expf/logf.
//
// The maximum of a row is the first maximum (the larger value, or on a tie the smaller index), as numpy's
// argmax and Keras' accuracy; combine_first_max is that rule, used by the lanes and by the butterfly.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "hd.hpp"

namespace dropnet::kernels {

constexpr int kRowLanes = 32;  // a warp

// The smallest finite value: where a row's maximum search starts (so a row with no larger value, e.g. all
// -inf or NaN, has no maximum: kNoColumn).
template <typename T>
struct RowLowest;
template <>
struct RowLowest<float> {
  static constexpr float value = -FLT_MAX;
};
template <>
struct RowLowest<double> {
  static constexpr double value = -DBL_MAX;
};

// The host's and the device's exp and log of float (expf, logf) and double.
DROPNET_HD float row_exp(float x) { return expf(x); }
DROPNET_HD double row_exp(double x) { return exp(x); }
DROPNET_HD float row_log(float x) { return logf(x); }
DROPNET_HD double row_log(double x) { return log(x); }

// value/index <- (v, i) if v is larger, or equal with a smaller index: the first maximum.
template <typename T, typename I>
DROPNET_HD void combine_first_max(T& value, I& index, T v, I i) {
  if (v > value || (v == value && i < index)) {
    value = v;
    index = i;
  }
}

// The index no column has: what a lane that saw no value larger than RowLowest reports (the CUDA kernels
// keep indices as int: INT_MAX there; rows are compared with each other, never with this value).
constexpr std::int64_t kNoColumn = INT64_MAX;

// ---- the CPU's run of the 32 lanes (the CUDA kernels use warp shuffles instead) ------------------------

// The butterfly of 32 lane values, as lane 0 of a warp computes it: s[l] += s[l + o] for o = 16 .. 1.
template <typename T>
inline T lane_butterfly(T (&s)[kRowLanes]) {
  for (int o = kRowLanes / 2; o > 0; o /= 2)
    for (int l = 0; l < o; ++l) s[l] = s[l] + s[l + o];
  return s[0];
}

// sum over the row of f(c), c = 0 .. cols - 1, in the lanes' order (see the top of this file).
template <typename T, typename F>
inline T row_lane_sum(std::int64_t cols, F&& f) {
  T s[kRowLanes];
  for (int l = 0; l < kRowLanes; ++l) {
    T v = T(0);
    for (std::int64_t c = l; c < cols; c += kRowLanes) v += f(c);
    s[l] = v;
  }
  return lane_butterfly(s);
}

// The first maximum of row[0 .. cols) and its index (kNoColumn when no value exceeds RowLowest<T>), as the
// lanes find it: each lane scans its columns with `>`, then the lanes combine by combine_first_max.
template <typename T>
inline T row_first_max(const T* row, std::int64_t cols, std::int64_t& index) {
  T value = RowLowest<T>::value;
  index = kNoColumn;
  for (int l = 0; l < kRowLanes; ++l) {
    T lv = RowLowest<T>::value;
    std::int64_t li = kNoColumn;
    for (std::int64_t c = l; c < cols; c += kRowLanes)
      if (row[c] > lv) {
        lv = row[c];
        li = c;
      }
    combine_first_max(value, index, lv, li);
  }
  return value;
}

}  // namespace dropnet::kernels
