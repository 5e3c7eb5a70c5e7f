// memory_check.hpp: the emulated device's memcheck and initcheck, at the instruction. Test-only.
//
// The kernel files (kernels/*.cu compiled as host C++) and the cuDNN/cuBLAS doubles are compiled with
// GCC's ThreadSanitizer instrumentation (-fsanitize=thread at compile time only): every load and store
// they make calls __tsan_{read,write}N(address), and memory_check.cpp defines those calls (the TSan runtime,
// whose model of host threads knows nothing of CUDA's, is not linked). For an address inside a device
// allocation or its guard zones:
//   - memcheck (always on): an access that is not wholly inside the allocation (one element past the end,
//     one before the start) is a sticky device fault naming the kernel (or "a cuDNN/cuBLAS double"), the
//     access and the allocation, as compute-sanitizer's memcheck reports it on a GPU;
//   - initcheck (DROPNET_EMULATION_INITCHECK=1, or set_initcheck(true) before the allocations): a load of
//     device memory that nothing has written since cudaMalloc (no kernel store, copy or memset) is a
//     sticky fault naming the kernel and the allocation, like compute-sanitizer --tool initcheck. Device
//     memory only: pinned host memory is written by host code, which is not instrumented;
//   - racecheck (below), for device and __shared__ memory.
// Writers that are not instrumented (the runtime's copies and memsets) mark what they write with
// mark_written().
//
// Under the asan preset (-fsanitize=address, which cannot be combined with the thread instrumentation) the
// kernels are compiled with ASan instead: the guard zones are poisoned (memory.cpp), so out-of-bounds
// accesses fault at the instruction through ASan, and initcheck and racecheck are not available.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace dropnet::emulated {

// Whether this build instruments the kernels (false under ASan: see above).
bool memory_check_instrumented();

// initcheck on or off for allocations made from now on (the environment's DROPNET_EMULATION_INITCHECK=1
// turns it on at start-up). Returns the previous setting.
bool set_initcheck(bool on);
bool initcheck_enabled();

// racecheck (DROPNET_EMULATION_RACECHECK=1, or set_racecheck(true)): within one kernel launch, two
// accesses to the same 4 bytes of device or shared memory, at least one a write, by threads that nothing
// orders are a sticky device fault naming the kernel, the memory and both threads, as compute-sanitizer's
// racecheck reports a hazard. Ordered: the same thread; threads of one block with a __syncthreads()
// between the accesses; lanes of one warp with a warp barrier (__syncwarp, a shuffle) between them.
// Threads of different blocks are never ordered within a launch (only atomics may share memory there), and
// shared memory is the block's own. Atomics (atomicAdd, ...) are not checked. The scheduler's order does
// not matter: a race is reported whichever thread happens to run first. Returns the previous setting.
bool set_racecheck(bool on);
bool racecheck_enabled();

// Accesses between begin_atomic() and end_atomic() are an atomic's (kernel_prelude.hpp's atomics).
void begin_atomic();
void end_atomic();

// The kernel whose threads are running (run_grid sets it; null between kernels), for fault messages.
void set_running_kernel(const char* name);

// `work` as queued work named `what` (enqueue wraps every op in it): while it runs, the hooks check
// device memory accesses and name `what` in their faults.
std::function<void()> checked_work(const char* what, std::function<void()> work);

// [p, p + bytes) was written by something the instrumentation does not see. A no-op outside device memory.
void mark_written(const void* p, std::size_t bytes);

}  // namespace dropnet::emulated
