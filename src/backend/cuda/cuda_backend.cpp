// cuda_backend.cpp: CudaBackend's memory, settings and the layer ops that go to cuDNN and cuBLAS
// (the ops on dropnet's own kernels are in cuda_ops.cpp).
#include "backend/cuda/cuda_backend.hpp"

#include <atomic>
#include <string>

#include "backend/cuda/conv_cudnn.hpp"
#include "backend/cuda/dense_cublas.hpp"
#include "backend/cuda/device_context.hpp"
#include "backend/cuda/pool_cudnn.hpp"
#include "backend/op_checks.hpp"
#include "dropnet/errors.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {
namespace {
std::atomic<CudaBackend*> live_backend{nullptr};
}  // namespace

CudaBackend::CudaBackend()
    : ctx_(std::make_unique<DeviceContext>()),
      conv_(std::make_unique<CudnnConv>(*ctx_)),
      pool_(std::make_unique<CudnnPool>(*ctx_)) {
  live_backend.store(this);
}

CudaBackend::~CudaBackend() {
  CudaBackend* self = this;
  live_backend.compare_exchange_strong(self, nullptr);
}

CudaBackend* CudaBackend::live() noexcept { return live_backend.load(); }

// ---- memory ----------------------------------------------------------------------------------------

float* CudaBackend::allocate(std::size_t count) {
  if (count == 0) return nullptr;
  // cudaMalloc cannot be recorded, and a buffer made by the recorded step would not be made by its replays.
  if (capture_thread_.load() == std::this_thread::get_id())
    throw_while_capturing("a device tensor of " + std::to_string(count) + " floats would be allocated");
  void* ptr = nullptr;
  CUDA_CHECK(cudaMalloc(&ptr, count * sizeof(float)));
  std::lock_guard lock(memory_mutex_);
  allocations_[ptr] = count * sizeof(float);
  tensor_bytes_ += count * sizeof(float);
  if (tensor_bytes_ > peak_tensor_bytes_) peak_tensor_bytes_ = tensor_bytes_;
  return static_cast<float*>(ptr);
}

void CudaBackend::deallocate(float* ptr) noexcept {
  if (ptr == nullptr) return;
  {
    std::lock_guard lock(memory_mutex_);
    auto it = allocations_.find(ptr);
    if (it != allocations_.end()) {
      tensor_bytes_ -= it->second;
      allocations_.erase(it);
    }
  }
  if (capture_thread_.load() != std::thread::id{}) {
    // During capture(): cudaFree cannot be recorded (on the capturing thread it would invalidate the
    // capture), so capture() frees the block once the capture has ended; freed by the step itself, it also
    // fails the capture, since the recorded ops may use this memory at every replay.
    std::lock_guard lock(memory_mutex_);
    const std::thread::id capturing = capture_thread_.load();
    if (capturing != std::thread::id{}) {  // still capturing: capture() ends it under this lock
      try {
        freed_while_capturing_.emplace_back(ptr, capturing == std::this_thread::get_id());
        return;
      } catch (...) {
        // Out of host memory: free it now (on the capturing thread the capture then fails on the cudaFree).
      }
    }
  }
  // cudaFree waits for the work that may still use the block.
  CUDA_CHECK_LOG(cudaFree(ptr));
}

void CudaBackend::fill(float* ptr, std::size_t count, float value) {
  kernels::launch_fill(ptr, count, value, ctx_->stream_ptr());
}

void CudaBackend::wait() {
  // A host wait cannot be recorded (CUDA would fail the capture with a less telling error).
  if (capture_thread_.load() == std::this_thread::get_id()) throw_while_capturing("synchronize() would wait for the GPU");
  CUDA_CHECK(cudaStreamSynchronize(ctx_->stream()));
}

MemoryStats CudaBackend::memory_stats() const {
  std::lock_guard lock(memory_mutex_);
  return MemoryStats{tensor_bytes_, peak_tensor_bytes_, ctx_->bytes_in_scratch()};
}

void CudaBackend::reset_peak_memory() {
  std::lock_guard lock(memory_mutex_);
  peak_tensor_bytes_ = tensor_bytes_;
}

