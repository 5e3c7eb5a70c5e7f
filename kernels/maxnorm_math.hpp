// maxnorm_math.hpp: Keras' MaxNorm constraint (keras/src/constraints/constraints.py), both backends.
//
//   norms   = sqrt(sum(square(w), axis, keepdims=True))
//   desired = clip(norms, 0, max_value)
//   w       = w * (desired / (epsilon + norms))              epsilon = 1e-7 (backend.epsilon())
// Weights already inside the ball are still multiplied by n / (n + 1e-7), as in Keras.
#pragma once

#include <cmath>

#include "hd.hpp"

namespace dropnet::kernels {

constexpr float kMaxNormEpsilon = 1e-7f;

// The factor that multiplies every element of one norm group, given that group's sum of squares.
DROPNET_HD float maxnorm_scale(float sum_of_squares, float max_value) {
  const float norm = sqrtf(sum_of_squares);
  const float desired = fminf(fmaxf(norm, 0.0f), max_value);
  return desired / (kMaxNormEpsilon + norm);
}

}  // namespace dropnet::kernels
