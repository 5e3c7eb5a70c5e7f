// memory.cpp: device and pinned memory and copies of the emulated CUDA runtime (rules: runtime_state.hpp).
// Test-only.
//
// Device memory is host memory that the runtime tracks, so that copies and the library doubles can check
// that a pointer is device memory, and so that it can be guarded:
//   - new memory is filled with 0xFF bytes (a NaN in every float): a kernel that reads memory nobody wrote
//     computes NaN, and a test notices; initcheck (memory_check.hpp) reports the read itself;
//   - every allocation has guard bytes before its start (a 256-byte redzone) and after its end (the rest of
//     its 256-byte granule and a 256-byte redzone) holding the same fill. The instrumented kernels and
//     doubles fault at the instruction that reaches into them (memory_check.cpp); for everything else the
//     runtime checks the fill after every queued op, so a write before the start or past the end becomes a
//     sticky device fault naming the op and the buffer. Under ASan the guard zones are poisoned instead.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "emulated_device/device_state.hpp"
#include "emulated_device/memory_check.hpp"
#include "emulated_device/runtime_state.hpp"

namespace dropnet::emulated {
namespace {

constexpr std::size_t kGranule = 256;  // cudaMalloc's alignment
constexpr std::size_t kRedzone = 256;
constexpr unsigned char kFill = 0xFF;

cudaError_t allocate(void** ptr, std::size_t bytes, bool pinned) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  if (r.sticky != cudaSuccess) return fail(r.sticky);
  if (const cudaError_t e = forbidden_during_capture(); e != cudaSuccess) return fail(e);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;  // CUDA returns success and no memory
  const std::size_t rounded = (bytes + kGranule - 1) / kGranule * kGranule;
  auto* base = static_cast<unsigned char*>(std::aligned_alloc(kGranule, kRedzone + rounded + kRedzone));
  if (base == nullptr) return fail(cudaErrorMemoryAllocation);
  std::memset(base, kFill, kRedzone + rounded + kRedzone);
  unsigned char* p = base + kRedzone;
  static std::uint64_t next_id = 1;
  Allocation a{.bytes = bytes, .guarded = rounded + kRedzone - bytes, .pinned = pinned, .front = kRedzone,
               .id = next_id++};
  if (!pinned && initcheck_enabled()) a.written.assign(bytes, 0);
#if defined(__SANITIZE_ADDRESS__)
  ASAN_POISON_MEMORY_REGION(base, kRedzone);
  ASAN_POISON_MEMORY_REGION(p + bytes, a.guarded);
#endif
  r.allocations.emplace(reinterpret_cast<std::uintptr_t>(p), std::move(a));
  *ptr = p;
  return cudaSuccess;
}

cudaError_t release(void* ptr, bool pinned) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  if (ptr == nullptr) return cudaSuccess;
  if (const cudaError_t e = forbidden_during_capture(); e != cudaSuccess) return fail(e);
  auto found = r.allocations.find(reinterpret_cast<std::uintptr_t>(ptr));
  if (found == r.allocations.end() || found->second.pinned != pinned) return fail(cudaErrorInvalidValue);
  // cudaFree waits for the device: work still queued may use this memory.
  const cudaError_t e = run_everything();
  check_guards(pinned ? "cudaFreeHost" : "cudaFree");
  unsigned char* base = static_cast<unsigned char*>(ptr) - found->second.front;
#if defined(__SANITIZE_ADDRESS__)
  ASAN_UNPOISON_MEMORY_REGION(base, found->second.front + found->second.bytes + found->second.guarded);
#endif
  r.allocations.erase(found);
  std::free(base);
  return e == cudaSuccess ? cudaSuccess : fail(e);
}

bool is_device(const void* p, std::size_t bytes) {
  const Allocation* a = find_allocation(p, bytes);
  return a != nullptr && !a->pinned;
}

bool is_pinned(const void* p, std::size_t bytes) {
  const Allocation* a = find_allocation(p, bytes);
  return a != nullptr && a->pinned;
}

// cudaMemcpyDefault infers the direction from the pointers (unified addressing).
cudaMemcpyKind infer(const void* dst, const void* src, std::size_t bytes) {
  const bool d = is_device(dst, bytes), s = is_device(src, bytes);
  return d && s ? cudaMemcpyDeviceToDevice : d ? cudaMemcpyHostToDevice : s ? cudaMemcpyDeviceToHost
                                                                        : cudaMemcpyHostToHost;
}

// The pointers must be what `kind` says, over the whole range (CUDA reports cudaErrorInvalidValue).
bool valid_copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  switch (kind) {
    case cudaMemcpyHostToDevice: return is_device(dst, bytes) && !is_device(src, 1);
    case cudaMemcpyDeviceToHost: return is_device(src, bytes) && !is_device(dst, 1);
    case cudaMemcpyDeviceToDevice: return is_device(src, bytes) && is_device(dst, bytes);
    case cudaMemcpyHostToHost: return !is_device(src, 1) && !is_device(dst, 1);
    default: return false;
  }
}

}  // namespace

const Allocation* find_allocation(const void* p, std::size_t bytes, std::uintptr_t* start) {
  const auto& allocations = runtime().allocations;
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  auto it = allocations.upper_bound(addr);
  if (it == allocations.begin()) return nullptr;
  --it;
  if (addr + bytes > it->first + it->second.bytes || addr < it->first) return nullptr;
  if (start != nullptr) *start = it->first;
  return &it->second;
}

bool is_device_range(const void* p, std::size_t bytes) {
  std::lock_guard lock(runtime().mutex);
  return is_device(p, bytes);
}

