// noise_ops.cpp: CudaBackend's GaussianDropout, GaussianNoise and AlphaDropout ops (kernels/noise.cu).
// The arguments are checked as on the CPU (backend/op_checks.hpp); the step and the rate stay in the
// layer's slot of the step state (device memory), which the kernel reads when it runs, so a recorded step
// draws fresh values at every replay.
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_context.hpp"
#include "backend/op_checks.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {
namespace {

// The launch description of a checked call (checks::noise).
kernels::NoiseLaunch noise_launch(const NoiseCall& call, std::int64_t count, bool backward) {
  const Shape& mask = call.mask_shape.empty() ? call.input_shape : call.mask_shape;
  kernels::NoiseLaunch launch{};
  static_cast<kernels::DropoutBroadcast&>(launch) =
      kernels::dropout_broadcast(call.input_shape.data(), mask.data(), static_cast<int>(call.input_shape.size()));
  launch.kind = static_cast<int>(call.kind);  // NoiseCall::Kind and kernels::NoiseKind agree (cpu/noise.cpp)
  launch.backward = backward;
  launch.seed = call.seed;
  launch.step = call.step;
  launch.rate = call.rate;
  launch.slot = call.slot;
  launch.count = count;
  return launch;
}

}  // namespace

void CudaBackend::noise_forward(const Tensor& x, Tensor& y, const NoiseCall& call) {
  checks::noise(Device::CUDA, x, y, call, /*backward=*/false);
  kernels::launch_noise(x.data(), y.data(), noise_launch(call, x.size(), false), ctx_->stream_ptr());
}

void CudaBackend::noise_backward(const Tensor& dy, Tensor& dx, const NoiseCall& call) {
  checks::noise(Device::CUDA, dy, dx, call, /*backward=*/true);
  kernels::launch_noise(dy.data(), dx.data(), noise_launch(call, dy.size(), true), ctx_->stream_ptr());
}

}  // namespace dropnet::backend::cuda
