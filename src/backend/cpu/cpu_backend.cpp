// cpu_backend.cpp: adapts Tensors to the raw-pointer reference ops.
#include "backend/cpu/cpu_backend.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>


#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/op_checks.hpp"
#include "dropnet/errors.hpp"
#include "kernels/data_math.hpp"

namespace dropnet::backend::cpu {
namespace {

constexpr Device kCpu = Device::CPU;

// Rows of a 2-D view of t whose last axis has `cols` entries.
std::int64_t rows_of(const Tensor& t) { return t.rank() ? t.size() / t.dim(-1) : 1; }

}  // namespace

void CpuBackend::fill(float* ptr, std::size_t count, float value) { std::fill(ptr, ptr + count, value); }

void CpuBackend::copy(float* dst, const float* src, std::size_t count) {
  const ThreadShare share(settings_.cpu_threads);
  if (count != 0 && dst != src) std::memcpy(dst, src, count * sizeof(float));
}

void CpuBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                                const ConvGeometry& g) {
  const ThreadShare share(settings_.cpu_threads);
  checks::conv2d_forward(kCpu, x, w, b, y, g);
  cpu::conv2d_forward(x.data(), w.data(), b ? b->data() : nullptr, y.data(), g);
}

void CpuBackend::conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                                 Tensor* db, const ConvGeometry& g) {
  const ThreadShare share(settings_.cpu_threads);
  checks::conv2d_backward(kCpu, x, w, dy, dx, dw, db, g);
  cpu::conv2d_backward(x.data(), w.data(), dy.data(), dx ? dx->data() : nullptr, dw.data(),
                       db ? db->data() : nullptr, g);
}

void CpuBackend::maxpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) {
  const ThreadShare share(settings_.cpu_threads);
  checks::maxpool2d_forward(kCpu, x, y, g);
  cpu::maxpool2d_forward(x.data(), y.data(), g);
}

void CpuBackend::maxpool2d_backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx,
                                    const PoolGeometry& g) {
  const ThreadShare share(settings_.cpu_threads);
  checks::maxpool2d_backward(kCpu, x, y, dy, dx, g);
  cpu::maxpool2d_backward(x.data(), y.data(), dy.data(), dx.data(), g);
}

void CpuBackend::relu_pool_forward(const Tensor& z, Tensor& y, std::uint8_t* route, const PoolGeometry& g,
                                   const DropoutCall* dropout) {
  const ThreadShare share(settings_.cpu_threads);
  checks::relu_pool(kCpu, z, y, g, dropout);
  cpu::relu_pool_forward(z.data(), y.data(), route, g, dropout);
}

void CpuBackend::relu_pool_backward(const Tensor& dy, const std::uint8_t* route, Tensor& dz, const PoolGeometry& g,
                                    const DropoutCall* dropout) {
  const ThreadShare share(settings_.cpu_threads);
  checks::relu_pool(kCpu, dz, dy, g, dropout);
  checks::relu_pool_route(route);
  cpu::relu_pool_backward(dy.data(), route, dz.data(), g, dropout);
}

void CpuBackend::dense_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
  const ThreadShare share(settings_.cpu_threads);
  const checks::DenseDims d = checks::dense_forward(kCpu, x, w, b, y);
  cpu::dense_forward(x.data(), w.data(), b ? b->data() : nullptr, y.data(), d.n, d.in, d.out);
}

void CpuBackend::dense_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                                Tensor* db) {
  const ThreadShare share(settings_.cpu_threads);
  const checks::DenseDims d = checks::dense_backward(kCpu, x, w, dy, dx, dw, db);
  cpu::dense_backward(x.data(), w.data(), dy.data(), dx ? dx->data() : nullptr, dw.data(),
                      db ? db->data() : nullptr, d.n, d.in, d.out);
}

void CpuBackend::activation_forward(ActivationKind kind, const Tensor& z, Tensor& y) {
  const ThreadShare share(settings_.cpu_threads);
  checks::activation_forward(kCpu, z, y);
  cpu::activation_forward(kind, z.data(), y.data(), rows_of(z), z.rank() ? z.dim(-1) : 1);
}

void CpuBackend::activation_backward(ActivationKind kind, const Tensor& y, const Tensor& dy, Tensor& dz) {
  const ThreadShare share(settings_.cpu_threads);
  checks::activation_backward(kCpu, y, dy, dz);
  cpu::activation_backward(kind, y.data(), dy.data(), dz.data(), rows_of(y), y.rank() ? y.dim(-1) : 1);
}

void CpuBackend::dropout_forward(const Tensor& x, Tensor& y, const DropoutCall& call) {
  const ThreadShare share(settings_.cpu_threads);
  checks::dropout(kCpu, x, y, call, /*backward=*/false);
  cpu::dropout_apply(x.data(), y.data(), call);
}

void CpuBackend::dropout_backward(const Tensor& dy, Tensor& dx, const DropoutCall& call) {
  const ThreadShare share(settings_.cpu_threads);
  checks::dropout(kCpu, dy, dx, call, /*backward=*/true);
  cpu::dropout_apply(dy.data(), dx.data(), call);
}