void* CudaBackend::stream() const noexcept { return ctx_->stream_ptr(); }

bool CudaBackend::recording() const { return ctx_->capturing(); }

// ---- settings --------------------------------------------------------------------------------------

void CudaBackend::apply_settings(bool deterministic, bool allow_tf32, std::size_t workspace_limit) {
  NumericSettings s = ctx_->settings();
  if (s.deterministic == deterministic && s.allow_tf32 == allow_tf32 && s.workspace_limit == workspace_limit) return;
  s.deterministic = deterministic;
  s.allow_tf32 = allow_tf32;
  s.workspace_limit = workspace_limit;
  ctx_->set_settings(s);
  // Plans chosen under the old settings are keyed by them and would never be used again.
  conv_->clear();
  pool_->clear();
}

void CudaBackend::set_deterministic(bool on) {
  apply_settings(on, ctx_->settings().allow_tf32, ctx_->settings().workspace_limit);
}
bool CudaBackend::deterministic() const noexcept { return ctx_->settings().deterministic; }
void CudaBackend::set_allow_tf32(bool on) {
  apply_settings(ctx_->settings().deterministic, on, ctx_->settings().workspace_limit);
}
bool CudaBackend::allow_tf32() const noexcept { return ctx_->settings().allow_tf32; }
void CudaBackend::set_workspace_limit(std::size_t bytes) {
  apply_settings(ctx_->settings().deterministic, ctx_->settings().allow_tf32, bytes);
}

// ---- cuDNN and cuBLAS ops ----------------------------------------------------------------------------

void CudaBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                                 const ConvGeometry& g) {
  checks::conv2d_forward(Device::CUDA, x, w, b, y, g);
  if (y.empty()) return;
  conv_->forward(x.data(), w.data(), b != nullptr ? b->data() : nullptr, y.data(), g);
}

void CudaBackend::conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                                  Tensor* db, const ConvGeometry& g) {
  checks::conv2d_backward(Device::CUDA, x, w, dy, dx, dw, db, g);
  if (g.n == 0 || g.oh == 0 || g.ow == 0) {
    // An empty batch: every gradient is an empty sum.
    if (dx != nullptr) fill(dx->data(), static_cast<std::size_t>(dx->size()), 0.0f);
    fill(dw.data(), static_cast<std::size_t>(dw.size()), 0.0f);
    if (db != nullptr) fill(db->data(), static_cast<std::size_t>(db->size()), 0.0f);
    return;
  }
  conv_->backward(x.data(), w.data(), dy.data(), dx != nullptr ? dx->data() : nullptr, dw.data(),
                  db != nullptr ? db->data() : nullptr, g);
}

void CudaBackend::maxpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) {
  checks::maxpool2d_forward(Device::CUDA, x, y, g);
  if (y.empty()) return;
  pool_->forward(x.data(), y.data(), g);
}

void CudaBackend::maxpool2d_backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx,
                                     const PoolGeometry& g) {
  checks::maxpool2d_backward(Device::CUDA, x, y, dy, dx, g);
  if (dx.empty()) return;
  if (y.empty()) {
    fill(dx.data(), static_cast<std::size_t>(dx.size()), 0.0f);
    return;
  }
  pool_->backward(x.data(), y.data(), dy.data(), dx.data(), g);
}

void CudaBackend::dense_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
  const checks::DenseDims d = checks::dense_forward(Device::CUDA, x, w, b, y);
  cuda::dense_forward(*ctx_, x.data(), w.data(), b != nullptr ? b->data() : nullptr, y.data(), d.n, d.in, d.out);
}

void CudaBackend::dense_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                                 Tensor* db) {
  const checks::DenseDims d = checks::dense_backward(Device::CUDA, x, w, dy, dx, dw, db);
  cuda::dense_backward(*ctx_, x.data(), w.data(), dy.data(), dx != nullptr ? dx->data() : nullptr, dw.data(),
                       db != nullptr ? db->data() : nullptr, d.n, d.in, d.out);
}

}  // namespace dropnet::backend::cuda
