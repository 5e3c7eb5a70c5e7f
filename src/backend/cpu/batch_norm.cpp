// batch_norm.cpp: BatchNormalization over the last axis on the CPU (Backend::batch_norm_*).
//
// x is (rows, channels) row-major (NHWC images: rows = N * H * W). Deterministic whatever the thread count:
// the per-channel sums (in double) run over fixed blocks of kBlockRows rows, each block's rows in order,
// and the block sums are added in block order; the threads share out whole blocks, so neither the split
// nor the thread count changes a bit (parallel.hpp's rule), the way conv2d.cpp sums its partial weight
// gradients. Splitting the channels over the threads instead (each thread a column slice of every row) was
// 2-3x slower on 2 threads than on 1 (225,000 x 64: forward 26 vs 12 ms, backward 29 vs 9 ms). The
// elementwise passes split the rows, each element computed by one thread from the per-channel values.
//
// The row loops have AVX2/AVX-512 clones (isa.hpp): the lanes are channels, so each channel's sum still
// runs over the rows in order and every ISA gives the same bits; the file is compiled with
// -ffp-contract=off (src/CMakeLists.txt) so that the avx512f clone contracts nothing the others round
// twice.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/isa.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/op_checks.hpp"
#include "kernels/batch_norm_math.hpp"

namespace dropnet::backend::cpu {
namespace {

// Below this many elements a pass runs on the calling thread.
constexpr std::int64_t kGrain = 1 << 15;

// Rows per block of the per-channel sums: fixed, so the order of every sum is too.
constexpr std::int64_t kBlockRows = 1024;

// For each block b of kBlockRows rows, row_fn(r, partial_b) for its rows in order, partial_b (channels
// doubles) starting at 0; then total = the block partials added in block order. Blocks go to the threads
// whole. `sums` partial sums per row (total holds `sums` * channels doubles, sum k at k * channels).
template <typename RowFn>
void blocked_sums(const BatchNormCall& c, std::size_t sums, double* total, RowFn&& row_fn) {
  const std::int64_t blocks = (c.rows + kBlockRows - 1) / kBlockRows;
  const auto width = static_cast<std::size_t>(c.channels) * sums;
  std::vector<double> partial(static_cast<std::size_t>(blocks) * width, 0.0);
  parallel_for(blocks, std::max<std::int64_t>(1, kGrain / (kBlockRows * std::max<std::int64_t>(c.channels, 1))),
               [&](std::int64_t b0, std::int64_t b1) {
                 for (std::int64_t b = b0; b < b1; ++b) {
                   double* p = partial.data() + static_cast<std::size_t>(b) * width;
                   for (std::int64_t r = b * kBlockRows; r < std::min(c.rows, (b + 1) * kBlockRows); ++r) row_fn(r, p);
                 }
               });
  for (std::size_t k = 0; k < width; ++k) total[k] = 0.0;
  for (std::int64_t b = 0; b < blocks; ++b)
    for (std::size_t k = 0; k < width; ++k) total[k] += partial[static_cast<std::size_t>(b) * width + k];
}

std::int64_t row_grain(const BatchNormCall& c) {
  return std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(c.channels, 1));
}

void check(const char* op, const Tensor& x, const Tensor& y, const BatchNormCall& c) {
  checks::tensor_of(Device::CPU, x, c.rows * c.channels, op);
  checks::tensor_of(Device::CPU, y, c.rows * c.channels, op);
}

// One row's share of the per-channel sums (n channels): sum[j] += x[j].
[[DROPNET_ISA_CLONES]] void add_row(const float* x, double* sum, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) sum[j] += double(x[j]);
}
// sq[j] += (x[j] - mean[j])^2, the second pass of the variance (as jnp.var: the mean of squared deviations).
[[DROPNET_ISA_CLONES]] void add_centered_squares(const float* x, const double* mean, double* sq, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    const double d = double(x[j]) - mean[j];
    sq[j] += d * d;
  }
}
// Backward's sums: sum_dy[j] += dy[j], sum_dy_xhat[j] += dy[j] * (x[j] - mean[j]) * inv[j].
[[DROPNET_ISA_CLONES]] void add_gradient_row(const float* x, const float* dy, const double* mean, const double* inv,
                                             double* sum_dy, double* sum_dy_xhat, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    const double xhat = (double(x[j]) - mean[j]) * inv[j];
    sum_dy[j] += double(dy[j]);
    sum_dy_xhat[j] += double(dy[j]) * xhat;
  }
}
// y = x * scale + shift per channel.
[[DROPNET_ISA_CLONES]] void scale_shift_row(const float* x, float* y, const float* scale, const float* shift,
                                            std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) y[j] = x[j] * scale[j] + shift[j];
}
// dx = g * (dy - mdy - (x - mean) * inv * mdxh) per channel.
[[DROPNET_ISA_CLONES]] void input_gradient_row(const float* x, const float* dy, float* dx, const float* g,
                                               const float* mean, const float* inv, const float* mdy,
                                               const float* mdxh, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    const float xhat = (x[j] - mean[j]) * inv[j];
    dx[j] = g[j] * (dy[j] - mdy[j] - xhat * mdxh[j]);
  }
}

