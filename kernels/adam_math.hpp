// adam_math.hpp: Keras' Adam update for one element (keras/src/optimizers/adam.py), both backends.
//
//   t     = iterations + 1
//   alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)         (computed once per step on the host)
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

inline AdamStep adam_step(double lr, double beta_1, double beta_2, double epsilon, long long t) {
  const double alpha = lr * std::sqrt(1.0 - std::pow(beta_2, double(t))) / (1.0 - std::pow(beta_1, double(t)));
  return AdamStep{float(alpha), float(1.0 - beta_1), float(1.0 - beta_2), float(epsilon)};
}

DROPNET_HD void adam_update(float& var, float& m, float& v, float g, const AdamStep& s) {
  m += (g - m) * s.one_minus_b1;
  v += (g * g - v) * s.one_minus_b2;
  var -= m * s.alpha / (sqrtf(v) + s.epsilon);
}

}  // namespace dropnet::kernels
