// memory_check.cpp: memcheck and initcheck for the instrumented code of the emulated device (see
// memory_check.hpp). Test-only. Compiled without instrumentation.
#include "emulated_device/memory_check.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "emulated_device/device_state.hpp"
#include "emulated_device/runtime_state.hpp"

namespace dropnet::emulated {
namespace {

bool initcheck_from_environment() {
  const char* v = std::getenv("DROPNET_EMULATION_INITCHECK");
  return v != nullptr && std::strcmp(v, "1") == 0;
}
bool g_initcheck = initcheck_from_environment();

// The queued operation running on this host thread (null outside queued work: the hooks then return at
// once, since only queued work may touch device memory) and the kernel, if the operation is a launch.
thread_local const char* t_operation = nullptr;
thread_local const char* t_kernel = nullptr;
// The allocation the last access fell in: most accesses hit the same buffer as the one before.
thread_local std::uintptr_t t_cached_start = 0, t_cached_end = 0;
thread_local Allocation* t_cached = nullptr;

std::string who() {
  if (t_kernel != nullptr) return std::string("kernel ") + t_kernel;
  return std::string(t_operation) + " (a cuDNN/cuBLAS double or a copy)";
}

std::string describe(const Allocation& a) {
  return "allocation #" + std::to_string(a.id) + " (" + std::to_string(a.bytes) + " bytes of " +
         (a.pinned ? "pinned host memory" : "device memory") + ")";
}

// The allocation whose guarded extent [start - front, start + bytes + guarded) holds addr, or nullptr.
Allocation* find_guarded(std::uintptr_t addr, std::uintptr_t& start) {
  auto& allocations = runtime().allocations;
  auto it = allocations.upper_bound(addr);  // the first allocation starting after addr
  if (it != allocations.end() && addr + it->second.front >= it->first) {  // in its front guard zone
    start = it->first;
    return &it->second;
  }
  if (it == allocations.begin()) return nullptr;
  --it;
  if (addr >= it->first + it->second.bytes + it->second.guarded) return nullptr;
  start = it->first;
  return &it->second;
}

void on_access(const void* p, std::size_t n, bool store) {
  if (t_operation == nullptr || n == 0) return;
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  Allocation* a = nullptr;
  std::uintptr_t start = 0;
  if (addr >= t_cached_start && addr + n <= t_cached_end) {
    a = t_cached, start = t_cached_start;
  } else {
    a = find_guarded(addr, start);
    if (a == nullptr) return;  // host memory: a local, __shared__, a double's own buffer
  }
  if (addr < start || addr + n > start + a->bytes) {
    const long long offset = static_cast<long long>(addr - start);
    device_fault(cudaErrorIllegalAddress, who() + (store ? " wrote " : " read ") + std::to_string(n) +
                                              " byte(s) at offset " + std::to_string(offset) + " of " + describe(*a) +
                                              (addr < start ? ": before its start" : ": past its end") + " (memcheck)");
    return;
  }
  t_cached = a, t_cached_start = start, t_cached_end = start + a->bytes;
  if (a->written.empty()) return;  // no initcheck for this allocation
  const std::size_t off = addr - start;
  if (store) {
    std::memset(a->written.data() + off, 1, n);
  } else if (std::find(a->written.begin() + off, a->written.begin() + off + n, 0) != a->written.begin() + off + n) {
    device_fault(cudaErrorIllegalAddress, who() + " read " + std::to_string(n) + " byte(s) at offset " +
                                              std::to_string(off) + " of " + describe(*a) +
                                              ", which nothing has written since cudaMalloc (initcheck)");
    std::memset(a->written.data() + off, 1, n);  // report each uninitialised byte once
  }
}

}  // namespace

bool memory_check_instrumented() {
#if defined(__SANITIZE_ADDRESS__)
  return false;
#else
  return true;
#endif
}

bool set_initcheck(bool on) { return std::exchange(g_initcheck, on); }
bool initcheck_enabled() { return g_initcheck; }
void set_running_kernel(const char* name) { t_kernel = name; }

std::function<void()> checked_work(const char* what, std::function<void()> work) {
  return [what = std::string(what), work = std::move(work)] {
    const char* outer = std::exchange(t_operation, what.c_str());
    t_cached = nullptr, t_cached_start = t_cached_end = 0;  // allocations may have changed since
    work();
    t_operation = outer;
    t_cached = nullptr, t_cached_start = t_cached_end = 0;
  };
}

void mark_written(const void* p, std::size_t bytes) {
  std::uintptr_t start = 0;
  const Allocation* a = find_allocation(p, bytes, &start);
  if (a == nullptr || a->written.empty()) return;
  auto& w = const_cast<Allocation*>(a)->written;
  std::memset(w.data() + (reinterpret_cast<std::uintptr_t>(p) - start), 1, bytes);
}

}  // namespace dropnet::emulated

// The calls GCC's outline kernel-address instrumentation makes (see memory_check.hpp). Under ASan its
// runtime defines them, and the kernels are compiled with ASan instead.
#if !defined(__SANITIZE_ADDRESS__)
using dropnet::emulated::on_access;
extern "C" {
#define DROPNET_ACCESS_HOOKS(N)                                                  \
  void __asan_load##N##_noabort(void* p) { on_access(p, N, false); }               \
  void __asan_store##N##_noabort(void* p) { on_access(p, N, true); }
DROPNET_ACCESS_HOOKS(1)
DROPNET_ACCESS_HOOKS(2)
DROPNET_ACCESS_HOOKS(4)
DROPNET_ACCESS_HOOKS(8)
DROPNET_ACCESS_HOOKS(16)
#undef DROPNET_ACCESS_HOOKS
void __asan_loadN_noabort(void* p, long n) { on_access(p, static_cast<std::size_t>(n), false); }
void __asan_storeN_noabort(void* p, long n) { on_access(p, static_cast<std::size_t>(n), true); }
void __asan_handle_no_return() {}
}
#endif
