// optimizer.cpp: Adam and MaxNorm on the CPU, thin loops over kernels/adam_math.hpp and maxnorm_math.hpp,
// in the CPU's widest vectors (isa.hpp). Compiled with -ffp-contract=off: Adam must round as the GPU's
// (nvcc --fmad=false) and MaxNorm's sums the same on every ISA, and the avx512f clones have FMA.
#include <vector>

#include "backend/cpu/isa.hpp"
#include "backend/cpu/ops.hpp"
#include "kernels/maxnorm_math.hpp"

namespace dropnet::backend::cpu {
namespace {

// The contiguous MaxNorm loops over one row of groups (element r of each group k): sum_sq[k] += x^2 in
// double, then x *= scale[k].
[[DROPNET_ISA_CLONES]] void add_squares(const float* row, double* sum_sq, std::size_t groups) {
  for (std::size_t k = 0; k < groups; ++k) sum_sq[k] += double(row[k]) * double(row[k]);
}
[[DROPNET_ISA_CLONES]] void scale_row(float* row, const float* scale, std::size_t groups) {
  for (std::size_t k = 0; k < groups; ++k) row[k] *= scale[k];
}

}  // namespace

// The step is copied first: through the reference, a store to params, m or v might change it, and the loop
// could not be vectorised. (sqrtf is vectorised because this file has -fno-math-errno.)
[[DROPNET_ISA_CLONES]] void adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                                        const kernels::AdamStep& step) {
  const kernels::AdamStep s = step;
  for (std::size_t i = 0; i < count; ++i) kernels::adam_update(params[i], m[i], v[i], grads[i], s);
}

// Groups as the GPU does (kernels/maxnorm_math.hpp's maxnorm_grouping); each group's sum of squares is
// accumulated in double, in memory order. With Keras' usual axes (Dense {0}, Conv2D {0, 1, 2}) the groups
// are contiguous (kept stride 1): the loops then run over whole rows of groups at a time.
void maxnorm(float* w, const MaxNormCall& call) {
  const int rank = static_cast<int>(call.shape.size());
  bool reduced[kernels::kMaxNormMaxRank] = {};
  for (int a : call.axes) reduced[a] = true;
  const kernels::MaxNormGrouping g = kernels::maxnorm_grouping(call.shape.data(), rank, reduced);
  if (g.groups <= 0 || g.group_size <= 0) return;
  const auto groups = static_cast<std::size_t>(g.groups);
  const bool contiguous = g.kept_rank == 1 && g.kept_stride[0] == 1;
  std::vector<std::int64_t> group_offset;
  if (!contiguous) {
    group_offset.resize(groups);
    for (std::int64_t k = 0; k < g.groups; ++k)
      group_offset[std::size_t(k)] = kernels::maxnorm_offset(k, g.kept_rank, g.kept_extent, g.kept_stride);
  }
  // Row r holds element r of every group (side by side when contiguous).
  auto row_of = [&](std::int64_t r) {
    return w + kernels::maxnorm_offset(r, g.reduced_rank, g.reduced_extent, g.reduced_stride);
  };
  std::vector<double> sum_sq(groups, 0.0);
  for (std::int64_t r = 0; r < g.group_size; ++r) {
    const float* row = row_of(r);
    if (contiguous) {
      add_squares(row, sum_sq.data(), groups);
      continue;
    }
    for (std::size_t k = 0; k < groups; ++k) {
      const double x = row[group_offset[k]];
      sum_sq[k] += x * x;
    }
  }
  std::vector<float> scale(groups);
  for (std::size_t k = 0; k < groups; ++k) scale[k] = kernels::maxnorm_scale(float(sum_sq[k]), call.max_value);
  for (std::int64_t r = 0; r < g.group_size; ++r) {
    float* row = row_of(r);
    if (contiguous) {
      scale_row(row, scale.data(), groups);
      continue;
    }
    for (std::size_t k = 0; k < groups; ++k) row[group_offset[k]] *= scale[k];
  }
}

}  // namespace dropnet::backend::cpu
