// cudnn_internal.hpp: what the emulated cuDNN's files share (test-only; private to cudnn_descriptors.cpp,
// cudnn_algorithms.cpp and cudnn_compute.cpp). The cuDNN headers only forward-declare the handle and
// descriptor structs; they are defined here. A descriptor holds the values its Set call was given; every
// library call reads them at call time into plain values (Tensor4, ConvShape) that the queued work copies,
// so changing a descriptor later never affects work already queued, as with a recorded CUDA graph.
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <functional>

struct cudnnContext {
  cudaStream_t stream = nullptr;  // 0, the legacy default stream, until cudnnSetStream
};

struct cudnnTensorStruct {
  bool set = false;  // a descriptor never Set is CUDNN_STATUS_BAD_PARAM wherever it is used
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int n = 0, c = 0, h = 0, w = 0;
};

struct cudnnFilterStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int k = 0, c = 0, h = 0, w = 0;  // always K, C, KH, KW whatever the format (cudnnSetFilter4dDescriptor)
};

struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // cuDNN's default for a new descriptor
};

struct cudnnPoolingStruct {
  bool set = false;
  cudnnPoolingMode_t mode = CUDNN_POOLING_MAX;
  cudnnNanPropagation_t nan = CUDNN_NOT_PROPAGATE_NAN;
  int window_h = 0, window_w = 0, pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1;
};

namespace dropnet::emulated::cudnn_double {

// A 4-d float tensor as the kernels address it: dims in N, C, H, W order and the element stride of each,
// from the descriptor's format (NCHW: W fastest; NHWC: C fastest). A filter is viewed the same way with
// N = K (output channels).
struct Tensor4 {
  int n = 0, c = 0, h = 0, w = 0;
  std::int64_t sn = 0, sc = 0, sh = 0, sw = 0;
  std::int64_t at(std::int64_t in, std::int64_t ic, std::int64_t ih, std::int64_t iw) const {
    return in * sn + ic * sc + ih * sh + iw * sw;
  }
  std::size_t count() const {
    return static_cast<std::size_t>(n) * static_cast<std::size_t>(c) * static_cast<std::size_t>(h) *
           static_cast<std::size_t>(w);
  }
  std::size_t bytes() const { return count() * sizeof(float); }  // packed: the extent is the element count
  bool same_dims(const Tensor4& o) const { return n == o.n && c == o.c && h == o.h && w == o.w; }
};

Tensor4 view(const cudnnTensorStruct& d);
Tensor4 view(const cudnnFilterStruct& d);

// Everything a 2-d convolution's three directions need, read from the descriptors at call time.
struct ConvShape {
  Tensor4 x, w, y;  // y is the forward output (dy for the backward directions)
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool flip = false;  // CUDNN_CONVOLUTION flips the kernel; CUDNN_CROSS_CORRELATION does not
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

// Checks the four descriptors of a convolution (set, float data and compute, 1 group so C matches, y of
// the output size cudnnGetConvolution2dForwardOutputDim gives) and fills *shape. CUDNN_STATUS_BAD_PARAM
// for inconsistent shapes, CUDNN_STATUS_NOT_SUPPORTED for anything but float.
cudnnStatus_t conv_shape(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv,
                         const cudnnTensorStruct* y, ConvShape* shape);

// The algorithms the double implements per direction, and the workspace each needs (false: unsupported).
// In cudnn_algorithms.cpp; the others in cudnn_descriptors.cpp.
enum class Direction { Forward, BackwardData, BackwardFilter };
bool workspace_for(Direction dir, int algo, const ConvShape& s, std::size_t* bytes);

// Whether [p, p + bytes) is device memory (a null pointer never is).
bool device(const void* p, std::size_t bytes);

// Queues work on the handle's stream; a failing enqueue is CUDNN_STATUS_EXECUTION_FAILED.
cudnnStatus_t queue(const cudnnContext& handle, const char* what, std::function<void()> work);

}  // namespace dropnet::emulated::cudnn_double
