// batch_norm.cu: the one BatchNormalization kernel of dropnet's own: Keras 3's moving-statistics update
// from cuDNN's saved batch statistics (cuDNN's own running variance is the unbiased one; Keras' is biased,
// kernels/batch_norm_math.hpp). One thread per channel; it runs in the step, so a recorded step replays it.
#include "kernels/batch_norm_math.hpp"
#include "kernels/launch.cuh"
#include "kernels/norm_pool_launchers.hpp"

namespace dropnet::kernels {
namespace {

__global__ void batch_norm_moving_kernel(float* moving_mean, float* moving_variance, const float* batch_mean,
                                         const float* batch_inv_std, std::int64_t channels, float momentum,
                                         float complement, float epsilon) {
  DROPNET_GRID_STRIDE(c, channels) {
    moving_mean[c] = batch_norm_moving(moving_mean[c], batch_mean[c], momentum, complement);
    moving_variance[c] = batch_norm_moving(moving_variance[c], batch_norm_variance_from_inv_std(batch_inv_std[c], epsilon),
                                           momentum, complement);
  }
}

}  // namespace

void launch_batch_norm_moving(float* moving_mean, float* moving_variance, const float* batch_mean,
                              const float* batch_inv_std, std::int64_t channels, float momentum, float complement,
                              float epsilon, void* stream) {
  DROPNET_LAUNCH_LINEAR(batch_norm_moving_kernel, static_cast<std::size_t>(channels), stream, moving_mean,
                        moving_variance, batch_mean, batch_inv_std, channels, momentum, complement, epsilon);
}

}  // namespace dropnet::kernels
