// launch.cuh: what every kernels/*.cu shares: the grid-stride loop, the grid size and the one launch
// seam. Only .cu files include it.
//
// Every kernel launch goes through launch() (through DROPNET_LAUNCH or DROPNET_LAUNCH_LINEAR): it is the
// only place with <<<...>>>. Both macros pass the caller's __FILE__ and __LINE__, so a failed launch names
// the line in kernels/*.cu that queued it, never this header. In the test-only emulated build (DROPNET_CUDA_EMULATION, tests/emulated_device/)
// the .cu files are compiled as host C++ and launch() hands the kernel to the emulated device instead.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "backend/cuda/cuda_check.hpp"

namespace dropnet::kernels::detail {

constexpr int kBlock = 256;

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Enough blocks for `items` threads, capped at 16 blocks per SM (two full waves of 256-thread blocks on
// Hopper): grid-stride loops cover the rest, and the cap keeps a huge tensor from paying one block
// launch per 256 elements. The SM count is read once (one GPU per process).
inline unsigned grid_for(std::size_t items, int block = kBlock) {
  static const std::size_t max_blocks = [] {
    int device = 0, sms = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || sms <= 0)
      sms = 132;
    return static_cast<std::size_t>(sms) * 16;
  }();
  const std::size_t blocks = (items + block - 1) / block;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min(blocks, max_blocks)));
}

// Queues kernel<<<grid, block, 0, stream>>>(args...) and checks the launch; a failed launch throws
// DeviceError naming `name` and the caller's file:line. Use DROPNET_LAUNCH, which fills those in.
template <typename... Params, typename... Args>
void launch(const char* name, const char* file, int line, void (*kernel)(Params...), dim3 grid, dim3 block,
            void* stream, Args&&... args) {
#if defined(DROPNET_CUDA_EMULATION)
  ::dropnet::emulated::launch_kernel(name, kernel, grid, block, as_stream(stream), std::forward<Args>(args)...);
#else
  kernel<<<grid, block, 0, as_stream(stream)>>>(std::forward<Args>(args)...);
#endif
  ::dropnet::backend::cuda::check_last_launch(name, file, line);
}

// Queues kernel<<<grid_for(items), kBlock, 0, stream>>>(args...) unless items == 0, then checks the launch.
// Use DROPNET_LAUNCH_LINEAR, which fills in `name` and the caller's file:line.
template <typename... Params, typename... Args>
void launch_linear(const char* name, const char* file, int line, void (*kernel)(Params...), std::size_t items,
                   void* stream, Args&&... args) {
  if (items == 0) return;
  launch(name, file, line, kernel, dim3(grid_for(items)), dim3(kBlock), stream, std::forward<Args>(args)...);
}

// Index of this thread in a 1-D grid and the grid's thread count, as 64-bit values.
__device__ __forceinline__ std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_threads() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace dropnet::kernels::detail

// kernel<<<grid, block, 0, stream>>>(args...) through the one seam above.
#define DROPNET_LAUNCH(kernel, grid, block, stream, ...) \
  ::dropnet::kernels::detail::launch(#kernel, __FILE__, __LINE__, kernel, grid, block, stream, __VA_ARGS__)

// kernel<<<grid_for(items), kBlock, 0, stream>>>(args...) unless items == 0, through the one seam above.
#define DROPNET_LAUNCH_LINEAR(kernel, items, stream, ...)                                                      \
  ::dropnet::kernels::detail::launch_linear(#kernel, __FILE__, __LINE__, kernel, items, stream, __VA_ARGS__)

// for (i = this thread; i < n; i += all threads): the loop every elementwise kernel uses.
#define DROPNET_GRID_STRIDE(i, n)                                                   \
  for (std::int64_t i = ::dropnet::kernels::detail::global_thread(); i < (n);      \
       i += ::dropnet::kernels::detail::grid_threads())
