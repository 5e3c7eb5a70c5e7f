// device_resources.hpp: RAII owners for everything in the CUDA backend that has a destroy call:
// device and pinned host buffers, streams, events, CUDA graphs and their instantiations, the cuDNN and
// cuBLAS handles and cuDNN descriptors.
//
// Owners are movable and not copyable (a copy of a handle would be destroyed twice). Destructors never
// throw: they report a failing destroy call on stderr (the *_CHECK_LOG macros) and go on.
// Internal to src/backend/cuda: this header is the one place that pulls the CUDA library headers into
// the backend's .cpp files.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "backend/cuda/cuda_check.hpp"

namespace dropnet::backend::cuda {

// A handle and its destroy function. Traits: `static void destroy(Handle) noexcept`.
template <typename Handle, typename Traits>
class Unique {
 public:
  Unique() = default;
  explicit Unique(Handle handle) noexcept : handle_(handle) {}
  ~Unique() { reset(); }
  Unique(Unique&& other) noexcept : handle_(std::exchange(other.handle_, Handle{})) {}
  Unique& operator=(Unique&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, Handle{});
    }
    return *this;
  }
  Unique(const Unique&) = delete;
  Unique& operator=(const Unique&) = delete;

  Handle get() const noexcept { return handle_; }
  explicit operator bool() const noexcept { return handle_ != Handle{}; }
  void reset() noexcept {
    if (handle_ != Handle{}) Traits::destroy(std::exchange(handle_, Handle{}));
  }

 private:
  Handle handle_{};
};

struct StreamTraits {
  static void destroy(cudaStream_t s) noexcept { CUDA_CHECK_LOG(cudaStreamDestroy(s)); }
};
struct EventTraits {
  static void destroy(cudaEvent_t e) noexcept { CUDA_CHECK_LOG(cudaEventDestroy(e)); }
};
struct CudnnHandleTraits {
  static void destroy(cudnnHandle_t h) noexcept { CUDNN_CHECK_LOG(cudnnDestroy(h)); }
};
struct CublasHandleTraits {
  static void destroy(cublasHandle_t h) noexcept { CUBLAS_CHECK_LOG(cublasDestroy(h)); }
};
struct TensorDescTraits {
  static void destroy(cudnnTensorDescriptor_t d) noexcept { CUDNN_CHECK_LOG(cudnnDestroyTensorDescriptor(d)); }
};
struct FilterDescTraits {
  static void destroy(cudnnFilterDescriptor_t d) noexcept { CUDNN_CHECK_LOG(cudnnDestroyFilterDescriptor(d)); }
};
struct ConvDescTraits {
  static void destroy(cudnnConvolutionDescriptor_t d) noexcept {
    CUDNN_CHECK_LOG(cudnnDestroyConvolutionDescriptor(d));
  }
};
struct PoolDescTraits {
  static void destroy(cudnnPoolingDescriptor_t d) noexcept { CUDNN_CHECK_LOG(cudnnDestroyPoolingDescriptor(d)); }
};

struct GraphTraits {
  static void destroy(cudaGraph_t g) noexcept { CUDA_CHECK_LOG(cudaGraphDestroy(g)); }
};
struct GraphExecTraits {
  // A launch still running is not cut short: CUDA frees the executable graph when it completes.
  static void destroy(cudaGraphExec_t g) noexcept { CUDA_CHECK_LOG(cudaGraphExecDestroy(g)); }
};

using Stream = Unique<cudaStream_t, StreamTraits>;
using Graph = Unique<cudaGraph_t, GraphTraits>;             // a captured graph (cudaStreamEndCapture)
using GraphExec = Unique<cudaGraphExec_t, GraphExecTraits>; // its instantiation (cudaGraphInstantiate)
using Event = Unique<cudaEvent_t, EventTraits>;
using CudnnHandle = Unique<cudnnHandle_t, CudnnHandleTraits>;
using CublasHandle = Unique<cublasHandle_t, CublasHandleTraits>;
using TensorDesc = Unique<cudnnTensorDescriptor_t, TensorDescTraits>;
using FilterDesc = Unique<cudnnFilterDescriptor_t, FilterDescTraits>;
using ConvDesc = Unique<cudnnConvolutionDescriptor_t, ConvDescTraits>;
using PoolDesc = Unique<cudnnPoolingDescriptor_t, PoolDescTraits>;

// Creation (throwing DeviceError on failure).
Stream make_stream();           // a non-blocking stream: not ordered with stream 0 (see device_context.hpp)
Event make_event();             // timing disabled: used only to order the host with the stream
CudnnHandle make_cudnn_handle();
CublasHandle make_cublas_handle();
TensorDesc make_tensor_desc();
FilterDesc make_filter_desc();
ConvDesc make_conv_desc();
PoolDesc make_pool_desc();

// (N, H, W, C) float tensor in NHWC order; throws InvalidArgument when a dimension does not fit in int.
void set_nhwc(const TensorDesc& desc, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c);

// cudaMalloc'd bytes. grow() keeps nothing of the old contents and waits for `stream` before freeing the
// old block (work already queued may still read it).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const noexcept { return ptr_; }
  template <typename T>
  T* as() const noexcept { return static_cast<T*>(ptr_); }
  std::size_t bytes() const noexcept { return bytes_; }
  // Ensures at least `bytes`; returns data().
  void* grow(std::size_t bytes, cudaStream_t stream);
  void reset() noexcept;

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// cudaMallocHost'd (page-locked) bytes, so that an asynchronous host-to-device copy really is one.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { reset(); }
  PinnedBuffer(PinnedBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const noexcept { return ptr_; }
  template <typename T>
  T* as() const noexcept { return static_cast<T*>(ptr_); }
  std::size_t bytes() const noexcept { return bytes_; }
  // Ensures at least `bytes` (the caller has made sure no copy still reads the old block).
  void* grow(std::size_t bytes);
  void reset() noexcept;

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace dropnet::backend::cuda
