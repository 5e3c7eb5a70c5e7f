// emulation_kernels.hpp: launchers of the kernels that test the emulated device (emulation_kernels.cu).
// Each queues its kernel on `stream` (a cudaStream_t) and checks the launch like kernels/*.cu.
#pragma once

#include <cstdint>

namespace dropnet::emulated::testing {

void block_sum(const float* in, float* out, int blocks, bool barrier, void* stream);  // 256 values per block
void fill_to(float* p, std::int64_t n, std::int64_t bound, float value, void* stream);  // p[i] = value, i < bound
void divergent_barrier(float* p, void* stream);  // 64 threads, half at __syncthreads, half at __syncwarp
void warp_sum(const float* in, float* out, void* stream);                                // 64 values, 2 warps
// out[0] = sum of 64 values, 2 warps combined through shared memory after __syncthreads (block_barrier) or
// after only __syncwarp (the bug).
void cross_warp_sum(const float* in, float* out, bool block_barrier, void* stream);
void split_barrier(float* p, void* stream);  // 64 threads, the even ones at one __syncthreads, the odd at another
void add(float* p, float by_value, const float* by_pointer, void* stream);              // p[0] += v + *ptr
void launch_with_block(int threads, float* p, void* stream);
// Leaves a launch error pending, then launches through DROPNET_LAUNCH_LINEAR (whose check throws).
void linear_launch_after_bad_launch(float* p, void* stream);

}  // namespace dropnet::emulated::testing
