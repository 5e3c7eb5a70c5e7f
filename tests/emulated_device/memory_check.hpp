// memory_check.hpp: the emulated device's memcheck and initcheck, at the instruction. Test-only.
//
// The kernel files (kernels/*.cu compiled as host C++) and the cuDNN/cuBLAS doubles are compiled with
// GCC's -fsanitize=kernel-address in its outline form (asan-instrumentation-with-call-threshold=0): every
// load and store they make calls __asan_{load,store}N_noabort(address), and memory_check.cpp defines those
// calls (no sanitizer runtime is linked). For an address inside a device allocation or its guard zones:
//   - memcheck (always on): an access that is not wholly inside the allocation (one element past the end,
//     one before the start) is a sticky device fault naming the kernel (or "a cuDNN/cuBLAS double"), the
//     access and the allocation, as compute-sanitizer's memcheck reports it on a GPU;
//   - initcheck (DROPNET_EMULATION_INITCHECK=1, or set_initcheck(true) before the allocations): a load of
//     device memory that nothing has written since cudaMalloc (no kernel store, copy or memset) is a
//     sticky fault naming the kernel and the allocation, like compute-sanitizer --tool initcheck. Device
//     memory only: pinned host memory is written by host code, which is not instrumented.
// Writers that are not instrumented (the runtime's copies and memsets, OpenBLAS inside the cuBLAS double)
// mark what they write with mark_written().
//
// Under the asan preset (-fsanitize=address, which cannot be combined with kernel-address) the kernels are
// compiled with ASan instead: the guard zones are poisoned (memory.cpp), so out-of-bounds accesses fault at
// the instruction through ASan, and initcheck is not available.
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

// The kernel whose threads are running (run_grid sets it; null between kernels), for fault messages.
void set_running_kernel(const char* name);

// `work` as queued work named `what` (enqueue wraps every op in it): while it runs, the hooks check
// device memory accesses and name `what` in their faults.
std::function<void()> checked_work(const char* what, std::function<void()> work);

// [p, p + bytes) was written by something the instrumentation does not see. A no-op outside device memory.
void mark_written(const void* p, std::size_t bytes);

}  // namespace dropnet::emulated
