// cuda_ops.cpp: CudaBackend's ops on dropnet's own kernels: activations, dropout, softmax cross-entropy,
// Adam, max-norm, the batch gathers and fit's step state. Each checks its arguments first (the checks
// both backends share, backend/op_checks.hpp), then turns the contract's tensors into a launch description
// (kernels/launchers.hpp) and queues it on the backend's stream. Values that change from one
// training step to the next (the step state, kernels/step_state.hpp) are passed as device pointers and read by the kernels, never on
// the host, so a recorded step (graph.cpp) stays right at every replay.
#include <algorithm>
#include <cstring>
#include <string>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_context.hpp"
#include "backend/op_checks.hpp"
#include "dropnet/errors.hpp"
#include "kernels/dropout_math.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {
namespace {

void copy_on_stream(float* dst, const float* src, std::int64_t count, DeviceContext& ctx) {
  if (dst == src || count == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(count) * sizeof(float), cudaMemcpyDeviceToDevice,
                             ctx.stream()));
}

// The launch description of a checked call (checks::dropout).
kernels::DropoutLaunch dropout_launch(const DropoutCall& call, std::int64_t count) {
  kernels::DropoutLaunch launch{};
  static_cast<kernels::DropoutBroadcast&>(launch) = kernels::dropout_broadcast(
      call.input_shape.data(), call.mask_shape.data(), static_cast<int>(call.input_shape.size()));
  launch.seed = call.seed;
  launch.step = call.step;
  launch.rate = call.rate;
  // The kernel reads the layer's step and rate from its slot of the step state (device memory) when it runs.
  launch.slot = call.slot;
  launch.count = count;
  return launch;
}

// The grouping of a checked call (checks::maxnorm; kernels/maxnorm_math.hpp merges contiguous dims, so
// Conv2D's (KH, KW, C) reduce to one run of KH*KW*C elements of stride K).
kernels::MaxNormLaunch maxnorm_launch(const MaxNormCall& call) {
  bool reduced[kernels::kMaxNormMaxRank] = {};
  for (int a : call.axes) reduced[a] = true;
  kernels::MaxNormLaunch launch{};
  static_cast<kernels::MaxNormGrouping&>(launch) =
      kernels::maxnorm_grouping(call.shape.data(), static_cast<int>(call.shape.size()), reduced);
  launch.max_value = call.max_value;
  return launch;
}

}  // namespace

// ---- activations -----------------------------------------------------------------------------------

void CudaBackend::activation_forward(ActivationKind kind, const Tensor& z, Tensor& y) {
  checks::activation_forward(Device::CUDA, z, y);
  const auto n = static_cast<std::size_t>(z.size());
  switch (kind) {
    case ActivationKind::Linear: copy_on_stream(y.data(), z.data(), z.size(), *ctx_); break;
    case ActivationKind::ReLU: kernels::launch_relu_forward(z.data(), y.data(), n, ctx_->stream_ptr()); break;
    case ActivationKind::Softmax: {
      const checks::RowsCols rc = checks::rows_cols(z);
      kernels::launch_softmax_forward(z.data(), y.data(), static_cast<std::size_t>(rc.rows),
                                      static_cast<std::size_t>(rc.cols), ctx_->stream_ptr());
      break;
    }
  }
}

void CudaBackend::activation_backward(ActivationKind kind, const Tensor& y, const Tensor& dy, Tensor& dz) {
  checks::activation_backward(Device::CUDA, y, dy, dz);
  const auto n = static_cast<std::size_t>(dz.size());
  switch (kind) {
    case ActivationKind::Linear: copy_on_stream(dz.data(), dy.data(), dy.size(), *ctx_); break;
    case ActivationKind::ReLU:
      kernels::launch_relu_backward(y.data(), dy.data(), dz.data(), n, ctx_->stream_ptr());
      break;
    case ActivationKind::Softmax: {
      const checks::RowsCols rc = checks::rows_cols(y);
      kernels::launch_softmax_backward(y.data(), dy.data(), dz.data(), static_cast<std::size_t>(rc.rows),
                                       static_cast<std::size_t>(rc.cols), ctx_->stream_ptr());
      break;
    }
  }
}

// ---- dropout ---------------------------------------------------------------------------------------

void CudaBackend::dropout_forward(const Tensor& x, Tensor& y, const DropoutCall& call) {
  checks::dropout(Device::CUDA, x, y, call, /*backward=*/false);
  kernels::launch_dropout(x.data(), y.data(), dropout_launch(call, x.size()), ctx_->stream_ptr());
}

void CudaBackend::dropout_backward(const Tensor& dy, Tensor& dx, const DropoutCall& call) {
  checks::dropout(Device::CUDA, dy, dx, call, /*backward=*/true);
  kernels::launch_dropout(dy.data(), dx.data(), dropout_launch(call, dy.size()), ctx_->stream_ptr());
}

// ---- loss, optimizer, constraint -------------------------------------------------------------------