void check_guards(const std::string& what) {
#if defined(__SANITIZE_ADDRESS__)
  (void)what;  // the guard zones are poisoned: ASan reports an access at the instruction
#else
  Runtime& r = runtime();
  if (r.sticky != cudaSuccess) return;  // the fault is reported (memcheck saw the store itself)
  for (const auto& [start, a] : r.allocations) {
    auto report = [&](unsigned char* zone, std::size_t size, const std::string& where) {
      for (std::size_t i = 0; i < size; ++i) {
        if (zone[i] == kFill) continue;
        device_fault(cudaErrorIllegalAddress,
                     what + " wrote " + where + " a " + std::to_string(a.bytes) + "-byte " +
                         (a.pinned ? "pinned host" : "device") + " allocation (byte " +
                         std::to_string(static_cast<long long>(zone + i - reinterpret_cast<unsigned char*>(start))) +
                         " from its start)");
        std::memset(zone, kFill, size);  // report each overrun once
        return;
      }
    };
    report(reinterpret_cast<unsigned char*>(start + a.bytes), a.guarded, "past the end of");
    report(reinterpret_cast<unsigned char*>(start - a.front), a.front, "before the start of");
  }
#endif
}

std::size_t total_device_memory() {
  static const std::size_t total = [] {
    const char* mib = std::getenv("DROPNET_EMULATION_MEMORY_MIB");
    return mib != nullptr && std::atoll(mib) > 0 ? std::size_t(std::atoll(mib)) << 20 : std::size_t{16} << 30;
  }();
  return total;
}

}  // namespace dropnet::emulated

using namespace dropnet::emulated;

extern "C" {

cudaError_t cudaMalloc(void** ptr, size_t bytes) { return allocate(ptr, bytes, false); }
cudaError_t cudaFree(void* ptr) { return release(ptr, false); }
cudaError_t cudaMallocHost(void** ptr, size_t bytes) { return allocate(ptr, bytes, true); }
cudaError_t cudaFreeHost(void* ptr) { return release(ptr, true); }

// On the legacy stream: waits for the legacy stream and every blocking stream, then copies.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  if (r.sticky != cudaSuccess) return fail(r.sticky);
  if (bytes == 0) return cudaSuccess;
  if (kind == cudaMemcpyDefault) kind = infer(dst, src, bytes);
  if (!valid_copy(dst, src, bytes, kind)) return fail(cudaErrorInvalidValue);
  if (const cudaError_t e = implicit_legacy_dependency(); e != cudaSuccess) return fail(e);
  if (const cudaError_t e = run_legacy_and_blocking(); e != cudaSuccess) return fail(e);
  std::memmove(dst, src, bytes);
  mark_written(dst, bytes);
  return cudaSuccess;
}

// Queued on `stream`, with CUDA's rules for host memory that is not pinned: a host-to-device copy reads
// the host bytes before the call returns (the driver stages them), a device-to-host copy completes before
// the call returns. From or to pinned memory the copy happens when the stream runs it, so the host must
// wait before it reads (or reuses) that memory. During capture only device and pinned memory can be
// recorded.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  if (r.sticky != cudaSuccess) return fail(r.sticky);
  bool ok = false;
  Stream* s = resolve(stream, &ok);
  if (!ok) return fail(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (kind == cudaMemcpyDefault) kind = infer(dst, src, bytes);
  if (!valid_copy(dst, src, bytes, kind)) return fail(cudaErrorInvalidValue);
  const bool host_src = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost;
  const bool host_dst = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost;
  const bool pageable_src = host_src && !is_pinned(src, bytes), pageable_dst = host_dst && !is_pinned(dst, bytes);
  if (s->capture && (pageable_src || pageable_dst)) {
    invalidate(*s->capture, cudaErrorStreamCaptureUnsupported);
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  cudaError_t e = cudaSuccess;
  if (pageable_src) {
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                                static_cast<const unsigned char*>(src) + bytes);
    e = enqueue(stream, "cudaMemcpyAsync", [dst, staged] {
      std::memcpy(dst, staged->data(), staged->size());
      mark_written(dst, staged->size());
    });
  } else {
    e = enqueue(stream, "cudaMemcpyAsync", [dst, src, bytes] {
      std::memmove(dst, src, bytes);
      mark_written(dst, bytes);
    });
  }
  if (e != cudaSuccess) return fail(e);
  if (pageable_dst) return fail(run_until(s, r.next_seq - 1));
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  std::lock_guard lock(runtime().mutex);
  if (bytes == 0) return cudaSuccess;
  if (!is_device(ptr, bytes)) return fail(cudaErrorInvalidValue);
  return fail(enqueue(stream, "cudaMemsetAsync", [ptr, value, bytes] {
    std::memset(ptr, value, bytes);
    mark_written(ptr, bytes);
  }));
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  std::lock_guard lock(runtime().mutex);
  if (const cudaError_t e = cudaMemsetAsync(ptr, value, bytes, nullptr); e != cudaSuccess) return e;
  return fail(run_until(&runtime().legacy, UINT64_MAX));
}

// A device of total_device_memory() (cudaGetDeviceProperties' totalGlobalMem: 16 GiB unless a test sets
// DROPNET_EMULATION_MEMORY_MIB), of which what cudaMalloc has handed out and
// not freed is taken: free falls and rises with the device allocations as on a GPU (pinned host memory does
// not count; no CUDA context or fragmentation is modelled, so free + allocated == total exactly).
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard lock(runtime().mutex);
  if (free_bytes == nullptr || total_bytes == nullptr) return fail(cudaErrorInvalidValue);
  std::size_t used = 0;
  for (const auto& [start, a] : runtime().allocations)
    if (!a.pinned) used += a.bytes;
  *total_bytes = total_device_memory();
  *free_bytes = used < *total_bytes ? *total_bytes - used : 0;
  return cudaSuccess;
}

}  // extern "C"
