// dispatch.cpp: the only place that chooses between the CPU and CUDA backends.
#include <cstring>
#include <memory>
#include <mutex>

#include "backend/backend.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "dropnet/errors.hpp"

#if DROPNET_WITH_CUDA
#include "backend/cuda/cuda_entry.hpp"
#endif

namespace dropnet::backend {

Backend& backend_for(Device device) {
  if (device == Device::CPU) {
    static cpu::CpuBackend cpu_backend;
    return cpu_backend;
  }
#if DROPNET_WITH_CUDA
  if (!cuda_available()) throw DeviceUnavailable("no CUDA GPU is visible (or DROPNET_DISABLE_CUDA is set)");
  static std::unique_ptr<Backend> cuda_backend = cuda::make_backend();
  return *cuda_backend;
#else
  throw DeviceUnavailable("this dropnet was built without CUDA");
#endif
}

void copy(float* dst, Device dst_device, const float* src, Device src_device, std::size_t count) {
  memory::copy(dst, dst_device, src, src_device, count * sizeof(float));
}

namespace memory {

void* allocate(Device device, std::size_t bytes) {
  return backend_for(device).allocate((bytes + sizeof(float) - 1) / sizeof(float));
}

void release(Device device, void* ptr) noexcept { backend_for(device).deallocate(static_cast<float*>(ptr)); }

void copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if DROPNET_WITH_CUDA
  cuda::copy_bytes(dst, dst_device, src, src_device, bytes);
#else
  throw DeviceUnavailable("this dropnet was built without CUDA");
#endif
}

}  // namespace memory

}  // namespace dropnet::backend
