// memory_check_kernels.cu: small kernels with the memory bugs compute-sanitizer finds on a GPU (reads past
// either end of a buffer, a write before its start, reads of memory nothing wrote, a race between blocks),
// and their correct uses. Compiled only in the emulated build, through the same launch seam and prelude as kernels/*.cu.
#include "kernels/launch.cuh"
#include "memory_check_kernels.hpp"

namespace dropnet::emulated::testing {
namespace {

__global__ void shifted_copy_kernel(const float* in, float* out, std::int64_t n, std::int64_t offset) {
  for (std::int64_t i = ::dropnet::kernels::detail::global_thread(); i < n; i += ::dropnet::kernels::detail::grid_threads())
    out[i] = in[i + offset];
}

__global__ void shifted_fill_kernel(float* p, std::int64_t n, float value) {
  for (std::int64_t i = ::dropnet::kernels::detail::global_thread(); i < n; i += ::dropnet::kernels::detail::grid_threads())
    p[i - 1] = value;
}

__global__ void relu_kernel(const float* in, float* out, std::int64_t n) {
  for (std::int64_t i = ::dropnet::kernels::detail::global_thread(); i < n; i += ::dropnet::kernels::detail::grid_threads())
    out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

// Thread 0 of every block adds 1 to p[0]: with a plain += the blocks race (on a GPU they run at once and
// updates are lost); atomicAdd is the correct version.
__global__ void count_blocks_kernel(float* p, bool atomic) {
  if (threadIdx.x != 0) return;
  if (atomic) atomicAdd(p, 1.0f);
  else p[0] += 1.0f;
}

}  // namespace

void count_blocks(float* p, int blocks, bool atomic, void* stream) {
  DROPNET_LAUNCH(count_blocks_kernel, dim3(static_cast<unsigned>(blocks)), dim3(32), stream, p, atomic);
}
void shifted_copy(const float* in, float* out, std::int64_t n, std::int64_t offset, void* stream) {
  DROPNET_LAUNCH(shifted_copy_kernel, dim3(2), dim3(64), stream, in, out, n, offset);
}
void shifted_fill(float* p, std::int64_t n, float value, void* stream) {
  DROPNET_LAUNCH(shifted_fill_kernel, dim3(2), dim3(64), stream, p, n, value);
}
void relu(const float* in, float* out, std::int64_t n, void* stream) {
  DROPNET_LAUNCH(relu_kernel, dim3(2), dim3(64), stream, in, out, n);
}

}  // namespace dropnet::emulated::testing
