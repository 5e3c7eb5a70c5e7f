// conv_cudnn.hpp: Conv2D forward and backward (data, filter, bias) through cuDNN 9's legacy API.
//
// Layouts. Images are NHWC (CUDNN_TENSOR_NHWC descriptors, no transposition). The Keras kernel
// (KH, KW, C, K) is not a cuDNN filter layout: cuDNN's NHWC filter format is (K, KH, KW, C). Each call
// therefore transposes the kernel, seen as a (KH*KW*C, K) matrix, into a scratch copy (K, KH*KW*C), and
// backward-filter's result is transposed back into the Keras layout. That is one small extra pass per
// call (3*3*64*64 = 37K floats for the seed model's widest kernel), cheaper than keeping a second copy of
// every kernel in sync with Adam and max-norm.
//
// Padding. cuDNN pads symmetrically. Keras' "same" puts the smaller half of an odd total first (stride 2,
// even kernels); when the symmetric padding would not give Keras' output size, the images are padded
// explicitly into scratch memory (zeros) and cuDNN runs unpadded; backward-data's result is cropped back.
//
// Plans. Descriptors and the algorithm of each direction are chosen once per full problem (every field
// of ConvGeometry plus the numeric settings) and cached. Without `deterministic`, cudnnFind* times the
// algorithms and the fastest within the workspace limit wins (a smaller workspace wins among those within
// 10% of it); with `deterministic`, cuDNN's heuristics (cudnnGet*_v7, the same choice on every run) pick
// among the algorithms it marks CUDNN_DETERMINISTIC. Without `allow_tf32` only CUDNN_FMA_MATH algorithms
// run, so results stay float32 throughout. A plan is never chosen while the stream is being captured into
// a CUDA graph (cudnnFind* allocates and synchronizes): that throws DeviceError instead; the uncaptured
// step before a recording has chosen every plan the recorded step uses.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cuda/device_context.hpp"

namespace dropnet::backend::cuda {

class CudnnConv {
 public:
  explicit CudnnConv(DeviceContext& ctx);
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  // y (N, OH, OW, K) = conv(x (N, H, W, C), w (KH, KW, C, K)) + b (K); b may be null.
  void forward(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g);
  // dx (may be null), dw, db (may be null) from dy; each is overwritten.
  void backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                const ConvGeometry& g);
  // Forgets every plan (after the numeric settings changed).
  void clear() noexcept;
  std::size_t plan_count() const noexcept { return plans_.size(); }

 private:
  struct Plan;
  Plan& plan_for(const ConvGeometry& g);
  const float* transposed_filter(const float* w, const ConvGeometry& g);
  const float* input_for_cudnn(const float* x, const Plan& plan, const ConvGeometry& g);

  DeviceContext& ctx_;
  std::map<std::vector<std::int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace dropnet::backend::cuda
