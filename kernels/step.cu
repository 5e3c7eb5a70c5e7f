// step.cu: the last op of fit's training step: moves the StepCounters (backend/backend.hpp) on by one, on
// the device, so that a recorded step (a CUDA graph) reads the next step's dropout step, Adam alpha and
// batch rows at its next replay.
#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

__global__ void advance_step_kernel(std::uint64_t* iteration, std::int64_t* batch) {
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    *iteration += 1;
    *batch += 1;
  }
}

}  // namespace

void launch_advance_step(std::uint64_t* iteration, std::int64_t* batch, void* stream) {
  DROPNET_LAUNCH(advance_step_kernel, dim3(1), dim3(1), stream, iteration, batch);
}

}  // namespace dropnet::kernels