void scale_shift(const float* x, float* y, const float* scale, const float* shift, const BatchNormCall& c) {
  const std::int64_t channels = c.channels;
  parallel_for(c.rows, row_grain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r)
      scale_shift_row(x + r * channels, y + r * channels, scale, shift, std::size_t(channels));
  });
}

}  // namespace

void CpuBackend::batch_norm_forward_training(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                             const BatchNormCall& c) {
  const ThreadShare share(settings_.cpu_threads);
  check("batch_norm_forward_training", x, y, c);
  if (c.rows == 0 || c.channels == 0) return;
  const float* xp = x.data();
  const std::int64_t channels = c.channels, rows = c.rows;
  const auto nc = static_cast<std::size_t>(channels);
  std::vector<float> scale(nc), shift(nc);
  // Two passes, as jnp.var: the mean, then the mean of the squared deviations from it.
  std::vector<double> mean(nc), sq(nc);
  blocked_sums(c, 1, mean.data(), [&](std::int64_t r, double* p) { add_row(xp + r * channels, p, nc); });
  for (double& m : mean) m /= double(rows);
  blocked_sums(c, 1, sq.data(),
               [&](std::int64_t r, double* p) { add_centered_squares(xp + r * channels, mean.data(), p, nc); });
  for (std::size_t ch = 0; ch < nc; ++ch) {
    const float mu = float(mean[ch]);
    const float var = float(sq[ch] / double(rows));
    const float inv = kernels::batch_norm_inv_std(var, c.epsilon);
    w.batch_mean[ch] = mu;
    w.batch_inv_std[ch] = inv;
    scale[ch] = w.gamma[ch] * inv;
    shift[ch] = kernels::batch_norm_shift(w.beta[ch], mu, scale[ch]);
    w.moving_mean[ch] = kernels::batch_norm_moving(w.moving_mean[ch], mu, c.momentum, c.momentum_complement);
    w.moving_variance[ch] = kernels::batch_norm_moving(w.moving_variance[ch], var, c.momentum, c.momentum_complement);
  }
  scale_shift(xp, y.data(), scale.data(), shift.data(), c);
}

void CpuBackend::batch_norm_forward_inference(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                              const BatchNormCall& c) {
  const ThreadShare share(settings_.cpu_threads);
  check("batch_norm_forward_inference", x, y, c);
  const auto nc = static_cast<std::size_t>(c.channels);
  std::vector<float> scale(nc), shift(nc);
  for (std::size_t ch = 0; ch < nc; ++ch) {
    scale[ch] = w.gamma[ch] * kernels::batch_norm_inv_std(w.moving_variance[ch], c.epsilon);
    shift[ch] = kernels::batch_norm_shift(w.beta[ch], w.moving_mean[ch], scale[ch]);
  }
  scale_shift(x.data(), y.data(), scale.data(), shift.data(), c);
}

void CpuBackend::batch_norm_backward(const Tensor& x, const Tensor& dy, Tensor* dx, const BatchNormWeights& w,
                                     float* dgamma, float* dbeta, const BatchNormCall& c) {
  const ThreadShare share(settings_.cpu_threads);
  check("batch_norm_backward", x, dy, c);
  if (dx != nullptr) checks::tensor_of(Device::CPU, *dx, c.rows * c.channels, "batch_norm_backward dx");
  const std::int64_t channels = c.channels, rows = c.rows;
  const float* xp = x.data();
  const float* dyp = dy.data();
  // Per channel: dx = g * (dy - mean_dy - xhat * mean_dy_xhat), g = gamma * inv, the means over the rows.
  const auto nc = static_cast<std::size_t>(channels);
  std::vector<float> g(nc), mdy(nc), mdxh(nc);
  std::vector<double> mean(nc), inv(nc), sums(2 * nc);  // sums: dy, then dy * xhat
  for (std::size_t ch = 0; ch < nc; ++ch) {
    mean[ch] = w.batch_mean[ch];
    inv[ch] = w.batch_inv_std[ch];
  }
  blocked_sums(c, 2, sums.data(), [&](std::int64_t r, double* p) {
    add_gradient_row(xp + r * channels, dyp + r * channels, mean.data(), inv.data(), p, p + nc, nc);
  });
  for (std::size_t ch = 0; ch < nc; ++ch) {
    dbeta[ch] = float(sums[ch]);
    dgamma[ch] = float(sums[nc + ch]);
    g[ch] = w.gamma[ch] * w.batch_inv_std[ch];
    mdy[ch] = float(sums[ch] / double(rows));
    mdxh[ch] = float(sums[nc + ch] / double(rows));
  }
  if (dx == nullptr || rows == 0) return;
  float* dxp = dx->data();
  parallel_for(rows, row_grain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r)
      input_gradient_row(xp + r * channels, dyp + r * channels, dxp + r * channels, g.data(), w.batch_mean,
                         w.batch_inv_std, mdy.data(), mdxh.data(), nc);
  });
}

}  // namespace dropnet::backend::cpu
