// cuda_backend.hpp: the CUDA implementation of the op contract (backend/backend.hpp).
//
// What runs where: Conv2D and MaxPooling2D on cuDNN (conv_cudnn.hpp, pool_cudnn.hpp), Dense on cuBLAS
// (dense_cublas.hpp), everything else on dropnet's own kernels (kernels/*.cu through kernels/launchers.hpp):
// dropout, max-norm, Adam, softmax cross-entropy, activations, bias, gathers.
//
// Ordering: every op is queued on the backend's one stream and returns without waiting (see
// device_context.hpp); synchronize() waits for all of them. A whole training step is therefore one
// stream-ordered sequence, which capture() records as a CUDA graph once a first, ordinary step has chosen
// every cuDNN algorithm and grown every scratch buffer (what makes the step capturable: graph.cpp).
//
// Each CudaBackend is a context of its own (its stream, handles, scratch and cuDNN plans) with the settings it
// was made with (make_backend(Device::CUDA, settings)); tensor memory is not the backend's but the memory
// layer's (backend/memory.hpp, cuda_memory.cpp). The CUDA-only controls below are not part of Backend.
//
// No CUDA type appears in this header, so tests and benchmarks include it with a plain C++ compiler.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "backend/backend.hpp"

namespace dropnet::backend::cuda {

class DeviceContext;
class CudnnConv;
class CudnnPool;

struct MemoryStats {
  std::size_t tensor_bytes = 0;       // the device's tensor memory (memory layer: every model's tensors)
  std::size_t peak_tensor_bytes = 0;  // the most tensor_bytes reached since reset_peak_memory()
  std::size_t scratch_bytes = 0;      // this backend's cuDNN/cuBLAS workspaces and scratch buffers (with
                                      // old blocks that live recordings still hold)
};

class CudaBackend final : public Backend {
 public:
  // On the current CUDA device; throws DeviceError when a handle or the stream cannot be created.
  explicit CudaBackend(const BackendSettings& settings = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const noexcept override { return Device::CUDA; }
  const BackendSettings& settings() const noexcept override { return settings_; }

  // On the stream (a fill kernel; cudaMemcpyAsync device-to-device), so recordable.
  void fill(float* ptr, std::size_t count, float value) override;
  void copy(float* dst, const float* src, std::size_t count) override;

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, const ConvGeometry& g) override;
  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw, Tensor* db,
                       const ConvGeometry& g) override;
  void maxpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) override;
  void maxpool2d_backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx,
                          const PoolGeometry& g) override;
  void dense_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override;
  void dense_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                      Tensor* db) override;
  void activation_forward(ActivationKind kind, const Tensor& z, Tensor& y) override;
  void activation_backward(ActivationKind kind, const Tensor& y, const Tensor& dy, Tensor& dz) override;
  void dropout_forward(const Tensor& x, Tensor& y, const DropoutCall& call) override;
  void dropout_backward(const Tensor& dy, Tensor& dx, const DropoutCall& call) override;
  void noise_forward(const Tensor& x, Tensor& y, const NoiseCall& call) override;     // noise_ops.cpp
  void noise_backward(const Tensor& dy, Tensor& dx, const NoiseCall& call) override;
  void dropblock_forward(const Tensor& x, Tensor& y, const DropBlockCall& call) override;   // dropblock_ops.cpp
  void dropblock_backward(const Tensor& dy, Tensor& dx, const DropBlockCall& call) override;
  void softmax_cross_entropy(const Tensor& z, const Tensor& t, Tensor* dz, float grad_scale, Tensor& stats) override;
  void loss(const Tensor& y, const Tensor& t, Tensor* dy, const LossCall& call, Tensor& stats) override;
  void adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                   const AdamCall& call) override;
  void maxnorm(float* w, const MaxNormCall& call) override;
  void gather_rows(const Tensor& src, std::span<const std::int64_t> index, Tensor& dst) override;

  // fit's step (backend.hpp): the batch, the step state and the recording, all on the stream, nothing read
  // on the host. gather_batch throws InvalidArgument for host tensors or bx/by sizes that do not match
  // `data`. capture() records what `enqueue` issues as a CUDA graph (graph.cpp); the Recording replays it
  // on this backend's stream and keeps the scratch blocks it reads alive; it must not outlive the backend
  // or any tensor the recorded ops use.
  void gather_batch(const DatasetView& data, const std::int64_t* order, const StepHeader* state,
                    std::int64_t batch_size, Tensor& bx, Tensor& by) override;
  void advance_step(StepHeader* state, StepSlot* slots, const StepAdvance& advance) override;
  std::unique_ptr<Recording> capture(const std::function<void()>& enqueue) override;

  // BatchNormalization on cuDNN with dropnet's moving-statistics kernel, average pooling on dropnet's
  // kernels (batch_norm_cudnn.cpp).
  void batch_norm_forward_training(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                   const BatchNormCall& call) override;
  void batch_norm_forward_inference(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                    const BatchNormCall& call) override;
  void batch_norm_backward(const Tensor& x, const Tensor& dy, Tensor* dx, const BatchNormWeights& w, float* dgamma,
                           float* dbeta, const BatchNormCall& call) override;
  void avgpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) override;
  void avgpool2d_backward(const Tensor& dy, Tensor& dx, const PoolGeometry& g) override;

  // ---- CUDA-only --------------------------------------------------------------------------------

  // The settings as the context applies them (BackendSettings says what each means): cuDNN's algorithm
  // choice and cuBLAS's math mode read them from here, so they are this backend's alone.
  bool deterministic() const noexcept { return settings_.deterministic; }
  bool allow_tf32() const noexcept { return settings_.allow_tf32; }
  std::size_t workspace_limit() const noexcept { return settings_.workspace_limit; }

  // The device's tensor memory (all backends) and this backend's scratch.
  MemoryStats memory_stats() const;
  // Resets the device's peak tensor memory.
  void reset_peak_memory();

  // The cudaStream_t every op is queued on, as void* (for graph capture or events in benchmarks).
  void* stream() const noexcept;
  // Whether that stream is being captured into a CUDA graph now.
  bool recording() const;

 protected:
  // cudaStreamSynchronize on the backend's stream (Backend::synchronize() counts the waits).
  void wait() override;

 private:
  // Copies the batch's row indices to device scratch (through pinned staging, on the stream).
  const std::int64_t* upload_index(std::span<const std::int64_t> index);

  BackendSettings settings_;
  std::unique_ptr<DeviceContext> ctx_;
  std::unique_ptr<CudnnConv> conv_;
  std::unique_ptr<CudnnPool> pool_;
  // The thread inside capture() (a default id when none is): synchronize() refuses to wait on it.
  std::atomic<std::thread::id> capture_thread_{};
  // Held by this backend's recordings (weakly): a recording whose backend is gone no longer touches its stream.
  std::shared_ptr<const void> alive_ = std::make_shared<int>(0);
};

}  // namespace dropnet::backend::cuda
