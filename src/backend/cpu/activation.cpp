// activation.cpp: relu, linear and row-wise softmax on the CPU, loops over kernels/activation_math.hpp
// (softmax's row sums in row_math.hpp's lane order, as on the GPU).
#include <algorithm>
#include <cmath>

#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "kernels/activation_math.hpp"

namespace dropnet::backend::cpu {

template <typename T>
void activation_forward(ActivationKind kind, const T* z, T* y, std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  switch (kind) {
    case ActivationKind::Linear:
      if (y != z) std::copy(z, z + n, y);
      return;
    case ActivationKind::ReLU:
      parallel_for(n, 1 << 16, [=](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) y[i] = kernels::relu_forward(z[i]);
      });
      return;
    case ActivationKind::Softmax:
      for (std::int64_t r = 0; r < rows; ++r) {
        const T* zr = z + r * cols;
        T* yr = y + r * cols;
        T m = kernels::RowLowest<T>::value;  // the GPU's fmaxf over the row
        for (std::int64_t j = 0; j < cols; ++j) m = std::fmax(m, zr[j]);
        const T sum = kernels::row_lane_sum<T>(cols, [&](std::int64_t j) { return kernels::softmax_term(zr[j], m); });
        for (std::int64_t j = 0; j < cols; ++j) yr[j] = kernels::softmax_term(zr[j], m) / sum;
      }
      return;
  }
}

template <typename T>
void activation_backward(ActivationKind kind, const T* y, const T* dy, T* dz, std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  switch (kind) {
    case ActivationKind::Linear:
      if (dz != dy) std::copy(dy, dy + n, dz);
      return;
    case ActivationKind::ReLU:
      parallel_for(n, 1 << 16, [=](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) dz[i] = kernels::relu_backward(y[i], dy[i]);
      });
      return;
    case ActivationKind::Softmax:
      for (std::int64_t r = 0; r < rows; ++r) {
        const T* yr = y + r * cols;
        const T* dyr = dy + r * cols;
        const T dot = kernels::row_lane_sum<T>(cols, [&](std::int64_t j) { return dyr[j] * yr[j]; });
        T* dzr = dz + r * cols;
        for (std::int64_t j = 0; j < cols; ++j) dzr[j] = kernels::softmax_backward(yr[j], dyr[j], dot);
      }
      return;
  }
}

template void activation_forward<float>(ActivationKind, const float*, float*, std::int64_t, std::int64_t);
template void activation_forward<double>(ActivationKind, const double*, double*, std::int64_t, std::int64_t);
template void activation_backward<float>(ActivationKind, const float*, const float*, float*, std::int64_t,
                                         std::int64_t);
template void activation_backward<double>(ActivationKind, const double*, const double*, double*, std::int64_t,
                                          std::int64_t);

}  // namespace dropnet::backend::cpu
