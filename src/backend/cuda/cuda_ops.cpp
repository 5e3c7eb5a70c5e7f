// cuda_ops.cpp: CudaBackend's ops on dropnet's own kernels: activations, dropout, softmax cross-entropy,
// Adam, max-norm, the batch gathers and fit's step state. Each turns the contract's tensors into a launch
// description (kernels/launchers.hpp) and queues it on the backend's stream. Values that change from one
// training step to the next (the step state, kernels/step_state.hpp) are passed as device pointers and read by the kernels, never on
// the host, so a recorded step (graph.cpp) stays right at every replay.
#include <algorithm>
#include <cstring>
#include <string>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_context.hpp"
#include "backend/cuda/tensor_checks.hpp"
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

// Row-major strides of `shape`.
std::vector<std::int64_t> strides_of(const Shape& shape) {
  std::vector<std::int64_t> s(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;) s[d - 1] = s[d] * shape[d];
  return s;
}

kernels::DropoutLaunch dropout_launch(const DropoutCall& call, std::int64_t count) {
  const Shape& in = call.input_shape;
  const Shape& mask = call.mask_shape;
  if (in.size() > static_cast<std::size_t>(kernels::kMaxRank))
    throw InvalidArgument("the CUDA dropout supports inputs of rank up to 8, got " + to_string(in));
  if (mask.size() != in.size())
    throw InvalidArgument("dropout mask shape " + to_string(mask) + " does not have the rank of the input " +
                          to_string(in));
  if (element_count(in) != count)
    throw InvalidArgument("dropout input shape " + to_string(in) + " does not match the tensor's " +
                          std::to_string(count) + " elements");
  if (!(call.rate > 0.0f && call.rate < 1.0f))
    throw InvalidArgument("the dropout op needs a rate in (0, 1), got " + std::to_string(call.rate));
  kernels::DropoutLaunch launch{};
  launch.seed = call.seed;
  launch.step = call.step;
  // The kernel reads the layer's step from its slot of the step state (device memory) when it runs.
  launch.step_at = call.slot != nullptr ? &call.slot->step : nullptr;
  // The keep test compares a float uniform with keep_prob, so both backends must derive the same float.
  launch.keep_prob = kernels::dropout_keep_prob(call.rate);
  launch.count = count;
  launch.rank = static_cast<int>(in.size());
  const std::vector<std::int64_t> mask_strides = strides_of(mask);
  for (std::size_t d = 0; d < in.size(); ++d) {
    if (mask[d] != in[d] && mask[d] != 1)
      throw InvalidArgument("dropout mask shape " + to_string(mask) + " does not broadcast to the input " +
                            to_string(in));
    launch.dims[d] = in[d];
    const bool broadcast_dim = mask[d] == 1 && in[d] != 1;
    launch.mask_stride[d] = broadcast_dim ? 0 : mask_strides[d];
    launch.broadcast = launch.broadcast || broadcast_dim;
  }
  return launch;
}

// Splits a kernel's dims into kept (one norm each) and reduced (summed over), outermost first, merging
// neighbours that are contiguous in memory so the kernel's index arithmetic stays short (Conv2D's
// (KH, KW, C) reduce to one run of KH*KW*C elements of stride K).
kernels::MaxNormLaunch maxnorm_launch(const MaxNormCall& call) {
  const Shape& shape = call.shape;
  const int rank = static_cast<int>(shape.size());
  if (rank > kernels::kMaxRank)
    throw InvalidArgument("the CUDA max-norm supports kernels of rank up to 8, got " + to_string(shape));
  std::vector<bool> reduced(shape.size(), false);
  for (int a : call.axes) {
    if (a < 0 || a >= rank)
      throw InvalidArgument("max-norm axis " + std::to_string(a) + " is out of range for a kernel of shape " +
                            to_string(shape));
    reduced[static_cast<std::size_t>(a)] = true;
  }
  const std::vector<std::int64_t> strides = strides_of(shape);
  kernels::MaxNormLaunch launch{};
  launch.max_value = call.max_value;
  launch.groups = 1;
  launch.group_size = 1;
  for (int d = 0; d < rank; ++d) {
    const std::int64_t extent = shape[static_cast<std::size_t>(d)], stride = strides[static_cast<std::size_t>(d)];
    const bool r = reduced[static_cast<std::size_t>(d)];
    int& n = r ? launch.reduced_rank : launch.kept_rank;
    std::int64_t* ext = r ? launch.reduced_extent : launch.kept_extent;
    std::int64_t* str = r ? launch.reduced_stride : launch.kept_stride;
    (r ? launch.group_size : launch.groups) *= extent;
    if (n > 0 && str[n - 1] == extent * stride) {
      ext[n - 1] *= extent;  // the previous dim of this list continues right after this one: one run
      str[n - 1] = stride;
    } else {
      ext[n] = extent;
      str[n] = stride;
      ++n;
    }
  }
  return launch;
}

}  // namespace

