// emulation_kernels.cu: small kernels that test the emulated device itself (test_emulation.cpp): a block
// reduction with and without its barrier, a grid-stride fill with a bound to choose, a barrier only some
// threads reach, and a read of a value by pointer. Compiled only in the emulated build, through the same
// launch seam and prelude as kernels/*.cu.
#include "kernels/launch.cuh"
#include "emulation_kernels.hpp"

namespace dropnet::emulated::testing {
namespace {

// Sums 256 values per block with a shared-memory tree; `barrier` false leaves out the first
// __syncthreads, the classic missing-barrier bug.
__global__ void block_sum_kernel(const float* in, float* out, bool barrier) {
  __shared__ float partial[256];
  partial[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x];
  if (barrier) __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

__global__ void fill_kernel(float* p, std::int64_t n, std::int64_t bound, float value) {
  for (std::int64_t i = ::dropnet::kernels::detail::global_thread(); i < bound;
       i += ::dropnet::kernels::detail::grid_threads())
    p[i] = value + 0.0f * static_cast<float>(n);
}

// Even threads wait at __syncthreads for the odd ones, which wait at __syncwarp for the even ones: neither
// barrier can ever open. (Threads that return do not hold a barrier up: on sm_70 and later they leave it.)
__global__ void divergent_barrier_kernel(float* p) {
  if (threadIdx.x % 2 == 0) __syncthreads();
  else __syncwarp();
  p[threadIdx.x] = 1.0f;
}

__global__ void warp_sum_kernel(const float* in, float* out) {
  float v = in[threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[threadIdx.x] = v;
}

__global__ void add_kernel(float* p, float by_value, const float* by_pointer) { p[0] += by_value + *by_pointer; }

// Two warps each sum their 32 values, then thread 0 adds the two warp sums from shared memory. Which
// barrier orders warp 1's write before thread 0's read: __syncthreads() (right) or __syncwarp() (wrong: it
// orders lanes of one warp only, so warp 0 may read warp 1's slot before warp 1 has written it).
__global__ void cross_warp_sum_kernel(const float* in, float* out, bool block_barrier) {
  __shared__ float warp_sums[2];
  float v = in[threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  if (block_barrier) __syncthreads();
  else __syncwarp();
  if (threadIdx.x == 0) out[0] = warp_sums[0] + warp_sums[1];
}

// The even threads reach one __syncthreads(), the odd ones another: undefined in CUDA (a barrier in
// divergent code), a fault on the emulated device even though every thread reaches "a" barrier.
__global__ void split_barrier_kernel(float* p) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  p[threadIdx.x] = 1.0f;
}

}  // namespace

void cross_warp_sum(const float* in, float* out, bool block_barrier, void* stream) {
  DROPNET_LAUNCH(cross_warp_sum_kernel, dim3(1), dim3(64), stream, in, out, block_barrier);
}
void split_barrier(float* p, void* stream) { DROPNET_LAUNCH(split_barrier_kernel, dim3(1), dim3(64), stream, p); }

void block_sum(const float* in, float* out, int blocks, bool barrier, void* stream) {
  DROPNET_LAUNCH(block_sum_kernel, dim3(blocks), dim3(256), stream, in, out, barrier);
}
void fill_to(float* p, std::int64_t n, std::int64_t bound, float value, void* stream) {
  DROPNET_LAUNCH(fill_kernel, dim3(2), dim3(64), stream, p, n, bound, value);
}
void divergent_barrier(float* p, void* stream) { DROPNET_LAUNCH(divergent_barrier_kernel, dim3(1), dim3(64), stream, p); }
void warp_sum(const float* in, float* out, void* stream) {
  DROPNET_LAUNCH(warp_sum_kernel, dim3(1), dim3(64), stream, in, out);
}
void add(float* p, float by_value, const float* by_pointer, void* stream) {
  DROPNET_LAUNCH(add_kernel, dim3(1), dim3(1), stream, p, by_value, by_pointer);
}
void launch_with_block(int threads, float* p, void* stream) {
  DROPNET_LAUNCH(fill_kernel, dim3(1), dim3(static_cast<unsigned>(threads)), stream, p, std::int64_t{0},
                 std::int64_t{0}, 0.0f);
}

// An invalid launch queued around the seam (its error left pending), then a grid-stride launch through
// DROPNET_LAUNCH_LINEAR: the seam's check reads the pending error and must name this file and line.
void linear_launch_after_bad_launch(float* p, void* stream) {
  ::dropnet::emulated::launch_kernel("bad", fill_kernel, dim3(1), dim3(2048), static_cast<cudaStream_t>(stream), p,
                                     std::int64_t{0}, std::int64_t{0}, 0.0f);
  DROPNET_LAUNCH_LINEAR(fill_kernel, 1, stream, p, std::int64_t{0}, std::int64_t{0}, 0.0f);
}

}  // namespace dropnet::emulated::testing
