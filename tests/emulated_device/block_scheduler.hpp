// block_scheduler.hpp: how the emulated device runs a kernel's threads. Test-only.
//
// Every CUDA thread of a block really runs, on a fiber (its own stack) of the host thread that executes
// the stream's work. A thread runs until it reaches a barrier (__syncthreads, a warp shuffle, __syncwarp)
// or returns; the scheduler then runs the next thread in the block's order (a thread that returns hands
// its fiber straight to the next one, so a kernel without barriers costs one switch per block). A barrier opens once every
// thread it waits for has reached it, exactly like the hardware's; threads that returned no longer count,
// as on sm_70 and later.
//
// Warps do not move in lockstep: when every lane of a warp has reached its warp barrier (__syncwarp or a
// shuffle), that warp goes on at once, up to its next barrier, while the other warps wait where they are.
// So a warp runs ahead of the others exactly as far as the barriers allow, and a __syncwarp() where a
// __syncthreads() is needed (one warp reading what another has not yet written) shows. All threads that
// wait at a block barrier must have reached the same __syncthreads() call site; threads at different
// sites (a barrier in divergent code, which CUDA leaves undefined) are a fault.
//
// The order is chosen per run (DROPNET_EMULATION_THREAD_ORDER):
//   forward   thread 0, 1, 2, ... (a missing barrier shows where low threads read what high ones write)
//   reverse   the last thread first (it shows where high threads read what low ones write)
//   shuffle   a fixed pseudo-random permutation per block (both, and anything in between)
// Blocks run one after another (in reverse or shuffled order too), so a kernel that assumes an order
// between blocks fails as well. Before each block the __shared__ variables are filled with NaN bytes, so a
// thread that reads shared memory before the barrier that should order it sees NaN or garbage, not the
// value the block before happened to leave.
//
// Faults a kernel cannot survive on a GPU (a barrier that can never open, a shuffle whose mask names a
// lane that has returned) become a sticky device error (device_state.hpp), with a message naming the
// kernel, the block and the barrier.
#pragma once

#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

namespace dropnet::emulated {

struct BlockContext {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};

struct ThreadContext {
  uint3 thread_idx;
  const BlockContext* block;
  int linear;           // x + y * dim.x + z * dim.x * dim.y: the warp is linear / 32
  std::uint64_t slot;   // this lane's value during a warp exchange
};

// The running emulated thread. Aborts the process with a message when called outside a kernel (a
// __device__ function called from host code).
ThreadContext& current_thread();

// `file` and `line` name the __syncthreads() call site: threads waiting at different sites are a fault.
void sync_block(const char* file = nullptr, int line = 0);
void sync_warp(unsigned mask = 0xffffffffu);

// One warp exchange: every lane in `mask` publishes `bytes` of `value`, waits for the others, reads the
// value of lane `source_lane` into `out` and waits again (so the next exchange cannot overwrite a value
// a lane has not read yet). A source lane outside the mask gives this lane's own value.
void warp_exchange(unsigned mask, const void* value, std::size_t bytes, int source_lane, void* out);

template <typename T, typename SourceLane>
T exchange_in_warp(unsigned mask, T value, SourceLane source_lane) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(std::uint64_t),
                "warp shuffles exchange values of at most 8 bytes");
  T out;
  warp_exchange(mask, &value, sizeof(T), source_lane(current_thread().linear % 32), &out);
  return out;
}

// Where the running emulated thread is, for racecheck (memory_check.cpp): its block (linear index) and
// thread (linear index in the block), and how many __syncthreads() and warp barriers (__syncwarp, shuffles)
// it has passed. False outside a kernel's thread.
struct ThreadPosition {
  std::uint32_t block = 0, thread = 0, block_epoch = 0, warp_epoch = 0;
};
bool thread_position(ThreadPosition& out);
// The bytes that hold every __shared__ variable (one copy, refilled before each block); null when none.
void shared_memory_range(const char*& begin, const char*& end);

// Tests of the emulation choose the order themselves: "forward", "reverse", "shuffle", or null for the
// environment's (default forward).
void set_thread_order(const char* order);

// Validates a launch (CUDA's limits on grid and block sizes; an invalid one sets the last error to
// cudaErrorInvalidConfiguration and runs nothing) and queues it on `stream`. `thread_body` runs one
// thread of the kernel.
void submit_kernel(const char* name, dim3 grid, dim3 block, cudaStream_t stream, std::function<void()> thread_body);

// Runs every block of a launch now (called from the queued work). Returns false after a device fault.
bool run_grid(const char* name, dim3 grid, dim3 block, const std::function<void()>& thread_body);

}  // namespace dropnet::emulated
