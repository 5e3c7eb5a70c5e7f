// pool_cudnn.hpp: MaxPooling2D forward and backward through cuDNN, NHWC.
//
// Padding. Keras' windows that run past the edge take the max of what is inside. cuDNN's own padding is
// symmetric, so whenever a window reaches past the image ("same" padding, or a last window cut short) the
// images are padded explicitly into scratch memory with -inf, which no real value loses to, and cuDNN
// runs unpadded on the padded copy; backward's result is cropped back.
//
// Backward routes each window's gradient to its maximum. Ties (equal values in one window) are the one
// case where cuDNN and the CPU backend may choose different elements; after a ReLU the usual tie is a
// window of zeros, whose gradient the ReLU's backward zeroes anyway. With `deterministic`,
// CUDNN_POOLING_MAX_DETERMINISTIC is used.
//
// Descriptors are cached per full problem (every PoolGeometry field and the settings).
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cuda/device_context.hpp"

namespace dropnet::backend::cuda {

class CudnnPool {
 public:
  explicit CudnnPool(DeviceContext& ctx);
  ~CudnnPool();
  CudnnPool(const CudnnPool&) = delete;
  CudnnPool& operator=(const CudnnPool&) = delete;

  // y (N, OH, OW, C) = max over each window of x (N, H, W, C).
  void forward(const float* x, float* y, const PoolGeometry& g);
  // dx (N, H, W, C) from x, the forward's y and dy; dx is overwritten.
  void backward(const float* x, const float* y, const float* dy, float* dx, const PoolGeometry& g);
  void clear() noexcept;

 private:
  struct Plan;
  Plan& plan_for(const PoolGeometry& g);
  const float* input_for_cudnn(const float* x, const Plan& plan, const PoolGeometry& g);

  DeviceContext& ctx_;
  std::map<std::vector<std::int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace dropnet::backend::cuda