// ---- activations -----------------------------------------------------------------------------------

void CudaBackend::activation_forward(ActivationKind kind, const Tensor& z, Tensor& y) {
  expect_device_tensor(z, y.size(), "activation input");
  expect_on_device(y, "activation output");
  const auto n = static_cast<std::size_t>(z.size());
  switch (kind) {
    case ActivationKind::Linear: copy_on_stream(y.data(), z.data(), z.size(), *ctx_); break;
    case ActivationKind::ReLU: kernels::launch_relu_forward(z.data(), y.data(), n, ctx_->stream_ptr()); break;
    case ActivationKind::Softmax: {
      const RowsCols rc = rows_cols(z);
      kernels::launch_softmax_forward(z.data(), y.data(), static_cast<std::size_t>(rc.rows),
                                      static_cast<std::size_t>(rc.cols), ctx_->stream_ptr());
      break;
    }
  }
}

void CudaBackend::activation_backward(ActivationKind kind, const Tensor& y, const Tensor& dy, Tensor& dz) {
  expect_device_tensor(y, dz.size(), "activation output");
  expect_device_tensor(dy, dz.size(), "activation output gradient");
  expect_on_device(dz, "activation input gradient");
  const auto n = static_cast<std::size_t>(dz.size());
  switch (kind) {
    case ActivationKind::Linear: copy_on_stream(dz.data(), dy.data(), dy.size(), *ctx_); break;
    case ActivationKind::ReLU:
      kernels::launch_relu_backward(y.data(), dy.data(), dz.data(), n, ctx_->stream_ptr());
      break;
    case ActivationKind::Softmax: {
      const RowsCols rc = rows_cols(y);
      kernels::launch_softmax_backward(y.data(), dy.data(), dz.data(), static_cast<std::size_t>(rc.rows),
                                       static_cast<std::size_t>(rc.cols), ctx_->stream_ptr());
      break;
    }
  }
}

// ---- dropout ---------------------------------------------------------------------------------------

void CudaBackend::dropout_forward(const Tensor& x, Tensor& y, const DropoutCall& call) {
  expect_device_tensor(x, y.size(), "dropout input");
  expect_on_device(y, "dropout output");
  kernels::launch_dropout(x.data(), y.data(), dropout_launch(call, x.size()), ctx_->stream_ptr());
}

void CudaBackend::dropout_backward(const Tensor& dy, Tensor& dx, const DropoutCall& call) {
  expect_device_tensor(dy, dx.size(), "dropout output gradient");
  expect_on_device(dx, "dropout input gradient");
  kernels::launch_dropout(dy.data(), dx.data(), dropout_launch(call, dy.size()), ctx_->stream_ptr());
}

// ---- loss, optimizer, constraint -------------------------------------------------------------------

void CudaBackend::softmax_cross_entropy(const Tensor& z, const Tensor& t, Tensor* dz, float grad_scale,
                                        Tensor& stats) {
  expect_device_tensor(t, z.size(), "targets");
  expect_on_device(z, "logits");
  if (dz != nullptr) expect_device_tensor(*dz, z.size(), "logit gradient");
  expect_device_tensor(stats, 2, "loss statistics");
  const RowsCols rc = rows_cols(z);
  const auto rows = static_cast<std::size_t>(rc.rows), cols = static_cast<std::size_t>(rc.cols);
  float* partials = ctx_->scratch_as<float>(Scratch::Partials, kernels::softmax_xent_partials(rows));
  kernels::launch_softmax_xent(z.data(), t.data(), dz != nullptr ? dz->data() : nullptr, grad_scale, stats.data(),
                               rows, cols, partials, ctx_->stream_ptr());
}

