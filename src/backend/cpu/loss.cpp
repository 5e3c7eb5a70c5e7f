// loss.cpp: softmax cross-entropy from logits on the CPU, with the accuracy count.
//
// Keras on JAX computes -sum(t * log(clip(p, 1e-7, 1 - 1e-7))) on the softmax output p; dropnet uses the
// log-softmax of the logits instead (as Keras' TF backend does), which is exact where Keras clips. Where
// no probability is within 1e-7 of 0 or 1 the two agree to float rounding.
#include <algorithm>
#include <cmath>

#include "backend/cpu/ops.hpp"

namespace dropnet::backend::cpu {

template <typename T>
void softmax_cross_entropy(const T* z, const T* t, T* dz, T grad_scale, std::int64_t rows, std::int64_t cols,
                           double& loss_sum, double& correct) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* zr = z + r * cols;
    const T* tr = t + r * cols;
    const std::int64_t zmax = std::max_element(zr, zr + cols) - zr;
    const std::int64_t tmax = std::max_element(tr, tr + cols) - tr;
    const double m = double(zr[zmax]);
    double sum = 0;
    for (std::int64_t j = 0; j < cols; ++j) sum += std::exp(double(zr[j]) - m);
    const double lse = m + std::log(sum);
    double loss = 0;
    for (std::int64_t j = 0; j < cols; ++j) loss -= double(tr[j]) * (double(zr[j]) - lse);
    loss_sum += loss;
    correct += (zmax == tmax) ? 1.0 : 0.0;
    if (dz != nullptr) {
      T* dzr = dz + r * cols;
      for (std::int64_t j = 0; j < cols; ++j)
        dzr[j] = T((std::exp(double(zr[j]) - lse) - double(tr[j])) * double(grad_scale));
    }
  }
}

template void softmax_cross_entropy<float>(const float*, const float*, float*, float, std::int64_t, std::int64_t,
                                           double&, double&);
template void softmax_cross_entropy<double>(const double*, const double*, double*, double, std::int64_t,
                                            std::int64_t, double&, double&);

}  // namespace dropnet::backend::cpu
