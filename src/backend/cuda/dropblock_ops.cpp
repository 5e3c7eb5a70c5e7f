// dropblock_ops.cpp: CudaBackend's DropBlock2D ops (kernels/dropblock.cu). The checks are the CPU's
// (backend/op_checks.hpp); the kept count lives in a scratch slot of one counter that every call zeroes and
// recounts on the stream, so forward and backward each regenerate everything from (seed, step) and a
// recorded step stays right at every replay.
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_context.hpp"
#include "backend/op_checks.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {
namespace {

kernels::DropBlockLaunch dropblock_launch(const DropBlockCall& call, const kernels::DropBlockGeometry& g) {
  kernels::DropBlockLaunch launch{};
  static_cast<kernels::DropBlockGeometry&>(launch) = g;
  launch.seed = call.seed;
  launch.step = call.step;
  launch.rate = call.rate;
  launch.slot = call.slot;  // device memory: the kernels read the step and the rate there when they run
  return launch;
}

}  // namespace

void CudaBackend::dropblock_forward(const Tensor& x, Tensor& y, const DropBlockCall& call) {
  const kernels::DropBlockGeometry g = checks::dropblock(Device::CUDA, x, y, call, /*backward=*/false);
  auto* kept = ctx_->scratch_as<unsigned long long>(Scratch::DropBlockCount, 1);
  kernels::launch_dropblock(x.data(), y.data(), dropblock_launch(call, g), kept, ctx_->stream_ptr());
}

void CudaBackend::dropblock_backward(const Tensor& dy, Tensor& dx, const DropBlockCall& call) {
  const kernels::DropBlockGeometry g = checks::dropblock(Device::CUDA, dy, dx, call, /*backward=*/true);
  auto* kept = ctx_->scratch_as<unsigned long long>(Scratch::DropBlockCount, 1);
  kernels::launch_dropblock(dy.data(), dx.data(), dropblock_launch(call, g), kept, ctx_->stream_ptr());
}

}  // namespace dropnet::backend::cuda
