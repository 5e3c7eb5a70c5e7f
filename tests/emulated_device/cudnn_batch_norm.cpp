// cudnn_batch_norm.cpp: the emulated device's cuDNN, part 4 (test-only): batch normalization, the legacy
// calls the CUDA backend makes (backend/cuda/batch_norm_cudnn.cpp) in CUDNN_BATCHNORM_SPATIAL mode:
// statistics per channel over N, H and W. As cuDNN documents them:
//   training   y = gamma * (x - mean) * inv + beta with the batch mean and inv = 1 / sqrt(var + epsilon),
//              var the biased batch variance; resultSaveMean = mean, resultSaveInvVariance = inv; when the
//              running pointers are given, running = running * (1 - factor) + factor * stat, where the
//              variance's stat is the UNBIASED one, var * M / (M - 1) (M = N * H * W), as real cuDNN does;
//   inference  the same with the given mean and variance;
//   backward   dgamma = sum dy * xhat, dbeta = sum dy, dx = gamma * inv * (dy - mean(dy) - xhat * mean(dy * xhat)).
// Each output is alpha * result + beta * out (alphaParamDiff/betaParamDiff for dgamma and dbeta). Sums in
// double, in (n, h, w) order. Other modes, non-float data or epsilon < CUDNN_BN_MIN_EPSILON: NOT_SUPPORTED
// or BAD_PARAM, as cuDNN answers them.
#include <cmath>
#include <vector>

#include "emulated_device/cudnn_internal.hpp"

using namespace dropnet::emulated::cudnn_double;

namespace {

inline void blend(float& out, float v, float alpha, float beta) {
  out = beta == 0.0f ? alpha * v : alpha * v + beta * out;
}

// x and y of the same dims, float; the parameter descriptor 1 x C x 1 x 1.
cudnnStatus_t check_bn(cudnnHandle_t handle, cudnnBatchNormMode_t mode, const void* alpha, const void* beta,
                       const cudnnTensorStruct* x, const cudnnTensorStruct* y, const cudnnTensorStruct* p,
                       double epsilon) {
  if (handle == nullptr || alpha == nullptr || beta == nullptr || x == nullptr || y == nullptr || p == nullptr ||
      !x->set || !y->set || !p->set)
    return CUDNN_STATUS_BAD_PARAM;
  if (mode != CUDNN_BATCHNORM_SPATIAL) return CUDNN_STATUS_NOT_SUPPORTED;
  if (x->type != CUDNN_DATA_FLOAT || y->type != CUDNN_DATA_FLOAT || p->type != CUDNN_DATA_FLOAT)
    return CUDNN_STATUS_NOT_SUPPORTED;
  if (!view(*x).same_dims(view(*y))) return CUDNN_STATUS_BAD_PARAM;
  if (p->n != 1 || p->c != x->c || p->h != 1 || p->w != 1) return CUDNN_STATUS_BAD_PARAM;
  if (!(epsilon >= CUDNN_BN_MIN_EPSILON)) return CUDNN_STATUS_BAD_PARAM;
  return CUDNN_STATUS_SUCCESS;
}

bool params_on_device(int c, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (!device(p, static_cast<std::size_t>(c) * sizeof(float))) return false;
  return true;
}

// Per channel: the mean and the biased variance of x, in double, two passes.
void moments(const Tensor4& t, const float* x, int c, double* mean, double* var) {
  const double m = double(t.n) * t.h * t.w;
  double sum = 0.0, sq = 0.0;
  for (int n = 0; n < t.n; ++n)
    for (int h = 0; h < t.h; ++h)
      for (int w = 0; w < t.w; ++w) sum += x[t.at(n, c, h, w)];
  *mean = sum / m;
  for (int n = 0; n < t.n; ++n)
    for (int h = 0; h < t.h; ++h)
      for (int w = 0; w < t.w; ++w) {
        const double d = x[t.at(n, c, h, w)] - *mean;
        sq += d * d;
      }
  *var = sq / m;
}

}  // namespace

