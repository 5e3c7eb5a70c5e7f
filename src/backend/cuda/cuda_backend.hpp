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
// The CUDA-only controls below are not part of Backend; reach them with
// `dynamic_cast<backend::cuda::CudaBackend&>(backend_for(Device::CUDA))`.
//
// No CUDA type appears in this header, so tests and benchmarks include it with a plain C++ compiler.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend/backend.hpp"

namespace dropnet::backend::cuda {

class DeviceContext;
class CudnnConv;
class CudnnPool;

struct MemoryStats {
  std::size_t tensor_bytes = 0;       // allocate()d and not yet deallocate()d
  std::size_t peak_tensor_bytes = 0;  // the most tensor_bytes reached since reset_peak_memory()
  std::size_t scratch_bytes = 0;      // cuDNN/cuBLAS workspaces and the backend's scratch buffers (with
                                      // old blocks that live recordings still hold)
};

class CudaBackend final : public Backend {
 public:
  // On the current CUDA device; throws DeviceError when a handle or the stream cannot be created.
  CudaBackend();
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const noexcept override { return Device::CUDA; }

  float* allocate(std::size_t count) override;
  void deallocate(float* ptr) noexcept override;
  void fill(float* ptr, std::size_t count, float value) override;

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
  void dropblock_forward(const Tensor& x, Tensor& y, const DropBlockCall& call) override;   // dropblock_ops.cpp
  void dropblock_backward(const Tensor& dy, Tensor& dx, const DropBlockCall& call) override;
  void softmax_cross_entropy(const Tensor& z, const Tensor& t, Tensor* dz, float grad_scale, Tensor& stats) override;
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

  // ---- CUDA-only --------------------------------------------------------------------------------

  // Only reproducible algorithms (cuDNN's deterministic ones, chosen by heuristics rather than timing,
  // and deterministic max-pooling backward): the same inputs give the same bits on every run. Slower.
  void set_deterministic(bool on) override;
  bool deterministic() const noexcept;
  // TF32 tensor cores for float32 convolutions and GEMMs (off by default: results within 1e-5 of float32).
  void set_allow_tf32(bool on);
  bool allow_tf32() const noexcept;
  // The most memory one cuDNN algorithm may take as workspace (default 64 MiB).
  void set_workspace_limit(std::size_t bytes);

  MemoryStats memory_stats() const;
  void reset_peak_memory();

  // The cudaStream_t every op is queued on, as void* (for graph capture or events in benchmarks).
  void* stream() const noexcept;
  // Whether that stream is being captured into a CUDA graph now.
  bool recording() const;

  // The backend that exists now (null before backend_for(Device::CUDA) made it and after it is destroyed):
  // backend::copy queues device-to-device copies on its stream.
  static CudaBackend* live() noexcept;

 protected:
  // cudaStreamSynchronize on the backend's stream (Backend::synchronize() counts the waits).
  void wait() override;

 private:
  void apply_settings(bool deterministic, bool allow_tf32, std::size_t workspace_limit);
  // Copies the batch's row indices to device scratch (through pinned staging, on the stream).
  const std::int64_t* upload_index(std::span<const std::int64_t> index);

  std::unique_ptr<DeviceContext> ctx_;
  std::unique_ptr<CudnnConv> conv_;
  std::unique_ptr<CudnnPool> pool_;

  mutable std::mutex memory_mutex_;  // tensors may be freed from any thread
  std::unordered_map<const void*, std::size_t> allocations_;
  std::size_t tensor_bytes_ = 0;
  std::size_t peak_tensor_bytes_ = 0;
  // The thread inside capture() (a default id when none is): allocate() refuses to run on it, since
  // cudaMalloc cannot be recorded; other threads may allocate (the capture is cudaStreamCaptureModeThreadLocal).
  std::atomic<std::thread::id> capture_thread_{};
  // Tensors deallocate()d during capture(): freed once the capture has ended (cudaFree cannot be recorded
  // on the capturing thread), each with whether the capturing thread freed it, which fails the capture
  // (the recorded ops may use that memory at every replay).
  std::vector<std::pair<void*, bool>> freed_while_capturing_;
};

}  // namespace dropnet::backend::cuda
