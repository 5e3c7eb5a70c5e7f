// device_context.cpp: the stream, handles, settings and scratch of device_context.hpp.
#include "backend/cuda/device_context.hpp"

#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {
namespace {
// cuBLAS gets its workspace from us rather than allocating its own on first use: the GEMMs of the
// models here are small, and a fixed buffer keeps cuBLAS from allocating during graph capture.
constexpr std::size_t kCublasWorkspace = std::size_t{4} << 20;
}  // namespace

DeviceContext::DeviceContext()
    : stream_(make_stream()),
      cudnn_(make_cudnn_handle()),
      cublas_(make_cublas_handle()),
      cublas_workspace_(kCublasWorkspace),
      staging_done_(make_event()) {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  CUDNN_CHECK(cudnnSetStream(cudnn_.get(), stream_.get()));
  CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
  CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_workspace_.data(), cublas_workspace_.bytes()));
  // Device-side alpha/beta would need device constants; all scalars here are host values.
  CUBLAS_CHECK(cublasSetPointerMode(cublas_.get(), CUBLAS_POINTER_MODE_HOST));
  set_settings(settings_);
}

DeviceContext::~DeviceContext() {
  // Work still queued may use the scratch buffers freed below.
  if (stream_) CUDA_CHECK_LOG(cudaStreamSynchronize(stream_.get()));
}

void DeviceContext::set_settings(const NumericSettings& settings) {
  settings_ = settings;
  // CUBLAS_DEFAULT_MATH computes float32 GEMMs in float32 (TF32 only when asked for, or when the
  // NVIDIA_TF32_OVERRIDE environment variable forces it). Atomics stay off (cuBLAS' default), which keeps
  // its results reproducible on one stream.
  CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), settings.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  CUBLAS_CHECK(cublasSetAtomicsMode(cublas_.get(), CUBLAS_ATOMICS_NOT_ALLOWED));
}

void* DeviceContext::scratch(Scratch slot, std::size_t bytes) {
  return scratch_[static_cast<std::size_t>(slot)].grow(bytes, stream_.get());
}

const float* DeviceContext::ones(std::size_t count) {
  auto& buffer = scratch_[static_cast<std::size_t>(Scratch::Ones)];
  if (count > ones_count_) {
    // Grow with room to spare: the bias gradient of a Conv2D needs N*OH*OW ones, which varies with N.
    const std::size_t want = count + count / 2;
    buffer.grow(want * sizeof(float), stream_.get());
    kernels::launch_fill(buffer.as<float>(), want, 1.0f, stream_ptr());
    ones_count_ = want;
  }
  return buffer.as<float>();
}

void* DeviceContext::staging(std::size_t bytes) {
  if (staging_pending_) {
    CUDA_CHECK(cudaEventSynchronize(staging_done_.get()));
    staging_pending_ = false;
  }
  return staging_.grow(bytes);
}

void DeviceContext::staging_in_flight() {
  CUDA_CHECK(cudaEventRecord(staging_done_.get(), stream_.get()));
  staging_pending_ = true;
}

std::size_t DeviceContext::bytes_in_scratch() const noexcept {
  std::size_t total = cublas_workspace_.bytes();
  for (const auto& b : scratch_) total += b.bytes();
  return total;
}

}  // namespace dropnet::backend::cuda
