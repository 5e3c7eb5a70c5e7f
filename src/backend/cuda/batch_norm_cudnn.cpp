// batch_norm_cudnn.cpp: BatchNormalization and average pooling on the CUDA backend (issue 24).
//
// BatchNormalization runs on cuDNN's legacy batch-normalization calls in CUDNN_BATCHNORM_SPATIAL mode, x
// described as (rows, C, 1, 1): statistics per channel over every other axis, which is Keras' axis=-1 on an
// NHWC image (rows = N * H * W) and on a flat (N, C) input alike. cuDNN's normalisation, batch statistics
// (biased variance) and gradients are Keras'; its running statistics are not (cuDNN updates the running
// variance with the unbiased variance), so the running pointers are passed as null and dropnet's own
// kernel (kernels/batch_norm.cu) moves the moving statistics from the saved mean and inverse standard
// deviation, as Keras does. Descriptors are made per call (host memory only) and nothing is allocated on
// the device or read back, so a recorded step captures these calls.
//
// cuDNN 9 marks the legacy calls deprecated (the graph API replaces them); they remain in cudnn_ops.
//
// Average pooling runs on dropnet's own kernels (kernels/avg_pool.cu): Keras' "same" padding is asymmetric,
// which cuDNN's symmetric pooling descriptor cannot express, and the kernels share the CPU's math, so the
// two backends give the same bits.
#include <cudnn.h>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_context.hpp"
#include "backend/op_checks.hpp"
#include "dropnet/errors.hpp"
#include "kernels/norm_pool_launchers.hpp"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace dropnet::backend::cuda {
namespace {

constexpr float kOne = 1.0f, kZero = 0.0f;

int as_dim(std::int64_t v, const char* what) {
  if (v <= 0 || v > 0x7fffffff)
    throw InvalidArgument(std::string("BatchNormalization on cuDNN: ") + what + " out of range");
  return static_cast<int>(v);
}

struct BatchNormDescs {
  TensorDesc x = make_tensor_desc(), param = make_tensor_desc();
  explicit BatchNormDescs(const BatchNormCall& c) {
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, as_dim(c.rows, "rows"),
                                           as_dim(c.channels, "channels"), 1, 1));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(param.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1,
                                           as_dim(c.channels, "channels"), 1, 1));
  }
};

void check(const char* op, const Tensor& x, const Tensor& y, const BatchNormCall& c) {
  checks::tensor_of(Device::CUDA, x, c.rows * c.channels, op);
  checks::tensor_of(Device::CUDA, y, c.rows * c.channels, op);
}

kernels::AvgPoolGeometry avg_geometry(const PoolGeometry& g) {
  return {g.n, g.h, g.w, g.c, g.ph, g.pw, g.sh, g.sw, g.pad_top, g.pad_left, g.oh, g.ow};
}

}  // namespace

void CudaBackend::batch_norm_forward_training(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                              const BatchNormCall& c) {
  check("batch_norm_forward_training", x, y, c);
  if (c.rows == 0 || c.channels == 0) return;
  const BatchNormDescs d(c);
  CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      ctx_->cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, d.x.get(), x.data(), d.x.get(), y.data(), d.param.get(),
      w.gamma, w.beta, /*exponentialAverageFactor=*/0.0, nullptr, nullptr, double(c.epsilon), w.batch_mean,
      w.batch_inv_std));
  kernels::launch_batch_norm_moving(w.moving_mean, w.moving_variance, w.batch_mean, w.batch_inv_std, c.channels,
                                    c.momentum, c.momentum_complement, c.epsilon, ctx_->stream_ptr());
}

void CudaBackend::batch_norm_forward_inference(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                               const BatchNormCall& c) {
  check("batch_norm_forward_inference", x, y, c);
  if (c.rows == 0 || c.channels == 0) return;
  const BatchNormDescs d(c);
  CUDNN_CHECK(cudnnBatchNormalizationForwardInference(ctx_->cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero,
                                                      d.x.get(), x.data(), d.x.get(), y.data(), d.param.get(),
                                                      w.gamma, w.beta, w.moving_mean, w.moving_variance,
                                                      double(c.epsilon)));
}

void CudaBackend::batch_norm_backward(const Tensor& x, const Tensor& dy, Tensor* dx, const BatchNormWeights& w,
                                      float* dgamma, float* dbeta, const BatchNormCall& c) {
  check("batch_norm_backward", x, dy, c);
  if (dx != nullptr) checks::tensor_of(Device::CUDA, *dx, c.rows * c.channels, "batch_norm_backward dx");
  if (c.rows == 0 || c.channels == 0) return;
  const BatchNormDescs d(c);
  // cuDNN always writes dx: without one (the model's first layer) it goes to scratch and is dropped.
  float* dx_out = dx != nullptr ? dx->data()
                                : ctx_->scratch_as<float>(Scratch::PaddedGrad, static_cast<std::size_t>(x.size()));
  CUDNN_CHECK(cudnnBatchNormalizationBackward(ctx_->cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero,
                                              d.x.get(), x.data(), d.x.get(), dy.data(), d.x.get(), dx_out,
                                              d.param.get(), w.gamma, dgamma, dbeta, double(c.epsilon), w.batch_mean,
                                              w.batch_inv_std));
}

void CudaBackend::avgpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) {
  checks::tensor_of(Device::CUDA, x, g.n * g.h * g.w * g.c, "avgpool2d_forward x");
  checks::tensor_of(Device::CUDA, y, g.n * g.oh * g.ow * g.c, "avgpool2d_forward y");
  kernels::launch_avg_pool_forward(x.data(), y.data(), avg_geometry(g), ctx_->stream_ptr());
}

void CudaBackend::avgpool2d_backward(const Tensor& dy, Tensor& dx, const PoolGeometry& g) {
  checks::tensor_of(Device::CUDA, dy, g.n * g.oh * g.ow * g.c, "avgpool2d_backward dy");
  checks::tensor_of(Device::CUDA, dx, g.n * g.h * g.w * g.c, "avgpool2d_backward dx");
  kernels::launch_avg_pool_backward(dy.data(), dx.data(), avg_geometry(g), ctx_->stream_ptr());
}

}  // namespace dropnet::backend::cuda