void CpuBackend::dropblock_forward(const Tensor& x, Tensor& y, const DropBlockCall& call) {
  const ThreadShare share(settings_.cpu_threads);
  const kernels::DropBlockGeometry g = checks::dropblock(kCpu, x, y, call, /*backward=*/false);
  cpu::dropblock_apply(x.data(), y.data(), call, g);
}

void CpuBackend::dropblock_backward(const Tensor& dy, Tensor& dx, const DropBlockCall& call) {
  const ThreadShare share(settings_.cpu_threads);
  const kernels::DropBlockGeometry g = checks::dropblock(kCpu, dy, dx, call, /*backward=*/true);
  cpu::dropblock_apply(dy.data(), dx.data(), call, g);
}

void CpuBackend::softmax_cross_entropy(const Tensor& z, const Tensor& t, Tensor* dz, float grad_scale,
                                       Tensor& stats) {
  const ThreadShare share(settings_.cpu_threads);
  checks::softmax_cross_entropy(kCpu, z, t, dz, stats);
  double loss = 0, correct = 0;
  cpu::softmax_cross_entropy(z.data(), t.data(), dz ? dz->data() : nullptr, grad_scale, rows_of(z), z.dim(-1),
                             loss, correct);
  stats.data()[0] += float(loss);
  stats.data()[1] += float(correct);
}

void CpuBackend::loss(const Tensor& y, const Tensor& t, Tensor* dy, const LossCall& call, Tensor& stats) {
  const ThreadShare share(settings_.cpu_threads);
  checks::loss(kCpu, y, t, dy, call, stats);
  float loss_sum = 0, metric_sum = 0;
  cpu::loss(y.data(), t.data(), dy ? dy->data() : nullptr, call, rows_of(y), y.dim(-1), loss_sum, metric_sum);
  // As the CUDA kernel's last step: scaled in float, then added.
  stats.data()[0] += loss_sum * call.stat_scale;
  stats.data()[1] += metric_sum * call.stat_scale;
}

void CpuBackend::adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                             const AdamCall& call) {
  const ThreadShare share(settings_.cpu_threads);
  kernels::AdamStep step = call.step;
  if (call.alpha_by_batch != nullptr && call.state != nullptr) step.alpha = call.alpha_by_batch[call.state->batch];
  cpu::adam_update(params, grads, m, v, count, step);
}

void CpuBackend::maxnorm(float* w, const MaxNormCall& call) {
  const ThreadShare share(settings_.cpu_threads);
  checks::maxnorm(call);
  cpu::maxnorm(w, call);
}

void CpuBackend::gather_rows(const Tensor& src, std::span<const std::int64_t> index, Tensor& dst) {
  const ThreadShare share(settings_.cpu_threads);
  checks::on_device(kCpu, src, "gather source");  // the CUDA backend also takes host sources
  checks::gather_rows(kCpu, src, index, dst);
  if (index.empty()) return;
  const std::int64_t row = src.dim(0) ? src.size() / src.dim(0) : 0;
  const float* s = src.data();
  float* d = dst.data();
  // Rows split over the threads: a batch of images is megabytes, copied once per evaluated batch.
  parallel_for(std::int64_t(index.size()), 32, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r)
      std::memcpy(d + r * row, s + index[std::size_t(r)] * row, sizeof(float) * std::size_t(row));
  });
}

void CpuBackend::gather_batch(const DatasetView& data, const std::int64_t* order, const StepHeader* state,
                              std::int64_t batch_size, Tensor& bx, Tensor& by) {
  const ThreadShare share(settings_.cpu_threads);
  checks::gather_batch(kCpu, data, order, state, batch_size, bx, by);
  const std::int64_t rows = bx.dim(0);
  if (rows == 0) return;
  const std::int64_t* index = order + state->batch * batch_size;
  float* x = bx.data();
  float* y = by.data();
  // Rows split over the threads (each row is written by one), as gather_rows.
  parallel_for(rows, 32, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t i = index[r];
      float* xr = x + r * data.x_row;
      if (data.x_bytes != nullptr) {
        const std::uint8_t* src = data.x_bytes + i * data.x_row;
        for (std::int64_t c = 0; c < data.x_row; ++c) xr[c] = kernels::unit_from_byte(src[c]);
      } else {
        std::memcpy(xr, data.x_float + i * data.x_row, sizeof(float) * std::size_t(data.x_row));
      }
      float* yr = y + r * data.classes;
      if (data.y_class != nullptr) {
        std::fill(yr, yr + data.classes, 0.0f);
        yr[data.y_class[i]] = 1.0f;
      } else {
        std::memcpy(yr, data.y_float + i * data.classes, sizeof(float) * std::size_t(data.classes));
      }
    }
  });
}

void CpuBackend::advance_step(StepHeader* state, StepSlot* slots, const StepAdvance& advance) {
  const ThreadShare share(settings_.cpu_threads);
  kernels::advance_step_state(state, slots, advance);
}

}  // namespace dropnet::backend::cpu