extern "C" {

cudnnStatus_t CUDNNWINAPI cudnnBatchNormalizationForwardTraining(
    cudnnHandle_t handle, cudnnBatchNormMode_t mode, const void* alpha, const void* beta,
    const cudnnTensorDescriptor_t xDesc, const void* x, const cudnnTensorDescriptor_t yDesc, void* y,
    const cudnnTensorDescriptor_t bnScaleBiasMeanVarDesc, const void* bnScale, const void* bnBias,
    double exponentialAverageFactor, void* resultRunningMean, void* resultRunningVariance, double epsilon,
    void* resultSaveMean, void* resultSaveInvVariance) {
  if (cudnnStatus_t st = check_bn(handle, mode, alpha, beta, xDesc, yDesc, bnScaleBiasMeanVarDesc, epsilon);
      st != CUDNN_STATUS_SUCCESS)
    return st;
  // The running pointers come both or neither; so do the saved ones.
  if ((resultRunningMean == nullptr) != (resultRunningVariance == nullptr) ||
      (resultSaveMean == nullptr) != (resultSaveInvVariance == nullptr))
    return CUDNN_STATUS_BAD_PARAM;
  const Tensor4 tx = view(*xDesc), ty = view(*yDesc);
  const int channels = tx.c;
  if (!device(x, tx.bytes()) || !device(y, ty.bytes()) || !params_on_device(channels, {bnScale, bnBias}) ||
      (resultRunningMean && !params_on_device(channels, {resultRunningMean, resultRunningVariance})) ||
      (resultSaveMean && !params_on_device(channels, {resultSaveMean, resultSaveInvVariance})))
    return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const auto* xp = static_cast<const float*>(x);
  auto* yp = static_cast<float*>(y);
  const auto* gamma = static_cast<const float*>(bnScale);
  const auto* shift = static_cast<const float*>(bnBias);
  auto* run_mean = static_cast<float*>(resultRunningMean);
  auto* run_var = static_cast<float*>(resultRunningVariance);
  auto* save_mean = static_cast<float*>(resultSaveMean);
  auto* save_inv = static_cast<float*>(resultSaveInvVariance);
  const double factor = exponentialAverageFactor;
  return queue(*handle, "cudnnBatchNormalizationForwardTraining", [=] {
    const double m = double(tx.n) * tx.h * tx.w;
    for (int c = 0; c < channels; ++c) {
      double mean = 0.0, var = 0.0;
      moments(tx, xp, c, &mean, &var);
      const double inv = 1.0 / std::sqrt(var + epsilon);
      for (int n = 0; n < tx.n; ++n)
        for (int h = 0; h < tx.h; ++h)
          for (int w = 0; w < tx.w; ++w)
            blend(yp[ty.at(n, c, h, w)], float(gamma[c] * (xp[tx.at(n, c, h, w)] - mean) * inv + shift[c]), a, b);
      if (save_mean != nullptr) {
        save_mean[c] = float(mean);
        save_inv[c] = float(inv);
      }
      if (run_mean != nullptr) {
        const double unbiased = m > 1 ? var * m / (m - 1) : var;
        run_mean[c] = float(run_mean[c] * (1.0 - factor) + factor * mean);
        run_var[c] = float(run_var[c] * (1.0 - factor) + factor * unbiased);
      }
    }
  });
}

cudnnStatus_t CUDNNWINAPI cudnnBatchNormalizationForwardInference(
    cudnnHandle_t handle, cudnnBatchNormMode_t mode, const void* alpha, const void* beta,
    const cudnnTensorDescriptor_t xDesc, const void* x, const cudnnTensorDescriptor_t yDesc, void* y,
    const cudnnTensorDescriptor_t bnScaleBiasMeanVarDesc, const void* bnScale, const void* bnBias,
    const void* estimatedMean, const void* estimatedVariance, double epsilon) {
  if (cudnnStatus_t st = check_bn(handle, mode, alpha, beta, xDesc, yDesc, bnScaleBiasMeanVarDesc, epsilon);
      st != CUDNN_STATUS_SUCCESS)
    return st;
  const Tensor4 tx = view(*xDesc), ty = view(*yDesc);
  const int channels = tx.c;
  if (!device(x, tx.bytes()) || !device(y, ty.bytes()) ||
      !params_on_device(channels, {bnScale, bnBias, estimatedMean, estimatedVariance}))
    return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const auto* xp = static_cast<const float*>(x);
  auto* yp = static_cast<float*>(y);
  const auto* gamma = static_cast<const float*>(bnScale);
  const auto* shift = static_cast<const float*>(bnBias);
  const auto* mean = static_cast<const float*>(estimatedMean);
  const auto* var = static_cast<const float*>(estimatedVariance);
  return queue(*handle, "cudnnBatchNormalizationForwardInference", [=] {
    for (int c = 0; c < channels; ++c) {
      const double inv = 1.0 / std::sqrt(double(var[c]) + epsilon);
      for (int n = 0; n < tx.n; ++n)
        for (int h = 0; h < tx.h; ++h)
          for (int w = 0; w < tx.w; ++w)
            blend(yp[ty.at(n, c, h, w)], float(gamma[c] * (xp[tx.at(n, c, h, w)] - double(mean[c])) * inv + shift[c]),
                  a, b);
    }
  });
}

cudnnStatus_t CUDNNWINAPI cudnnBatchNormalizationBackward(
    cudnnHandle_t handle, cudnnBatchNormMode_t mode, const void* alphaDataDiff, const void* betaDataDiff,
    const void* alphaParamDiff, const void* betaParamDiff, const cudnnTensorDescriptor_t xDesc, const void* x,
    const cudnnTensorDescriptor_t dyDesc, const void* dy, const cudnnTensorDescriptor_t dxDesc, void* dx,
    const cudnnTensorDescriptor_t dBnScaleBiasDesc, const void* bnScale, void* dBnScaleResult, void* dBnBiasResult,
    double epsilon, const void* savedMean, const void* savedInvVariance) {
  if (cudnnStatus_t st = check_bn(handle, mode, alphaDataDiff, betaDataDiff, xDesc, dxDesc, dBnScaleBiasDesc, epsilon);
      st != CUDNN_STATUS_SUCCESS)
    return st;
  if (alphaParamDiff == nullptr || betaParamDiff == nullptr || dyDesc == nullptr || !dyDesc->set)
    return CUDNN_STATUS_BAD_PARAM;
  if ((savedMean == nullptr) != (savedInvVariance == nullptr)) return CUDNN_STATUS_BAD_PARAM;
  const Tensor4 tx = view(*xDesc), tdy = view(*dyDesc), tdx = view(*dxDesc);
  if (!tdy.same_dims(tx)) return CUDNN_STATUS_BAD_PARAM;
  const int channels = tx.c;
  if (!device(x, tx.bytes()) || !device(dy, tdy.bytes()) || !device(dx, tdx.bytes()) ||
      !params_on_device(channels, {bnScale, dBnScaleResult, dBnBiasResult}) ||
      (savedMean && !params_on_device(channels, {savedMean, savedInvVariance})))
    return CUDNN_STATUS_BAD_PARAM;
  const float ad = *static_cast<const float*>(alphaDataDiff), bd = *static_cast<const float*>(betaDataDiff);
  const float ap = *static_cast<const float*>(alphaParamDiff), bp = *static_cast<const float*>(betaParamDiff);
  const auto* xp = static_cast<const float*>(x);
  const auto* dyp = static_cast<const float*>(dy);
  auto* dxp = static_cast<float*>(dx);
  const auto* gamma = static_cast<const float*>(bnScale);
  auto* dgamma = static_cast<float*>(dBnScaleResult);
  auto* dbeta = static_cast<float*>(dBnBiasResult);
  const auto* smean = static_cast<const float*>(savedMean);
  const auto* sinv = static_cast<const float*>(savedInvVariance);
  return queue(*handle, "cudnnBatchNormalizationBackward", [=] {
    const double m = double(tx.n) * tx.h * tx.w;
    for (int c = 0; c < channels; ++c) {
      double mean = 0.0, inv = 0.0;
      if (smean != nullptr) {
        mean = smean[c];
        inv = sinv[c];
      } else {  // recomputed from x, as cuDNN does without the saved values
        double var = 0.0;
        moments(tx, xp, c, &mean, &var);
        inv = 1.0 / std::sqrt(var + epsilon);
      }
      double sum_dy = 0.0, sum_dy_xhat = 0.0;
      for (int n = 0; n < tx.n; ++n)
        for (int h = 0; h < tx.h; ++h)
          for (int w = 0; w < tx.w; ++w) {
            const double g = dyp[tdy.at(n, c, h, w)];
            sum_dy += g;
            sum_dy_xhat += g * (xp[tx.at(n, c, h, w)] - mean) * inv;
          }
      const double scale = gamma[c] * inv;
      for (int n = 0; n < tx.n; ++n)
        for (int h = 0; h < tx.h; ++h)
          for (int w = 0; w < tx.w; ++w) {
            const double xhat = (xp[tx.at(n, c, h, w)] - mean) * inv;
            const double v = scale * (dyp[tdy.at(n, c, h, w)] - sum_dy / m - xhat * sum_dy_xhat / m);
            blend(dxp[tdx.at(n, c, h, w)], float(v), ad, bd);
          }
      blend(dgamma[c], float(sum_dy_xhat), ap, bp);
      blend(dbeta[c], float(sum_dy), ap, bp);
    }
  });
}

}  // extern "C"
