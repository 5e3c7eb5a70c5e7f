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
  advance_step_kernel<<<1, 1, 0, detail::as_stream(stream)>>>(iteration, batch);
  ::dropnet::backend::cuda::check_last_launch("advance_step_kernel", __FILE__, __LINE__);
}

}  // namespace dropnet::kernels
