// memory_check_kernels.cu: small kernels with the memory bugs compute-sanitizer finds on a GPU (reads past
// either end of a buffer, a write before its start, reads of memory nothing wrote), and their correct
// uses. Compiled only in the emulated build, through the same launch seam and prelude as kernels/*.cu.
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

}  // namespace

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
