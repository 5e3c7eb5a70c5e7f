// activation_math.hpp: the activations' per-element math, both backends.
//
//   relu      y = z > 0 ? z : 0                dz = y > 0 ? dy : 0
//   softmax   y_j = exp(z_j - m) / s           dz_j = y_j * (dy_j - sum_k dy_k y_k)
//             m = max_k z_k, s = sum_k exp(z_k - m), the sums in the lanes' order (row_math.hpp)
//   linear    y = z                            dz = dy
#pragma once

#include "hd.hpp"
#include "row_math.hpp"

namespace dropnet::kernels {

template <typename T>
DROPNET_HD T relu_forward(T z) {
  return z > T(0) ? z : T(0);
}

// dy is taken by value whatever y is, so that the CPU's loop over it vectorises (a select, not a branch).
template <typename T>
DROPNET_HD T relu_backward(T y, T dy) {
  return y > T(0) ? dy : T(0);
}

// exp(z - m): softmax's numerator, and the terms of its row sum s.
template <typename T>
DROPNET_HD T softmax_term(T z, T row_max) {
  return row_exp(z - row_max);
}

template <typename T>
DROPNET_HD T softmax_backward(T y, T dy, T row_dot) {
  return y * (dy - row_dot);
}

}  // namespace dropnet::kernels
