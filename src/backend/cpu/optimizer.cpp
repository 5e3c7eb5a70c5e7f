// optimizer.cpp: Adam and MaxNorm on the CPU, thin loops over kernels/adam_math.hpp and maxnorm_math.hpp.
#include <vector>

#include "backend/cpu/ops.hpp"
#include "kernels/maxnorm_math.hpp"

namespace dropnet::backend::cpu {

void adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                 const kernels::AdamStep& step) {
  for (std::size_t i = 0; i < count; ++i) kernels::adam_update(params[i], m[i], v[i], grads[i], step);
}

void maxnorm(float* w, const MaxNormCall& call) {
  const int rank = static_cast<int>(call.shape.size());
  const std::int64_t n = element_count(call.shape);
  // Keras' usual axes are a leading prefix (Dense: {0}; Conv2D: {0}, {0, 1} or {0, 1, 2}): element i then
  // belongs to group i % inner, inner being the product of the axes kept. No index table needed.
  bool prefix = true;
  for (std::size_t a = 0; a < call.axes.size(); ++a) prefix = prefix && call.axes[a] == static_cast<int>(a);
  if (prefix) {
    std::int64_t inner = 1;
    for (int d = static_cast<int>(call.axes.size()); d < rank; ++d) inner *= call.shape[std::size_t(d)];
    std::vector<double> sum_sq(static_cast<std::size_t>(inner), 0.0);
    for (std::int64_t i = 0; i < n; i += inner)
      for (std::int64_t j = 0; j < inner; ++j) sum_sq[std::size_t(j)] += double(w[i + j]) * double(w[i + j]);
    std::vector<float> scale(static_cast<std::size_t>(inner));
    for (std::int64_t j = 0; j < inner; ++j)
      scale[std::size_t(j)] = kernels::maxnorm_scale(float(sum_sq[std::size_t(j)]), call.max_value);
    for (std::int64_t i = 0; i < n; i += inner)
      for (std::int64_t j = 0; j < inner; ++j) w[i + j] *= scale[std::size_t(j)];
    return;
  }

  // Any other axes: each element's group comes from its coordinates on the axes not summed over.
  std::vector<bool> reduced(std::size_t(rank), false);
  for (int a : call.axes) reduced[std::size_t(a)] = true;
  std::vector<std::int64_t> group_stride(std::size_t(rank), 0);
  std::int64_t groups = 1;
  for (int d = rank - 1; d >= 0; --d) {
    if (reduced[std::size_t(d)]) continue;
    group_stride[std::size_t(d)] = groups;
    groups *= call.shape[std::size_t(d)];
  }
  std::vector<std::int64_t> group_of(static_cast<std::size_t>(n));
  std::vector<std::int64_t> coord(std::size_t(rank), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t gi = 0;
    for (int d = 0; d < rank; ++d) gi += coord[std::size_t(d)] * group_stride[std::size_t(d)];
    group_of[std::size_t(i)] = gi;
    for (int d = rank - 1; d >= 0; --d) {
      if (++coord[std::size_t(d)] < call.shape[std::size_t(d)]) break;
      coord[std::size_t(d)] = 0;
    }
  }
  std::vector<double> sum_sq(static_cast<std::size_t>(groups), 0.0);
  for (std::int64_t i = 0; i < n; ++i) sum_sq[std::size_t(group_of[std::size_t(i)])] += double(w[i]) * double(w[i]);
  std::vector<float> scale(static_cast<std::size_t>(groups));
  for (std::int64_t gi = 0; gi < groups; ++gi)
    scale[std::size_t(gi)] = kernels::maxnorm_scale(float(sum_sq[std::size_t(gi)]), call.max_value);
  for (std::int64_t i = 0; i < n; ++i) w[i] *= scale[std::size_t(group_of[std::size_t(i)])];
}

}  // namespace dropnet::backend::cpu