void CudaBackend::softmax_cross_entropy(const Tensor& z, const Tensor& t, Tensor* dz, float grad_scale,
                                        Tensor& stats) {
  checks::softmax_cross_entropy(Device::CUDA, z, t, dz, stats);
  const checks::RowsCols rc = checks::rows_cols(z);
  const auto rows = static_cast<std::size_t>(rc.rows), cols = static_cast<std::size_t>(rc.cols);
  float* partials = ctx_->scratch_as<float>(Scratch::Partials, kernels::softmax_xent_partials(rows));
  kernels::launch_softmax_xent(z.data(), t.data(), dz != nullptr ? dz->data() : nullptr, grad_scale, stats.data(),
                               rows, cols, partials, ctx_->stream_ptr());
}

void CudaBackend::loss(const Tensor& y, const Tensor& t, Tensor* dy, const LossCall& call, Tensor& stats) {
  checks::loss(Device::CUDA, y, t, dy, call, stats);
  const checks::RowsCols rc = checks::rows_cols(y);
  const auto rows = static_cast<std::size_t>(rc.rows), cols = static_cast<std::size_t>(rc.cols);
  float* partials = ctx_->scratch_as<float>(Scratch::Partials, kernels::loss_partials(rows));
  const kernels::LossLaunch launch{call.kind, call.metric, call.sparse, call.grad_scale, call.stat_scale};
  kernels::launch_loss(y.data(), t.data(), dy != nullptr ? dy->data() : nullptr, launch, stats.data(), rows, cols,
                       partials, ctx_->stream_ptr());
}

void CudaBackend::adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                              const AdamCall& call) {
  // With a table, the kernel reads alpha_by_batch[state->batch] (device memory) when it runs.
  const bool table = call.alpha_by_batch != nullptr && call.state != nullptr;
  kernels::launch_adam(params, grads, m, v, count, call.step, table ? call.alpha_by_batch : nullptr,
                       table ? &call.state->batch : nullptr, ctx_->stream_ptr());
}

void CudaBackend::maxnorm(float* w, const MaxNormCall& call) {
  checks::maxnorm(call);
  const kernels::MaxNormLaunch launch = maxnorm_launch(call);
  float* scratch = ctx_->scratch_as<float>(Scratch::Norms, kernels::maxnorm_scratch_floats(launch));
  kernels::launch_maxnorm(w, launch, scratch, ctx_->stream_ptr());
}

// ---- gathers ---------------------------------------------------------------------------------------

const std::int64_t* CudaBackend::upload_index(std::span<const std::int64_t> index) {
  auto* staged = static_cast<std::int64_t*>(ctx_->staging(index.size_bytes()));
  std::copy(index.begin(), index.end(), staged);
  auto* device_index = ctx_->scratch_as<std::int64_t>(Scratch::Index, index.size());
  CUDA_CHECK(cudaMemcpyAsync(device_index, staged, index.size_bytes(), cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->staging_in_flight();
  return device_index;
}

void CudaBackend::gather_rows(const Tensor& src, std::span<const std::int64_t> index, Tensor& dst) {
  checks::gather_rows(Device::CUDA, src, index, dst);
  if (index.empty()) return;
  const std::int64_t row_size = src.size() / src.dim(0);
  const std::size_t row_bytes = static_cast<std::size_t>(row_size) * sizeof(float);
  if (src.device() == Device::CPU) {
    // Rows gathered on the host into pinned memory, then one asynchronous copy.
    auto* staged = static_cast<float*>(ctx_->staging(row_bytes * index.size()));
    const float* base = src.data();
    for (std::size_t r = 0; r < index.size(); ++r)
      std::memcpy(staged + r * static_cast<std::size_t>(row_size), base + index[r] * row_size, row_bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst.data(), staged, row_bytes * index.size(), cudaMemcpyHostToDevice, ctx_->stream()));
    ctx_->staging_in_flight();
    return;
  }
  // Only the indices cross the bus; the rows are gathered on the GPU.
  const std::int64_t* device_index = upload_index(index);
  kernels::launch_gather_rows(src.data(), device_index, dst.data(), index.size(), static_cast<std::size_t>(row_size),
                              ctx_->stream_ptr());
}

// ---- fit's step ------------------------------------------------------------------------------------

void CudaBackend::gather_batch(const DatasetView& data, const std::int64_t* order, const StepHeader* state,
                               std::int64_t batch_size, Tensor& bx, Tensor& by) {
  checks::gather_batch(Device::CUDA, data, order, state, batch_size, bx, by);
  const std::int64_t rows = bx.dim(0);
  if (rows == 0) return;
  kernels::GatherBatchLaunch launch{};
  launch.x_float = data.x_float;
  launch.x_bytes = data.x_bytes;
  launch.y_float = data.y_float;
  launch.y_class = data.y_class;
  launch.x_row = data.x_row;
  launch.classes = data.classes;
  launch.order = order;
  launch.batch = &state->batch;  // read by the kernels when they run
  launch.batch_size = batch_size;
  launch.rows = rows;
  launch.bx = bx.data();
  launch.by = by.data();
  kernels::launch_gather_batch(launch, ctx_->stream_ptr());
}

void CudaBackend::advance_step(StepHeader* state, StepSlot* slots, const StepAdvance& advance) {
  if (state == nullptr) throw InvalidArgument("advance_step: no step state");
  kernels::launch_advance_step(state, slots, advance, ctx_->stream_ptr());
}

}  // namespace dropnet::backend::cuda
