// batch_norm.cpp: BatchNormalization over the last axis on the CPU (Backend::batch_norm_*).
//
// x is (rows, channels) row-major (NHWC images: rows = N * H * W). Deterministic whatever the thread count:
// the threads split the channels, never the rows, so every channel's sums run over the rows in order, in
// double, on one thread (parallel.hpp's rule: no reduction whose order depends on the split). The
// elementwise passes split the rows, each element computed by one thread from the per-channel values.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/op_checks.hpp"
#include "kernels/batch_norm_math.hpp"

namespace dropnet::backend::cpu {
namespace {

// Below this many elements a pass runs on the calling thread.
constexpr std::int64_t kGrain = 1 << 15;

// The channel ranges of the reductions: enough elements per thread to be worth a thread start.
std::int64_t channel_grain(const BatchNormCall& c) {
  return std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(c.rows, 1));
}

void check(const char* op, const Tensor& x, const Tensor& y, const BatchNormCall& c) {
  checks::tensor_of(Device::CPU, x, c.rows * c.channels, op);
  checks::tensor_of(Device::CPU, y, c.rows * c.channels, op);
}

// y = x * scale[ch] + shift[ch], rows split over the threads.
void scale_shift(const float* x, float* y, const float* scale, const float* shift, const BatchNormCall& c) {
  const std::int64_t channels = c.channels;
  parallel_for(c.rows, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(channels, 1)),
               [&](std::int64_t r0, std::int64_t r1) {
                 for (std::int64_t r = r0; r < r1; ++r) {
                   const float* xr = x + r * channels;
                   float* yr = y + r * channels;
                   for (std::int64_t ch = 0; ch < channels; ++ch) yr[ch] = xr[ch] * scale[ch] + shift[ch];
                 }
               });
}

}  // namespace

void CpuBackend::batch_norm_forward_training(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                             const BatchNormCall& c) {
  check("batch_norm_forward_training", x, y, c);
  if (c.rows == 0 || c.channels == 0) return;
  const float* xp = x.data();
  const std::int64_t channels = c.channels, rows = c.rows;
  const auto nc = static_cast<std::size_t>(channels);
  std::vector<float> scale(nc), shift(nc);
  parallel_for(channels, channel_grain(c), [&](std::int64_t c0, std::int64_t c1) {
    const std::int64_t width = c1 - c0;
    const auto nw = static_cast<std::size_t>(width);
    std::vector<double> sum(nw, 0.0), sq(nw, 0.0);
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = xp + r * channels + c0;
      for (std::int64_t j = 0; j < width; ++j) sum[std::size_t(j)] += xr[j];
    }
    for (std::int64_t j = 0; j < width; ++j) sum[std::size_t(j)] /= double(rows);  // the mean
    // Two passes, as jnp.var: the mean of the squared deviations.
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = xp + r * channels + c0;
      for (std::int64_t j = 0; j < width; ++j) {
        const double d = double(xr[j]) - sum[std::size_t(j)];
        sq[std::size_t(j)] += d * d;
      }
    }
    for (std::int64_t j = 0; j < width; ++j) {
      const std::int64_t ch = c0 + j;
      const float mean = float(sum[std::size_t(j)]);
      const float var = float(sq[std::size_t(j)] / double(rows));
      const float inv = kernels::batch_norm_inv_std(var, c.epsilon);
      w.batch_mean[ch] = mean;
      w.batch_inv_std[ch] = inv;
      scale[std::size_t(ch)] = w.gamma[ch] * inv;
      shift[std::size_t(ch)] = kernels::batch_norm_shift(w.beta[ch], mean, scale[std::size_t(ch)]);
      w.moving_mean[ch] = kernels::batch_norm_moving(w.moving_mean[ch], mean, c.momentum, c.momentum_complement);
      w.moving_variance[ch] = kernels::batch_norm_moving(w.moving_variance[ch], var, c.momentum, c.momentum_complement);
    }
  });
  scale_shift(xp, y.data(), scale.data(), shift.data(), c);
}

void CpuBackend::batch_norm_forward_inference(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                              const BatchNormCall& c) {
  check("batch_norm_forward_inference", x, y, c);
  const auto nc = static_cast<std::size_t>(c.channels);
  std::vector<float> scale(nc), shift(nc);
  for (std::int64_t ch = 0; ch < c.channels; ++ch) {
    scale[std::size_t(ch)] = w.gamma[ch] * kernels::batch_norm_inv_std(w.moving_variance[ch], c.epsilon);
    shift[std::size_t(ch)] = kernels::batch_norm_shift(w.beta[ch], w.moving_mean[ch], scale[std::size_t(ch)]);
  }
  scale_shift(x.data(), y.data(), scale.data(), shift.data(), c);
}

void CpuBackend::batch_norm_backward(const Tensor& x, const Tensor& dy, Tensor* dx, const BatchNormWeights& w,
                                     float* dgamma, float* dbeta, const BatchNormCall& c) {
  check("batch_norm_backward", x, dy, c);
  if (dx != nullptr) checks::tensor_of(Device::CPU, *dx, c.rows * c.channels, "batch_norm_backward dx");
  const std::int64_t channels = c.channels, rows = c.rows;
  const float* xp = x.data();
  const float* dyp = dy.data();
  // Per channel: dx = g * (dy - mean_dy - xhat * mean_dy_xhat), g = gamma * inv, the means over the rows.
  const auto nc = static_cast<std::size_t>(channels);
  std::vector<float> g(nc), mdy(nc), mdxh(nc);
  parallel_for(channels, channel_grain(c), [&](std::int64_t c0, std::int64_t c1) {
    const std::int64_t width = c1 - c0;
    const auto nw = static_cast<std::size_t>(width);
    std::vector<double> sum_dy(nw, 0.0), sum_dy_xhat(nw, 0.0);
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = xp + r * channels + c0;
      const float* dr = dyp + r * channels + c0;
      for (std::int64_t j = 0; j < width; ++j) {
        const double xhat = (double(xr[j]) - w.batch_mean[c0 + j]) * w.batch_inv_std[c0 + j];
        sum_dy[std::size_t(j)] += dr[j];
        sum_dy_xhat[std::size_t(j)] += double(dr[j]) * xhat;
      }
    }
    for (std::int64_t j = 0; j < width; ++j) {
      const std::int64_t ch = c0 + j;
      dbeta[ch] = float(sum_dy[std::size_t(j)]);
      dgamma[ch] = float(sum_dy_xhat[std::size_t(j)]);
      g[std::size_t(ch)] = w.gamma[ch] * w.batch_inv_std[ch];
      mdy[std::size_t(ch)] = float(sum_dy[std::size_t(j)] / double(rows));
      mdxh[std::size_t(ch)] = float(sum_dy_xhat[std::size_t(j)] / double(rows));
    }
  });
  if (dx == nullptr || rows == 0) return;
  float* dxp = dx->data();
  parallel_for(rows, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(channels, 1)),
               [&](std::int64_t r0, std::int64_t r1) {
                 for (std::int64_t r = r0; r < r1; ++r) {
                   const float* xr = xp + r * channels;
                   const float* dr = dyp + r * channels;
                   float* out = dxp + r * channels;
                   for (std::int64_t ch = 0; ch < channels; ++ch) {
                     const float xhat = (xr[ch] - w.batch_mean[ch]) * w.batch_inv_std[ch];
                     out[ch] = g[std::size_t(ch)] * (dr[ch] - mdy[std::size_t(ch)] - xhat * mdxh[std::size_t(ch)]);
                   }
                 }
               });
}

}  // namespace dropnet::backend::cpu
