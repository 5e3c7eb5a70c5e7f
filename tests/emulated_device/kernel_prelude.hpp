// kernel_prelude.hpp: what lets kernels/*.cu compile as host C++ and run on the emulated device.
// Test-only: CMake force-includes it (-include) into each .cu file of the emulated build, which the C++
// compiler then compiles unchanged. See docs/design.md, "Testing the CUDA path without a GPU".
//
// The real CUDA headers come first (types such as float4 and dim3, the runtime API's declarations), then
// CUDA's keywords and built-ins are given host meanings:
//   __global__, __device__, __host__, __forceinline__   plain (inline) C++ functions
//   __shared__                                          one static per variable, in the section
//                                                       "dropnet_shared", refilled with NaN bytes before
//                                                       every block (so a read before a write shows)
//   threadIdx, blockIdx, blockDim, gridDim              the running emulated thread's coordinates
//   __syncthreads()                                     a real barrier among the block's threads (all at
//                                                       one call site: else a fault, as CUDA leaves it
//                                                       undefined)
//   __shfl_xor_sync / _down_ / _up_ / __shfl_sync       an exchange among the warp's 32 lanes
//   atomicAdd, atomicMax, atomicMin, atomicCAS, ...     read-modify-write (blocks never interleave
//                                                       inside one of them: see block_scheduler.hpp)
// The one launch seam (kernels/launch.cuh) calls launch_kernel() below instead of <<<...>>>.
#pragma once

#include <cuda_runtime.h>
// cuRAND's device API has host code paths (it is a header); it declares threadIdx and blockDim for them,
// so it must come before the macros below. Its functions become plain static inline functions.
#define QUALIFIERS static inline
#include <curand_kernel.h>

#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emulated_device/block_scheduler.hpp"
#include "emulated_device/memory_check.hpp"

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#undef __restrict__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
// Every __shared__ variable of every kernel lives in this section; the scheduler fills the whole section
// with NaN bytes before it runs a block. Blocks run one at a time, so one static per variable is the block's.
#define __shared__ __attribute__((section("dropnet_shared"))) static

#define threadIdx (::dropnet::emulated::current_thread().thread_idx)
#define blockIdx (::dropnet::emulated::current_thread().block->block_idx)
#define blockDim (::dropnet::emulated::current_thread().block->block_dim)
#define gridDim (::dropnet::emulated::current_thread().block->grid_dim)
#define warpSize 32
#define __syncthreads() ::dropnet::emulated::sync_block(__FILE__, __LINE__)
#define __syncwarp(...) ::dropnet::emulated::sync_warp(__VA_ARGS__)

namespace dropnet::emulated {

// The warp shuffles: every lane of the mask takes part, exactly as on the device.
template <typename T>
T shfl_xor(unsigned mask, T value, int lane_mask, int width) {
  return exchange_in_warp(mask, value, [&](int lane) { return (lane ^ lane_mask) % width + lane / width * width; });
}
template <typename T>
T shfl_down(unsigned mask, T value, unsigned delta, int width) {
  return exchange_in_warp(mask, value, [&](int lane) {
    const int in_segment = lane % width + static_cast<int>(delta);
    return in_segment < width ? lane + static_cast<int>(delta) : lane;
  });
}
template <typename T>
T shfl_up(unsigned mask, T value, unsigned delta, int width) {
  return exchange_in_warp(mask, value, [&](int lane) {
    return lane % width >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane;
  });
}
template <typename T>
T shfl(unsigned mask, T value, int src_lane, int width) {
  return exchange_in_warp(mask, value, [&](int lane) { return lane / width * width + src_lane % width; });
}

// Atomics: a thread is never preempted inside one (fibers switch only at barriers and shuffles, and blocks
// do not run concurrently), so a plain read-modify-write is atomic here. They return the old value, and
// racecheck does not count their accesses (a non-atomic update of memory other blocks update is a race).
// The accesses inside are an atomic's: racecheck does not count them (memory_check.hpp).
struct AtomicScope {
  AtomicScope() { begin_atomic(); }
  ~AtomicScope() { end_atomic(); }
  AtomicScope(const AtomicScope&) = delete;
  AtomicScope& operator=(const AtomicScope&) = delete;
};

template <typename T>
T atomic_update(T* address, T value, T (*op)(T, T)) {
  const AtomicScope atomic;
  const T old = *address;
  *address = op(old, value);
  return old;
}

}  // namespace dropnet::emulated

#define __shfl_xor_sync(mask, value, ...) ::dropnet::emulated::shfl_xor(mask, value, __VA_ARGS__, 32)
#define __shfl_down_sync(mask, value, ...) ::dropnet::emulated::shfl_down(mask, value, __VA_ARGS__, 32)
#define __shfl_up_sync(mask, value, ...) ::dropnet::emulated::shfl_up(mask, value, __VA_ARGS__, 32)
#define __shfl_sync(mask, value, ...) ::dropnet::emulated::shfl(mask, value, __VA_ARGS__, 32)

// CUDA's device math API has min and max overloads in the global namespace (kernels call them unqualified).
#define DROPNET_EMULATED_MINMAX(T)                        \
  inline T min(T a, T b) { return b < a ? b : a; }        \
  inline T max(T a, T b) { return a < b ? b : a; }
DROPNET_EMULATED_MINMAX(int)
DROPNET_EMULATED_MINMAX(unsigned)
DROPNET_EMULATED_MINMAX(long)
DROPNET_EMULATED_MINMAX(unsigned long)
DROPNET_EMULATED_MINMAX(long long)
DROPNET_EMULATED_MINMAX(unsigned long long)
#undef DROPNET_EMULATED_MINMAX

template <typename T>
inline T atomicAdd(T* address, T value) {
  return ::dropnet::emulated::atomic_update<T>(address, value, [](T a, T b) { return static_cast<T>(a + b); });
}
template <typename T>
inline T atomicSub(T* address, T value) {
  return ::dropnet::emulated::atomic_update<T>(address, value, [](T a, T b) { return static_cast<T>(a - b); });
}
template <typename T>
inline T atomicMax(T* address, T value) {
  return ::dropnet::emulated::atomic_update<T>(address, value, [](T a, T b) { return a < b ? b : a; });
}
template <typename T>
inline T atomicMin(T* address, T value) {
  return ::dropnet::emulated::atomic_update<T>(address, value, [](T a, T b) { return b < a ? b : a; });
}
template <typename T>
inline T atomicExch(T* address, T value) {
  return ::dropnet::emulated::atomic_update<T>(address, value, [](T, T b) { return b; });
}
template <typename T>
inline T atomicCAS(T* address, T compare, T value) {
  const ::dropnet::emulated::AtomicScope atomic;
  const T old = *address;
  if (old == compare) *address = value;
  return old;
}

namespace dropnet::emulated {

// kernel<<<grid, block, 0, stream>>>(args...): the arguments are converted to the kernel's parameter
// types and copied now, as CUDA copies a launch's parameters when it is queued (and a graph records
// them); every emulated thread then runs the kernel on its own copy of them.
template <typename... Params, typename... Args>
void launch_kernel(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                   Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "a kernel launch passes one argument per parameter");
  std::tuple<std::decay_t<Params>...> params(static_cast<std::decay_t<Params>>(std::forward<Args>(args))...);
  submit_kernel(name, grid, block, stream, [kernel, params]() mutable {
    auto copy = params;  // each thread gets the launch's values, and may change its copy
    std::apply(kernel, copy);
  });
}

}  // namespace dropnet::emulated
