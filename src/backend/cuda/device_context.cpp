// device_context.cpp: the stream, handles, settings and scratch of device_context.hpp.
#include "backend/cuda/device_context.hpp"

#include <string>
#include <vector>

#include "backend/cuda/cuda_memory.hpp"
#include "dropnet/errors.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {
namespace {
// cuBLAS gets its workspace from us rather than allocating its own on first use: the GEMMs of the
// models here are small, and a fixed buffer keeps cuBLAS from allocating during graph capture (CUDA 12+
// cuBLAS otherwise takes a workspace from its own pool, which a captured graph must not depend on). It is
// set after cublasSetStream, which resets the workspace to cuBLAS' default.
constexpr std::size_t kCublasWorkspace = std::size_t{4} << 20;

const char* slot_name(Scratch slot) {
  switch (slot) {
    case Scratch::CudnnWorkspace: return "the cuDNN workspace";
    case Scratch::Filter: return "the transposed Conv2D kernel";
    case Scratch::FilterGrad: return "the transposed Conv2D kernel gradient";
    case Scratch::PaddedInput: return "the padded images";
    case Scratch::PaddedGrad: return "the padded image gradient";
    case Scratch::PaddedOutput: return "the padded pooling output";
    case Scratch::Partials: return "the loss partial sums";
    case Scratch::Norms: return "the max-norm sums";
    case Scratch::Ones: return "the vector of ones";
    case Scratch::Index: return "the gather indices";
    case Scratch::DropBlockCount: return "DropBlock2D's kept count";
    case Scratch::Count: break;
  }
  return "a scratch buffer";
}
}  // namespace

void throw_while_capturing(const std::string& what) {
  throw DeviceError(what + " during CUDA graph capture (the uncaptured step before the recorded one must run the "
                           "same ops on the same shapes)");
}

DeviceContext::DeviceContext(const NumericSettings& settings) : settings_(settings) {
  {
    // Creating the library handles may synchronize the device, which would fail another thread's graph
    // capture in progress (cuda_memory.hpp): not while one is.
    DeviceWideCall call;
    stream_ = make_stream();
    cudnn_ = make_cudnn_handle();
    cublas_ = make_cublas_handle();
    staging_done_ = make_event();
  }
  cublas_workspace_ = DeviceBuffer(kCublasWorkspace);
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  CUDNN_CHECK(cudnnSetStream(cudnn_.get(), stream_.get()));
  CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
  CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_workspace_.data(), cublas_workspace_.bytes()));
  // Device-side alpha/beta would need device constants; all scalars here are host values.
  CUBLAS_CHECK(cublasSetPointerMode(cublas_.get(), CUBLAS_POINTER_MODE_HOST));
  // CUBLAS_DEFAULT_MATH computes float32 GEMMs in float32 (TF32 only when asked for, or when the
  // NVIDIA_TF32_OVERRIDE environment variable forces it). Atomics stay off (cuBLAS' default), which keeps
  // its results reproducible on one stream.
  CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), settings_.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  CUBLAS_CHECK(cublasSetAtomicsMode(cublas_.get(), CUBLAS_ATOMICS_NOT_ALLOWED));
}

DeviceContext::~DeviceContext() {
  // Work still queued may use the scratch buffers freed below (each free waits for the device anyway).
  if (stream_) CUDA_CHECK_LOG(cudaStreamSynchronize(stream_.get()));
  // cublasDestroy synchronizes the device (cuBLAS documents it), which would fail another thread's graph
  // capture in progress: the handles go as one device-wide call (the buffers free themselves likewise).
  DeviceWideCall call;
  cublas_.reset();
  cudnn_.reset();
  staging_done_.reset();
  stream_.reset();
}

bool DeviceContext::capturing() const {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_.get(), &status));
  return status != cudaStreamCaptureStatusNone;
}

void* DeviceContext::scratch(Scratch slot, std::size_t bytes) {
  std::shared_ptr<DeviceBuffer>& buffer = scratch_[static_cast<std::size_t>(slot)];
  if (bytes == 0) return buffer ? buffer->data() : nullptr;
  if (buffer && bytes <= buffer->bytes()) return buffer->data();
  if (capturing())
    throw_while_capturing(std::string(slot_name(slot)) + " would have to grow from " +
                          std::to_string(buffer ? buffer->bytes() : 0) + " to " + std::to_string(bytes) + " bytes");
  if (buffer && buffer.use_count() == 1) return buffer->grow(bytes, stream_.get());  // nobody else reads it
  // A recording pins the current block: it stays with the recording, the slot takes a new one.
  if (buffer) {
    std::erase_if(retired_, [](const std::weak_ptr<const DeviceBuffer>& w) { return w.expired(); });
    retired_.emplace_back(buffer);
  }
  buffer = std::make_shared<DeviceBuffer>(bytes);
  return buffer->data();
}

const float* DeviceContext::ones(std::size_t count) {
  if (count > ones_count_) {
    // The fill below would be recorded rather than run, and the block could not grow anyway.
    if (capturing()) throw_while_capturing("the vector of ones would have to grow to " + std::to_string(count));
    // Grow with room to spare: the bias gradient of a Conv2D needs N*OH*OW ones, which varies with N.
    const std::size_t want = count + count / 2;
    auto* p = static_cast<float*>(scratch(Scratch::Ones, want * sizeof(float)));
    kernels::launch_fill(p, want, 1.0f, stream_ptr());
    ones_count_ = want;
  }
  const auto& buffer = scratch_[static_cast<std::size_t>(Scratch::Ones)];
  return buffer ? buffer->as<float>() : nullptr;
}

PinnedScratch DeviceContext::pin_scratch() const {
  PinnedScratch pinned;
  for (const auto& b : scratch_)
    if (b) pinned.push_back(b);
  return pinned;
}

void* DeviceContext::staging(std::size_t bytes) {
  if (capturing()) throw_while_capturing("a host-to-device copy through pinned staging memory");
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
  for (const auto& b : scratch_)
    if (b) total += b->bytes();
  for (const auto& w : retired_)
    if (const auto b = w.lock()) total += b->bytes();
  return total;
}

}  // namespace dropnet::backend::cuda
