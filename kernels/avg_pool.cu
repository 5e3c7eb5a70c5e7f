// avg_pool.cu: AveragePooling2D and GlobalAveragePooling2D, one thread per output element (forward) or
// input element (backward, a gather: no atomics), with the CPU backend's per-element math
// (kernels/avg_pool_math.hpp), so the same bits as the CPU.
#include "kernels/avg_pool_math.hpp"
#include "kernels/launch.cuh"
#include "kernels/norm_pool_launchers.hpp"

namespace dropnet::kernels {
namespace {

__global__ void avg_pool_forward_kernel(const float* x, float* y, AvgPoolGeometry g) {
  DROPNET_GRID_STRIDE(i, g.n * g.oh * g.ow * g.c) {
    const std::int64_t ch = i % g.c, p = i / g.c;
    y[i] = avg_pool_output(x, g, p / (g.oh * g.ow), p / g.ow % g.oh, p % g.ow, ch);
  }
}

__global__ void avg_pool_backward_kernel(const float* dy, float* dx, AvgPoolGeometry g) {
  DROPNET_GRID_STRIDE(i, g.n * g.h * g.w * g.c) {
    const std::int64_t ch = i % g.c, p = i / g.c;
    dx[i] = avg_pool_input_grad(dy, g, p / (g.h * g.w), p / g.w % g.h, p % g.w, ch);
  }
}

}  // namespace

void launch_avg_pool_forward(const float* x, float* y, const AvgPoolGeometry& g, void* stream) {
  DROPNET_LAUNCH_LINEAR(avg_pool_forward_kernel, static_cast<std::size_t>(g.n * g.oh * g.ow * g.c), stream, x, y, g);
}

void launch_avg_pool_backward(const float* dy, float* dx, const AvgPoolGeometry& g, void* stream) {
  DROPNET_LAUNCH_LINEAR(avg_pool_backward_kernel, static_cast<std::size_t>(g.n * g.h * g.w * g.c), stream, dy, dx, g);
}

}  // namespace dropnet::kernels