void CudaBackend::adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                              const AdamCall& call) {
  // With a table, the kernel reads alpha_by_batch[state->batch] (device memory) when it runs.
  const bool table = call.alpha_by_batch != nullptr && call.state != nullptr;
  kernels::launch_adam(params, grads, m, v, count, call.step, table ? call.alpha_by_batch : nullptr,
                       table ? &call.state->batch : nullptr, ctx_->stream_ptr());
}

void CudaBackend::maxnorm(float* w, const MaxNormCall& call) {
  const kernels::MaxNormLaunch launch = maxnorm_launch(call);
  float* scratch = ctx_->scratch_as<float>(Scratch::Norms, kernels::maxnorm_scratch_floats(launch));
  kernels::launch_maxnorm(w, launch, scratch, ctx_->stream_ptr());
}

// ---- gathers ---------------------------------------------------------------------------------------

namespace {
void check_index(std::span<const std::int64_t> index, std::int64_t rows) {
  for (std::size_t r = 0; r < index.size(); ++r)
    if (index[r] < 0 || index[r] >= rows)
      throw InvalidArgument("gather index " + std::to_string(index[r]) + " at position " + std::to_string(r) +
                            " is outside [0, " + std::to_string(rows) + ")");
}
}  // namespace

const std::int64_t* CudaBackend::upload_index(std::span<const std::int64_t> index) {
  auto* staged = static_cast<std::int64_t*>(ctx_->staging(index.size_bytes()));
  std::copy(index.begin(), index.end(), staged);
  auto* device_index = ctx_->scratch_as<std::int64_t>(Scratch::Index, index.size());
  CUDA_CHECK(cudaMemcpyAsync(device_index, staged, index.size_bytes(), cudaMemcpyHostToDevice, ctx_->stream()));
  ctx_->staging_in_flight();
  return device_index;
}

void CudaBackend::gather_rows(const Tensor& src, std::span<const std::int64_t> index, Tensor& dst) {
  expect_on_device(dst, "gather destination");
  if (index.empty()) return;
  const std::int64_t rows = src.rank() == 0 ? 0 : src.dim(0);
  const std::int64_t row_size = rows == 0 ? 0 : src.size() / rows;
  check_index(index, rows);
  const auto count = static_cast<std::int64_t>(index.size());
  if (dst.size() < count * row_size)
    throw InvalidArgument("gather destination " + to_string(dst.shape()) + " cannot hold " + std::to_string(count) +
                          " rows of " + std::to_string(row_size));
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
  expect_on_device(bx, "batch images");
  expect_on_device(by, "batch targets");
  if (bx.rank() == 0) throw InvalidArgument("gather_batch: the batch images need a batch dimension");
  const std::int64_t rows = bx.dim(0);
  if (bx.size() != rows * data.x_row)
    throw InvalidArgument("gather_batch: batch images " + to_string(bx.shape()) + " are not " + std::to_string(rows) +
                          " rows of " + std::to_string(data.x_row) + " values");
  if (by.size() != rows * data.classes)
    throw InvalidArgument("gather_batch: batch targets " + to_string(by.shape()) + " are not " +
                          std::to_string(rows) + " rows of " + std::to_string(data.classes) + " values");
  if (rows == 0) return;
  if (batch_size < rows)
    throw InvalidArgument("gather_batch: a batch of " + std::to_string(rows) + " rows is larger than the batch size " +
                          std::to_string(batch_size));
  if (order == nullptr || state == nullptr) throw InvalidArgument("gather_batch: order and the step state are required");
  if ((data.x_float == nullptr) == (data.x_bytes == nullptr) || (data.y_float == nullptr) == (data.y_class == nullptr))
    throw InvalidArgument("gather_batch: the dataset needs exactly one of x_float/x_bytes and of y_float/y_class");
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
