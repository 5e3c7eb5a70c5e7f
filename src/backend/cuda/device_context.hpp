// device_context.hpp: what every CUDA op shares: the backend's one stream, the cuDNN and cuBLAS handles
// bound to it, the numeric settings and the scratch buffers.
//
// Stream order. Every op of the backend is queued on stream(); the handles are bound to it, and no op
// synchronizes the host except where its contract needs the host (gather_rows from host memory waits for
// the previous copy out of its staging buffer). So a whole training step is one stream-ordered sequence,
// which is what CUDA graph capture needs (graph.cpp). The stream is a non-blocking one (make_stream):
// nothing orders it with the legacy default stream or with another backend's stream, so models on several
// host threads run side by side on one GPU. The memory layer's copies and fills (Tensor::to, copy_from,
// fill: cuda_memory.cpp) complete before they return, and whoever touches memory from the host that the
// stream may still use synchronizes it first (cuda_memory.hpp, ORDERING); the step's own fills and
// device-to-device copies go on the stream itself (Backend::fill, Backend::copy).
//
// Scratch. Ops that need temporary device memory (cuDNN's workspace, the transposed filter, padded images,
// partial sums...) take it from named slots that grow to the largest request and then stay: after the
// first step of a model nothing is allocated, which also keeps graph capture free of cudaMalloc. A slot
// that would have to grow while the stream is being captured throws DeviceError instead (cudaMalloc
// cannot be recorded). A recorded graph keeps the addresses of the blocks it was recorded with, so a
// recording pins them (pin_scratch()): a slot that grows later (a validation batch of another shape)
// gets a new block and the pinned old one lives until the last recording holding it is destroyed.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/device_resources.hpp"

namespace dropnet::backend::cuda {

// The context's copy of its backend's BackendSettings (backend.hpp).
struct NumericSettings {
  // Only algorithms that give the same bits on every run (cuDNN's CUDNN_DETERMINISTIC ones, deterministic
  // max-pooling backward). Off by default: cuDNN may then pick faster non-deterministic algorithms (those
  // that sum with atomics), and results can differ in the last bits from run to run.
  bool deterministic = false;
  // TF32 tensor cores for float32 convolutions and GEMMs (about 10 mantissa bits per product). Off by
  // default: float32 results then stay within 1e-5 relative of the CPU backend.
  bool allow_tf32 = false;
  // The most device memory a cuDNN algorithm may use as workspace (it counts in the peak memory).
  std::size_t workspace_limit = std::size_t{64} << 20;
};

enum class Scratch {
  CudnnWorkspace,
  Filter,          // the Conv2D kernel transposed to cuDNN's NHWC filter layout (K, KH, KW, C)
  FilterGrad,      // dW in that layout, before it is transposed back
  PaddedInput,     // explicitly padded images, for "same" padding cuDNN cannot express
  PaddedGrad,      // their gradient
  PaddedOutput,    // pooling outputs computed on padded images
  Partials,        // per-block partial sums of the loss kernel
  Norms,           // max-norm's partial sums of squares and per-group factors
  Ones,            // a vector of ones (bias gradients through GEMV)
  Index,           // gather indices copied to the device
  DropBlockCount,  // DropBlock2D's kept count (one unsigned long long), zeroed and recounted by every call
  Count
};

// Scratch blocks a recorded graph reads: held by the recording so that they outlive it (see above).
using PinnedScratch = std::vector<std::shared_ptr<const DeviceBuffer>>;

// Throws DeviceError: `what` (e.g. "Conv2D would have to choose a cuDNN algorithm for a new shape") cannot
// happen while the stream is being captured into a CUDA graph.
[[noreturn]] void throw_while_capturing(const std::string& what);

class DeviceContext {
 public:
  // Sets up the stream and the handles on the current device with `settings`, fixed for the context's life
  // (cuBLAS's math mode is set from them here; cuDNN's plans read them); throws DeviceError.
  explicit DeviceContext(const NumericSettings& settings = {});
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  cudaStream_t stream() const noexcept { return stream_.get(); }
  void* stream_ptr() const noexcept { return stream_.get(); }   // for kernels/launchers.hpp
  cudnnHandle_t cudnn() const noexcept { return cudnn_.get(); }
  cublasHandle_t cublas() const noexcept { return cublas_.get(); }

  const NumericSettings& settings() const noexcept { return settings_; }

  // Whether stream() is being captured into a CUDA graph (cudaStreamIsCapturing: active or invalidated).
  bool capturing() const;

  // At least `bytes` of the slot's device memory (valid until the next call for the same slot). Throws
  // DeviceError when the slot would grow while capturing().
  void* scratch(Scratch slot, std::size_t bytes);
  template <typename T>
  T* scratch_as(Scratch slot, std::size_t count) {
    return static_cast<T*>(scratch(slot, count * sizeof(T)));
  }
  // A device vector of at least `count` ones.
  const float* ones(std::size_t count);
  // Every scratch block in use now, for a recording to hold.
  PinnedScratch pin_scratch() const;

  // Pinned host memory for a host-to-device copy that must not block the host. staging() first waits
  // until the copy queued from it last time has completed; staging_in_flight() marks the copy just
  // queued from it (it records an event on the stream). staging() throws DeviceError while capturing()
  // (the wait is a host synchronization, and a recorded copy would reread the staging buffer at replay).
  void* staging(std::size_t bytes);
  void staging_in_flight();

  int sm_count() const noexcept { return sm_count_; }
  // The slots' blocks, the cuBLAS workspace and the old blocks recordings still pin.
  std::size_t bytes_in_scratch() const noexcept;

 private:
  Stream stream_;
  CudnnHandle cudnn_;
  CublasHandle cublas_;
  DeviceBuffer cublas_workspace_;
  NumericSettings settings_;
  // Shared with the recordings that pin them; a slot is null until first used.
  std::array<std::shared_ptr<DeviceBuffer>, static_cast<std::size_t>(Scratch::Count)> scratch_;
  // Blocks replaced while a recording pinned them (counted in bytes_in_scratch while they live).
  std::vector<std::weak_ptr<const DeviceBuffer>> retired_;
  std::size_t ones_count_ = 0;
  PinnedBuffer staging_;
  Event staging_done_;
  bool staging_pending_ = false;
  int sm_count_ = 0;
};

}  // namespace dropnet::backend::cuda
