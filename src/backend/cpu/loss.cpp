// loss.cpp: softmax cross-entropy from logits on the CPU, with the accuracy count: the expressions of
// kernels/softmax_xent_math.hpp, in the order the CUDA kernels add them (row_math.hpp's lanes within a
// row, xent_batch_sum across rows), in the scalar type T (float for training, double for the gradient
// checks).
//
// Keras on JAX computes -sum(t * log(clip(p, 1e-7, 1 - 1e-7))) on the softmax output p; dropnet uses the
// log-softmax of the logits instead (as Keras' TF backend does), which is exact where Keras clips. Where
// no probability is within 1e-7 of 0 or 1 the two agree to float rounding.
#include <vector>

#include "backend/cpu/ops.hpp"
#include "kernels/softmax_xent_math.hpp"

namespace dropnet::backend::cpu {

template <typename T>
void softmax_cross_entropy(const T* z, const T* t, T* dz, T grad_scale, std::int64_t rows, std::int64_t cols,
                           double& loss_sum, double& correct) {
  if (rows <= 0 || cols <= 0) return;
  std::vector<T> row_loss(static_cast<std::size_t>(rows)), row_hit(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* zr = z + r * cols;
    const T* tr = t + r * cols;
    std::int64_t zarg = 0, targ = 0;
    const T zmax = kernels::row_first_max(zr, cols, zarg);
    kernels::row_first_max(tr, cols, targ);
    const T sum_exp = kernels::row_lane_sum<T>(cols, [&](std::int64_t c) { return kernels::softmax_term(zr[c], zmax); });
    const T dot = kernels::row_lane_sum<T>(cols, [&](std::int64_t c) { return tr[c] * zr[c]; });
    row_loss[std::size_t(r)] = kernels::xent_row_loss(zmax, sum_exp, dot);
    row_hit[std::size_t(r)] = zarg == targ ? T(1) : T(0);
    if (dz != nullptr) {
      T* dzr = dz + r * cols;
      for (std::int64_t c = 0; c < cols; ++c) dzr[c] = kernels::xent_grad(zr[c], tr[c], zmax, sum_exp, grad_scale);
    }
  }
  const auto n = static_cast<std::size_t>(rows);
  loss_sum += double(kernels::xent_batch_sum<T>(n, [&](std::size_t r) { return row_loss[r]; }));
  correct += double(kernels::xent_batch_sum<T>(n, [&](std::size_t r) { return row_hit[r]; }));
}

template void softmax_cross_entropy<float>(const float*, const float*, float*, float, std::int64_t, std::int64_t,
                                           double&, double&);
template void softmax_cross_entropy<double>(const double*, const double*, double*, double, std::int64_t,
                                            std::int64_t, double&, double&);

}  // namespace dropnet::backend::cpu
