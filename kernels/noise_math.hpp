// noise_math.hpp: Keras' GaussianDropout, GaussianNoise and AlphaDropout, element by element, for both
// backends (the CPU's loops in src/backend/cpu/noise.cpp, the GPU's kernels in kernels/noise.cu).
//
// Draws. Element i at the layer's step (seed, step) uses, from Philox block i / 4 of (seed, step):
//   GaussianDropout, GaussianNoise: the normal n_i of kernels/normal_math.hpp (normal_component);
//   AlphaDropout: the keep rule of Dropout on word i % 4 of the mask element's block (dropout_keep,
//     kernels/dropout_math.hpp: u < 1 - rate with u = curand_uniform's (0, 1] value). Keras draws
//     kept = uniform[0, 1) >= rate; both keep with probability 1 - rate (up to the 2^-32 grid), so the two
//     rules are statistically the same, and dropnet's AlphaDropout keeps exactly the elements a Dropout with
//     the same seed, step and rate keeps.
// Backward regenerates the same draws (nothing is stored).
//
// Formulas (x the input, dy the output gradient; all float, one rounding per fmaf):
//   GaussianDropout(rate)   g = fmaf(n, stddev, 1),  stddev = sqrt(rate / (1 - rate))
//                           y = x * g,  dx = dy * g
//   GaussianNoise(stddev)   y = fmaf(stddev, n, x),  dx = dy
//   AlphaDropout(rate)      alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946,
//                           alpha_p = -alpha * scale, a = ((1 - rate) (1 + rate alpha_p^2))^-1/2,
//                           b = -a alpha_p rate;   y = fmaf(a, kept ? x : alpha_p, b),  dx = kept ? dy * a : 0
// The constants are computed as Keras computes them, in double (Python floats), from the float rate the op
// reads, then rounded to float once: stddev, a, b and alpha_p. Keras then evaluates a * x + b with two
// roundings (and x * kept + alpha_p * (1 - kept), which turns a dropped inf or NaN input into NaN where
// dropnet gives the dropped value); dropnet's fmaf rounds once.
//
// Rates no draw decides (noise_edge): a rate (stddev) <= 0 is the identity for all three, as in Keras.
// GaussianDropout at rate >= 1 is the identity too: its stddev is infinite; Keras 3.15 raises
// ZeroDivisionError when such a layer is called in training, tf.keras 2 (`if 0 < rate < 1`) returned the
// input, and dropnet, whose op may read a scheduled rate of 1 on the device where nothing can be raised,
// does the latter. AlphaDropout at rate >= 1 gives zeros (Keras 3.15 raises ZeroDivisionError from
// 0.0 ** -0.5): every element is dropped to a alpha_p + b = a alpha_p (1 - rate), whose limit as rate -> 1
// is 0, and the gradient is 0 — as Dropout at rate 1.
//
// No a * b + c is left for a compiler to contract: the double constants use explicit fma, the per-element
// formulas explicit fmaf (see normal_math.hpp for why that matters to bit-identity).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/dropout_math.hpp"
#include "kernels/hd.hpp"
#include "kernels/normal_math.hpp"

namespace dropnet::kernels {

enum class NoiseKind : int { GaussianDropout = 0, GaussianNoise = 1, AlphaDropout = 2 };

// Keras' SELU constants, as AlphaDropout writes them (rounded to double by Python).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kAlphaDropoutAlphaP = -kSeluAlpha * kSeluScale;

// What one call needs per element, derived from the kind and the rate (GaussianNoise: stddev) once.
struct NoiseParams {
  NoiseKind kind;
  int edge;         // 1: the identity, 0: zeros, -1: the draws decide (noise_edge)
  float stddev;     // GaussianDropout, GaussianNoise
  float keep_prob;  // AlphaDropout: 1 - rate, Dropout's keep rule
  float a, b, alpha_p;
};

DROPNET_HD int noise_edge(NoiseKind kind, float rate) {
  if (rate <= 0.0f) return 1;
  if (rate >= 1.0f && kind == NoiseKind::GaussianDropout) return 1;
  if (rate >= 1.0f && kind == NoiseKind::AlphaDropout) return 0;
  return -1;
}

// GaussianDropout's stddev sqrt(rate / (1 - rate)), in double as Keras' math.sqrt, rounded to float.
DROPNET_HD float gaussian_dropout_stddev(float rate) {
  const double r = rate;
  return static_cast<float>(sqrt(r / (1.0 - r)));
}

// AlphaDropout's a and b in double as Keras computes them (** -0.5 as 1 / sqrt, both correctly rounded).
struct AlphaDropoutAffine {
  double a, b;
};
DROPNET_HD AlphaDropoutAffine alpha_dropout_affine(float rate) {
  const double r = rate, p = kAlphaDropoutAlphaP;
  const double a = 1.0 / sqrt((1.0 - r) * fma(r, p * p, 1.0));
  return AlphaDropoutAffine{a, -a * p * r};
}

DROPNET_HD NoiseParams noise_params(NoiseKind kind, float rate) {
  NoiseParams p{kind, noise_edge(kind, rate), 0.0f, 1.0f, 1.0f, 0.0f, static_cast<float>(kAlphaDropoutAlphaP)};
  if (p.edge >= 0) return p;
  if (kind == NoiseKind::GaussianDropout) p.stddev = gaussian_dropout_stddev(rate);
  if (kind == NoiseKind::GaussianNoise) p.stddev = rate;
  if (kind == NoiseKind::AlphaDropout) {
    const AlphaDropoutAffine ab = alpha_dropout_affine(rate);
    p.keep_prob = dropout_keep_prob(rate);
    p.a = static_cast<float>(ab.a);
    p.b = static_cast<float>(ab.b);
  }
  return p;
}

// Whether the kind draws normals (else uniforms for a keep rule).
DROPNET_HD bool noise_draws_normals(NoiseKind kind) { return kind != NoiseKind::AlphaDropout; }

// One element, the draws given: `n` the normal (GaussianDropout, GaussianNoise), `kept` the keep rule's
// answer (AlphaDropout). Forward maps x to y; backward maps dy to dx. Only for p.edge < 0.
DROPNET_HD float noise_apply(const NoiseParams& p, bool backward, float v, float n, bool kept) {
  switch (p.kind) {
    case NoiseKind::GaussianDropout: return v * fmaf(n, p.stddev, 1.0f);
    case NoiseKind::GaussianNoise: return backward ? v : fmaf(p.stddev, n, v);
    default: return backward ? (kept ? v * p.a : 0.0f) : fmaf(p.a, kept ? v : p.alpha_p, p.b);
  }
}

// The output of an edge rate: the input (edge 1) or zeros (edge 0), forward and backward alike.
DROPNET_HD float noise_edge_value(int edge, float v) { return edge == 1 ? v : 0.0f; }

}  // namespace dropnet::kernels
