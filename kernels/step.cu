// step.cu: the last op of fit's training step: moves the model's step state (kernels/step_state.hpp) on, on
// the device, so that a recorded step (a CUDA graph) reads the next step's dropout steps, Adam alpha and
// batch rows at its next replay.
#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

__global__ void advance_step_kernel(StepHeader* state, StepSlot* slots, StepAdvance advance) {
  if (blockIdx.x == 0 && threadIdx.x == 0) advance_step_state(state, slots, advance);
}

}  // namespace

void launch_advance_step(StepHeader* state, StepSlot* slots, const StepAdvance& advance, void* stream) {
  DROPNET_LAUNCH(advance_step_kernel, dim3(1), dim3(1), stream, state, slots, advance);
}

}  // namespace dropnet::kernels
