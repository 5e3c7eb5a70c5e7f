// adam_math.hpp: Keras' Adam update for one element (keras/src/optimizers/adam.py), both backends.
//
//   t     = iterations + 1
//   alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)         (once per step on the host, in float32)
//   m    += (g - m) * (1 - beta_1)
//   v    += (g*g - v) * (1 - beta_2)
//   var  -= m * alpha / (sqrt(v) + epsilon)
// epsilon is the paper's "epsilon hat" (added after bias correction), Keras' default 1e-7.
#pragma once

#include <cmath>

#include "hd.hpp"

namespace dropnet::kernels {

struct AdamStep {
  float alpha;        // lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
  float one_minus_b1; // 1 - beta_1
  float one_minus_b2; // 1 - beta_2
  float epsilon;
};

// Keras computes the bias correction in the variable's dtype (float32), so this does too: in double the
// update differs from Keras' by ~6.5e-6 relative (1 - float(0.999) is not 0.001), which the parity tests
// against Keras' goldens would see. t = iterations + 1.
inline AdamStep adam_step(double lr, double beta_1, double beta_2, double epsilon, long long t) {
  const float step = static_cast<float>(t);
  const float beta_1_power = std::pow(static_cast<float>(beta_1), step);
  const float beta_2_power = std::pow(static_cast<float>(beta_2), step);
  const float alpha = static_cast<float>(lr) * std::sqrt(1.0f - beta_2_power) / (1.0f - beta_1_power);
  return AdamStep{alpha, float(1.0 - beta_1), float(1.0 - beta_2), float(epsilon)};
}

DROPNET_HD void adam_update(float& var, float& m, float& v, float g, const AdamStep& s) {
  m += (g - m) * s.one_minus_b1;
  v += (g * g - v) * s.one_minus_b2;
  var -= m * s.alpha / (sqrtf(v) + s.epsilon);
}

}  // namespace dropnet::kernels
