// memory.cpp: device and pinned memory and copies of the emulated CUDA runtime (rules: runtime_state.hpp).
// Test-only.
//
// Device memory is host memory that the runtime tracks, so that copies and the library doubles can check
// that a pointer is device memory, and so that it can be guarded:
//   - new memory is filled with 0xFF bytes (a NaN in every float): a kernel that reads memory nobody wrote
//     computes NaN, and a test notices;
//   - every allocation is followed by guard bytes (the rest of its 256-byte granule and a 256-byte
//     redzone) holding the same fill; after every queued op the runtime checks them, so a write past the
//     end of a buffer (an off-by-one bound) becomes a sticky device fault naming the op and the buffer.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "emulated_device/device_state.hpp"
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
  void* p = std::aligned_alloc(kGranule, rounded + kRedzone);
  if (p == nullptr) return fail(cudaErrorMemoryAllocation);
  std::memset(p, kFill, rounded + kRedzone);
  r.allocations.emplace(reinterpret_cast<std::uintptr_t>(p), Allocation{bytes, rounded + kRedzone - bytes, pinned});
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
  r.allocations.erase(found);
  std::free(ptr);
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
  Runtime& r = runtime();
  for (const auto& [start, a] : r.allocations) {
    const auto* guard = reinterpret_cast<const unsigned char*>(start + a.bytes);
    for (std::size_t i = 0; i < a.guarded; ++i) {
      if (guard[i] == kFill) continue;
      device_fault(cudaErrorIllegalAddress,
                   what + " wrote past the end of a " + std::to_string(a.bytes) + "-byte " +
                       (a.pinned ? "pinned host" : "device") + " allocation (byte " + std::to_string(a.bytes + i) +
                       " from its start)");
      std::memset(const_cast<unsigned char*>(guard), kFill, a.guarded);  // report each overrun once
      break;
    }
  }
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
    e = enqueue(stream, "cudaMemcpyAsync", [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
  } else {
    e = enqueue(stream, "cudaMemcpyAsync", [dst, src, bytes] { std::memmove(dst, src, bytes); });
  }
  if (e != cudaSuccess) return fail(e);
  if (pageable_dst) return fail(run_until(s, r.next_seq - 1));
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  std::lock_guard lock(runtime().mutex);
  if (bytes == 0) return cudaSuccess;
  if (!is_device(ptr, bytes)) return fail(cudaErrorInvalidValue);
  return fail(enqueue(stream, "cudaMemsetAsync", [ptr, value, bytes] { std::memset(ptr, value, bytes); }));
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  std::lock_guard lock(runtime().mutex);
  if (const cudaError_t e = cudaMemsetAsync(ptr, value, bytes, nullptr); e != cudaSuccess) return e;
  return fail(run_until(&runtime().legacy, UINT64_MAX));
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard lock(runtime().mutex);
  if (free_bytes == nullptr || total_bytes == nullptr) return fail(cudaErrorInvalidValue);
  std::size_t used = 0;
  for (const auto& [start, a] : runtime().allocations)
    if (!a.pinned) used += a.bytes;
  *total_bytes = std::size_t{16} << 30;
  *free_bytes = used < *total_bytes ? *total_bytes - used : 0;
  return cudaSuccess;
}

}  // extern "C"
