// norm_pool_launchers.hpp: the host-side entry points of kernels/batch_norm.cu and kernels/avg_pool.cu
// (issue 24), as kernels/launchers.hpp states for the others: plain C++, a stream as void*, device pointers,
// queued on the stream without waiting; DeviceError when a launch fails.
#pragma once

#include <cstdint>

#include "kernels/avg_pool_math.hpp"

namespace dropnet::kernels {

// ---- batch_norm.cu -------------------------------------------------------------------------------

// Keras 3's moving statistics from cuDNN's saved batch mean and inverse standard deviation, per channel:
// moving_mean = batch_norm_moving(moving_mean, mean), moving_variance likewise with the biased variance
// batch_norm_variance_from_inv_std(inv_std, epsilon) (kernels/batch_norm_math.hpp).
void launch_batch_norm_moving(float* moving_mean, float* moving_variance, const float* batch_mean,
                              const float* batch_inv_std, std::int64_t channels, float momentum, float complement,
                              float epsilon, void* stream);

// ---- avg_pool.cu ---------------------------------------------------------------------------------

// y (n, oh, ow, c) = avg_pool_output per element; dx (n, h, w, c) = avg_pool_input_grad per element.
void launch_avg_pool_forward(const float* x, float* y, const AvgPoolGeometry& g, void* stream);
void launch_avg_pool_backward(const float* dy, float* dx, const AvgPoolGeometry& g, void* stream);

}  // namespace dropnet::kernels
