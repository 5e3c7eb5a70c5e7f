// optimizer.cpp: Adam and MaxNorm on the CPU, thin loops over kernels/adam_math.hpp and maxnorm_math.hpp.
#include <vector>

#include "backend/cpu/ops.hpp"
#include "kernels/maxnorm_math.hpp"

namespace dropnet::backend::cpu {

void adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                 const kernels::AdamStep& step) {
  for (std::size_t i = 0; i < count; ++i) kernels::adam_update(params[i], m[i], v[i], grads[i], step);
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
  // Element r of every group, r = 0 .. group_size - 1: f(k, pointer to it) for each group k.
  auto for_each_row = [&](auto&& f) {
    for (std::int64_t r = 0; r < g.group_size; ++r) {
      float* row = w + kernels::maxnorm_offset(r, g.reduced_rank, g.reduced_extent, g.reduced_stride);
      if (contiguous)
        for (std::size_t k = 0; k < groups; ++k) f(k, row[k]);
      else
        for (std::size_t k = 0; k < groups; ++k) f(k, row[group_offset[k]]);
    }
  };
  std::vector<double> sum_sq(groups, 0.0);
  for_each_row([&](std::size_t k, float& x) { sum_sq[k] += double(x) * double(x); });
  std::vector<float> scale(groups);
  for (std::size_t k = 0; k < groups; ++k) scale[k] = kernels::maxnorm_scale(float(sum_sq[k]), call.max_value);
  for_each_row([&](std::size_t k, float& x) { x *= scale[k]; });
}

}  // namespace dropnet::backend::cpu
