// cuda_backend.cpp: CudaBackend's context (stream, settings), its fills and copies, and the layer ops that go to cuDNN and cuBLAS
// (the ops on dropnet's own kernels are in cuda_ops.cpp).
#include "backend/cuda/cuda_backend.hpp"

#include <atomic>
#include <string>

#include "backend/cuda/conv_cudnn.hpp"
#include "backend/cuda/cuda_memory.hpp"
#include "backend/cuda/dense_cublas.hpp"
#include "backend/cuda/device_context.hpp"
#include "backend/cuda/pool_cudnn.hpp"
#include "backend/op_checks.hpp"
#include "dropnet/errors.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {

CudaBackend::CudaBackend(const BackendSettings& settings)
    : settings_(settings),
      ctx_(std::make_unique<DeviceContext>(NumericSettings{settings.deterministic, settings.allow_tf32,
                                                           settings.workspace_limit})),
      conv_(std::make_unique<CudnnConv>(*ctx_)),
      pool_(std::make_unique<CudnnPool>(*ctx_)) {}

CudaBackend::~CudaBackend() = default;

// ---- fills and copies on the stream ------------------------------------------------------------------

void CudaBackend::fill(float* ptr, std::size_t count, float value) {
  if (count == 0) return;
  kernels::launch_fill(ptr, count, value, ctx_->stream_ptr());
}

void CudaBackend::copy(float* dst, const float* src, std::size_t count) {
  if (count == 0 || dst == src) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToDevice, ctx_->stream()));
}

void CudaBackend::wait() {
  // A host wait cannot be recorded (CUDA would fail the capture with a less telling error).
  if (capture_thread_.load() == std::this_thread::get_id()) throw_while_capturing("synchronize() would wait for the GPU");
  CUDA_CHECK(cudaStreamSynchronize(ctx_->stream()));
}

MemoryStats CudaBackend::memory_stats() const {
  const TensorMemory tensors = tensor_memory();
  return MemoryStats{tensors.bytes, tensors.peak_bytes, ctx_->bytes_in_scratch()};
}

void CudaBackend::reset_peak_memory() { reset_peak_tensor_memory(); }

void* CudaBackend::stream() const noexcept { return ctx_->stream_ptr(); }

bool CudaBackend::recording() const { return ctx_->capturing(); }

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
