// batch_norm_math.hpp: BatchNormalization's per-channel and per-element math, shared by the CPU backend
// (backend/cpu/batch_norm.cpp) and the CUDA backend's own kernel (kernels/batch_norm.cu). The GPU's batch
// statistics, normalisation and gradients are cuDNN's (backend/cuda/batch_norm_cudnn.cpp); the moving
// statistics are not, because cuDNN's running variance is the unbiased one (Bessel's correction) and
// Keras 3's is the biased batch variance.
#pragma once

#include <cmath>

#include "kernels/hd.hpp"

namespace dropnet::kernels {

// Keras 3's update of a moving statistic (BatchNormalization.call, float32):
//   moving * momentum + batch * (1 - momentum), with 1 - momentum rounded from the double (`complement`).
DROPNET_HD float batch_norm_moving(float moving, float batch, float momentum, float complement) {
  return moving * momentum + batch * complement;
}

// The per-channel factor and offset of y = x * scale + shift, as Keras' JAX batch_normalization forms
// them: scale = gamma * rsqrt(var + epsilon), shift = beta - mean * scale.
DROPNET_HD float batch_norm_inv_std(float variance, float epsilon) { return 1.0f / sqrtf(variance + epsilon); }
DROPNET_HD float batch_norm_shift(float beta, float mean, float scale) { return beta - mean * scale; }

// The biased variance back from cuDNN's saved inverse standard deviation 1 / sqrt(var + epsilon) (the GPU's
// moving-variance update; relative error about 1e-7 of var + epsilon).
DROPNET_HD float batch_norm_variance_from_inv_std(float inv_std, float epsilon) {
  return 1.0f / (inv_std * inv_std) - epsilon;
}

}  // namespace dropnet::kernels
