// memory_check.cpp: memcheck, initcheck and racecheck for the instrumented code of the emulated device (see
// memory_check.hpp). Test-only. Compiled without instrumentation.
#include "emulated_device/memory_check.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "emulated_device/block_scheduler.hpp"
#include "emulated_device/device_state.hpp"
#include "emulated_device/runtime_state.hpp"

namespace dropnet::emulated {
namespace {

// Whether the environment variable `name` is "1".
bool environment_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "1") == 0;
}
// Atomic: host threads of a test read them while another may switch them (the shadow state below is the
// running host thread's own, and the allocations it consults change only under the runtime's mutex, which
// queued work holds while it runs).
std::atomic<bool> g_initcheck{environment_flag("DROPNET_EMULATION_INITCHECK")};
std::atomic<bool> g_racecheck{environment_flag("DROPNET_EMULATION_RACECHECK")};

// racecheck's shadow of one 4-byte granule during a launch: its last write and last read.
struct Access {
  ThreadPosition at;
  bool valid = false;
};
struct Granule {
  Access write, read;
};
// The shadows of the memory the running launch touched: one flat array per allocation (by start address)
// and one for the shared-memory section, made on first touch and dropped when the launch ends.
struct Shadow {
  std::uintptr_t start = 0;
  std::vector<Granule> granules;
};
thread_local std::unordered_map<std::uintptr_t, Shadow> t_shadows;
thread_local Shadow* t_last_shadow = nullptr;  // the shadow the last checked access fell in
thread_local bool t_race_reported = false;     // one report per launch
thread_local int t_atomic_depth = 0;

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

// Whether `before` happens before `now` by what CUDA guarantees within a launch (see memory_check.hpp).
bool ordered(const ThreadPosition& before, const ThreadPosition& now, bool shared) {
  if (before.block != now.block) return shared;  // shared memory: another block's own copy
  if (before.thread == now.thread) return true;
  if (now.block_epoch > before.block_epoch) return true;
  return before.thread / 32 == now.thread / 32 && now.warp_epoch > before.warp_epoch;
}

std::string position(const ThreadPosition& p) {
  return "thread " + std::to_string(p.thread) + " of block " + std::to_string(p.block);
}

// racecheck of one access by the running kernel thread to [base, end), which holds [addr, addr + n): the
// device allocation `a`, or the shared-memory section when `a` is null.
void check_race(std::uintptr_t addr, std::size_t n, bool store, const Allocation* a, std::uintptr_t base,
                std::uintptr_t end) {
  const bool shared = a == nullptr;
  ThreadPosition now;
  if (t_atomic_depth > 0 || !thread_position(now)) return;
  Shadow* sh = t_last_shadow;
  if (sh == nullptr || sh->start != base) {
    sh = &t_shadows[base];
    if (sh->granules.empty()) {
      sh->start = base;
      sh->granules.resize((end - base + 3) / 4);
    }
    t_last_shadow = sh;
  }
  for (std::uintptr_t g = (addr - base) / 4; g * 4 < addr + n - base; ++g) {
    Granule& cell = sh->granules[g];
    const Access* conflict = nullptr;
    const char* kind = nullptr;
    if (cell.write.valid && !ordered(cell.write.at, now, shared)) conflict = &cell.write, kind = store ? "write" : "read";
    else if (store && cell.read.valid && !ordered(cell.read.at, now, shared)) conflict = &cell.read, kind = "write";
    if (conflict != nullptr && !t_race_reported) {
      t_race_reported = true;
      device_fault(cudaErrorLaunchFailure,
                   who() + ": data race on " + (shared ? std::string("shared memory") : describe(*a)) + " at offset " +
                       std::to_string(g * 4) + ": " +
                       position(now) + " " + kind + "s it, " + position(conflict->at) +
                       (conflict == &cell.write ? " wrote it" : " read it") +
                       ", and no __syncthreads(), warp barrier or atomic orders the two (racecheck)");
    }
    (store ? cell.write : cell.read) = Access{now, true};
  }
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
    if (a == nullptr) {  // host memory: a local, a double's own buffer, or __shared__
      if (racecheck_enabled() && t_kernel != nullptr) {
        const char *shared_begin = nullptr, *shared_end = nullptr;
        shared_memory_range(shared_begin, shared_end);
        const auto b = reinterpret_cast<std::uintptr_t>(shared_begin), e = reinterpret_cast<std::uintptr_t>(shared_end);
        if (shared_begin != nullptr && addr >= b && addr + n <= e)
          check_race(addr, n, store, nullptr, b, e);
      }
      return;
    }
  }
  if (addr < start || addr + n > start + a->bytes) {
    const long long offset = static_cast<long long>(addr - start);
    device_fault(cudaErrorIllegalAddress, who() + (store ? " wrote " : " read ") + std::to_string(n) +
                                              " byte(s) at offset " + std::to_string(offset) + " of " + describe(*a) +
                                              (addr < start ? ": before its start" : ": past its end") + " (memcheck)");
    return;
  }
  t_cached = a, t_cached_start = start, t_cached_end = start + a->bytes;
  if (racecheck_enabled() && t_kernel != nullptr) check_race(addr, n, store, a, start, start + a->bytes);
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

bool set_initcheck(bool on) { return g_initcheck.exchange(on); }
bool initcheck_enabled() { return g_initcheck.load(std::memory_order_relaxed); }
bool set_racecheck(bool on) { return g_racecheck.exchange(on); }
bool racecheck_enabled() { return g_racecheck.load(std::memory_order_relaxed); }
void begin_atomic() { ++t_atomic_depth; }
void end_atomic() { --t_atomic_depth; }

void set_running_kernel(const char* name) {
  t_kernel = name;
  t_shadows.clear();  // racecheck looks within one launch: launches on a stream are ordered
  t_last_shadow = nullptr;
  t_race_reported = false;
}

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

// The calls GCC's ThreadSanitizer instrumentation makes (see memory_check.hpp): every load and store, by
// size, and function entry and exit (unused here). Not under a real sanitizer, whose runtime defines them
// (the kernels are then compiled with that sanitizer instead).
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
using dropnet::emulated::on_access;
extern "C" {
#define DROPNET_ACCESS_HOOKS(N)                                                            \
  void __tsan_read##N(void* p) { on_access(p, N, false); }                                  \
  void __tsan_write##N(void* p) { on_access(p, N, true); }                                  \
  void __tsan_unaligned_read##N(void* p) { on_access(p, N, false); }                        \
  void __tsan_unaligned_write##N(void* p) { on_access(p, N, true); }
DROPNET_ACCESS_HOOKS(1)
DROPNET_ACCESS_HOOKS(2)
DROPNET_ACCESS_HOOKS(4)
DROPNET_ACCESS_HOOKS(8)
DROPNET_ACCESS_HOOKS(16)
#undef DROPNET_ACCESS_HOOKS
void __tsan_read_range(void* p, unsigned long n) { on_access(p, n, false); }
void __tsan_write_range(void* p, unsigned long n) { on_access(p, n, true); }
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_init() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}
// std::atomic and function-local statics' guards: the operation itself, unchecked (host-side state).
unsigned char __tsan_atomic8_load(const volatile unsigned char* a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); }
void __tsan_atomic8_store(volatile unsigned char* a, unsigned char v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); }
int __tsan_atomic32_load(const volatile int* a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); }
void __tsan_atomic32_store(volatile int* a, int v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); }
long __tsan_atomic64_load(const volatile long* a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); }
void __tsan_atomic64_store(volatile long* a, long v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); }
}
#endif
