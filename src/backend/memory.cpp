// memory.cpp: raw memory per device (memory.hpp). Host memory here; GPU memory in
// backend/cuda/cuda_memory.cpp.
#include "backend/memory.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "dropnet/errors.hpp"

#if DROPNET_WITH_CUDA
#include "backend/cuda/cuda_memory.hpp"
#endif

namespace dropnet::backend::memory {
#if !DROPNET_WITH_CUDA
namespace {
[[noreturn]] void no_cuda() { throw DeviceUnavailable("this dropnet was built without CUDA"); }
}  // namespace
#endif

namespace {
std::atomic<std::uint64_t> allocation_count{0};
}  // namespace

std::uint64_t allocations() noexcept { return allocation_count.load(std::memory_order_relaxed); }

void* allocate(Device device, std::size_t bytes) {
  if (bytes == 0) return nullptr;
  allocation_count.fetch_add(1, std::memory_order_relaxed);
  if (device == Device::CPU) {
    // 64-byte alignment for AVX-512 loads; aligned_alloc wants a size that is a multiple of it.
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
#if DROPNET_WITH_CUDA
  if (!cuda_available()) throw DeviceUnavailable("no CUDA GPU is visible (or DROPNET_DISABLE_CUDA is set)");
  return cuda::allocate_bytes(bytes);
#else
  no_cuda();
#endif
}

void release(Device device, void* ptr) noexcept {
  if (ptr == nullptr) return;
  if (device == Device::CPU) {
    std::free(ptr);
    return;
  }
#if DROPNET_WITH_CUDA
  cuda::release_bytes(ptr);
#endif
}

void copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if DROPNET_WITH_CUDA
  cuda::copy_bytes(dst, dst_device, src, src_device, bytes);
#else
  no_cuda();
#endif
}

void fill(float* ptr, Device device, std::size_t count, float value) {
  if (count == 0) return;
  if (device == Device::CPU) {
    std::fill(ptr, ptr + count, value);
    return;
  }
#if DROPNET_WITH_CUDA
  cuda::fill_floats(ptr, count, value);
#else
  no_cuda();
#endif
}

}  // namespace dropnet::backend::memory
