// device_resources.cpp: creation of the RAII owners of device_resources.hpp.
#include "backend/cuda/device_resources.hpp"

#include <limits>
#include <string>

#include "backend/cuda/cuda_memory.hpp"
#include "dropnet/errors.hpp"

namespace dropnet::backend::cuda {

Stream make_stream() {
  // Non-blocking: the stream is not ordered with the legacy default stream. A blocking stream would be,
  // both ways, which serializes every model of the process through stream 0 (each memory-layer copy waits
  // for every model's queued work) and makes one thread's synchronous copy invalidate another thread's
  // capture of its stream (cudaErrorStreamCaptureImplicit). The order that replaces it: the memory layer's
  // copies and fills complete before they return, and the host synchronizes a model's stream before it
  // touches memory that stream may still use (backend/cuda/cuda_memory.hpp, ORDERING).
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return Stream(s);
}

Event make_event() {
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return Event(e);
}

CudnnHandle make_cudnn_handle() {
  cudnnHandle_t h = nullptr;
  CUDNN_CHECK(cudnnCreate(&h));
  return CudnnHandle(h);
}

CublasHandle make_cublas_handle() {
  cublasHandle_t h = nullptr;
  CUBLAS_CHECK(cublasCreate(&h));
  return CublasHandle(h);
}

TensorDesc make_tensor_desc() {
  cudnnTensorDescriptor_t d = nullptr;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
  return TensorDesc(d);
}

FilterDesc make_filter_desc() {
  cudnnFilterDescriptor_t d = nullptr;
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
  return FilterDesc(d);
}

ConvDesc make_conv_desc() {
  cudnnConvolutionDescriptor_t d = nullptr;
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
  return ConvDesc(d);
}

PoolDesc make_pool_desc() {
  cudnnPoolingDescriptor_t d = nullptr;
  CUDNN_CHECK(cudnnCreatePoolingDescriptor(&d));
  return PoolDesc(d);
}

namespace {
int as_int(std::int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max())
    throw InvalidArgument(std::string("cuDNN needs ") + what + " to fit in an int, got " + std::to_string(v));
  return static_cast<int>(v);
}
}  // namespace

void set_nhwc(const TensorDesc& desc, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c) {
  // cudnnSetTensor4dDescriptor takes the dimensions in N, C, H, W order whatever the format.
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, as_int(n, "N"),
                                         as_int(c, "C"), as_int(h, "H"), as_int(w, "W")));
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) {
  if (bytes > 0) {
    CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    bytes_ = bytes;
  }
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void* DeviceBuffer::grow(std::size_t bytes, cudaStream_t stream) {
  if (bytes <= bytes_) return ptr_;
  if (ptr_ != nullptr) CUDA_CHECK(cudaStreamSynchronize(stream));
  reset();
  CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  bytes_ = bytes;
  return ptr_;
}

void DeviceBuffer::reset() noexcept {
  // Through the memory layer: after the device is idle, and never while another thread records a graph.
  if (ptr_ != nullptr) release_block(ptr_, /*pinned=*/false);
  ptr_ = nullptr;
  bytes_ = 0;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void* PinnedBuffer::grow(std::size_t bytes) {
  if (bytes <= bytes_) return ptr_;
  reset();
  DeviceWideCall call;  // pinning host memory may synchronize the device
  CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
  bytes_ = bytes;
  return ptr_;
}

void PinnedBuffer::reset() noexcept {
  if (ptr_ != nullptr) release_block(ptr_, /*pinned=*/true);
  ptr_ = nullptr;
  bytes_ = 0;
}

}  // namespace dropnet::backend::cuda
