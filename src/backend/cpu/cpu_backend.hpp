// cpu_backend.hpp: the Backend contract on the host, over the reference ops of ops.hpp.
#pragma once

#include "backend/backend.hpp"

namespace dropnet::backend::cpu {

class CpuBackend final : public Backend {
 public:
  // Of the settings only cpu_threads counts here: every op runs its loops over that many threads (a
  // ThreadShare for the op's duration, parallel.hpp). The rest change nothing: every CPU op is deterministic
  // and runs in float32. The CPU's one process-wide setting, OpenBLAS's thread count, is not the backend's:
  // see gemm.cpp (it stays 1, so OpenBLAS never competes with the contexts' shares).
  explicit CpuBackend(const BackendSettings& settings = {}) : settings_(settings) {}
  Device device() const noexcept override { return Device::CPU; }
  const BackendSettings& settings() const noexcept override { return settings_; }
  void fill(float* ptr, std::size_t count, float value) override;
  void copy(float* dst, const float* src, std::size_t count) override;

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                      const ConvGeometry& g) override;
  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw, Tensor* db,
                       const ConvGeometry& g) override;
  void maxpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) override;
  void maxpool2d_backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx,
                          const PoolGeometry& g) override;
  bool fuses_relu_pool() const noexcept override { return true; }
  void relu_pool_forward(const Tensor& z, Tensor& y, std::uint8_t* route, const PoolGeometry& g,
                         const DropoutCall* dropout) override;                          // cpu/relu_pool.cpp
  void relu_pool_backward(const Tensor& dy, const std::uint8_t* route, Tensor& dz, const PoolGeometry& g,
                          const DropoutCall* dropout) override;
  void dense_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override;
  void dense_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                      Tensor* db) override;
  void activation_forward(ActivationKind kind, const Tensor& z, Tensor& y) override;
  void activation_backward(ActivationKind kind, const Tensor& y, const Tensor& dy, Tensor& dz) override;
  void dropout_forward(const Tensor& x, Tensor& y, const DropoutCall& call) override;
  void dropout_backward(const Tensor& dy, Tensor& dx, const DropoutCall& call) override;
  void noise_forward(const Tensor& x, Tensor& y, const NoiseCall& call) override;     // cpu/noise.cpp
  void noise_backward(const Tensor& dy, Tensor& dx, const NoiseCall& call) override;
  void dropblock_forward(const Tensor& x, Tensor& y, const DropBlockCall& call) override;
  void dropblock_backward(const Tensor& dy, Tensor& dx, const DropBlockCall& call) override;
  void softmax_cross_entropy(const Tensor& z, const Tensor& t, Tensor* dz, float grad_scale,
                             Tensor& stats) override;
  void loss(const Tensor& y, const Tensor& t, Tensor* dy, const LossCall& call, Tensor& stats) override;
  void adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                   const AdamCall& call) override;
  void maxnorm(float* w, const MaxNormCall& call) override;
  void gather_rows(const Tensor& src, std::span<const std::int64_t> index, Tensor& dst) override;
  void gather_batch(const DatasetView& data, const std::int64_t* order, const StepHeader* state,
                    std::int64_t batch_size, Tensor& bx, Tensor& by) override;
  void advance_step(StepHeader* state, StepSlot* slots, const StepAdvance& advance) override;

  // BatchNormalization and average pooling (cpu/batch_norm.cpp, cpu/avg_pool.cpp).
  void batch_norm_forward_training(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                   const BatchNormCall& call) override;
  void batch_norm_forward_inference(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                    const BatchNormCall& call) override;
  void batch_norm_backward(const Tensor& x, const Tensor& dy, Tensor* dx, const BatchNormWeights& w, float* dgamma,
                           float* dbeta, const BatchNormCall& call) override;
  void avgpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) override;
  void avgpool2d_backward(const Tensor& dy, Tensor& dx, const PoolGeometry& g) override;

 protected:
  void wait() override {}

 private:
  BackendSettings settings_;
};

}  // namespace dropnet::backend::cpu
