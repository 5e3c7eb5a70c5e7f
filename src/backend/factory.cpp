// factory.cpp: make_backend(), the only place that chooses between the CPU and CUDA backends. Each call
// makes a new backend context; nothing here is cached or shared.
#include <memory>

#include "backend/backend.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "dropnet/errors.hpp"

#if DROPNET_WITH_CUDA
#include "backend/cuda/cuda_backend.hpp"
#endif

namespace dropnet::backend {

std::unique_ptr<Backend> make_backend(Device device, const BackendSettings& settings) {
  if (device == Device::CPU) return std::make_unique<cpu::CpuBackend>(settings);
#if DROPNET_WITH_CUDA
  if (!cuda_available()) throw DeviceUnavailable("no CUDA GPU is visible (or DROPNET_DISABLE_CUDA is set)");
  return std::make_unique<cuda::CudaBackend>(settings);
#else
  throw DeviceUnavailable("this dropnet was built without CUDA");
#endif
}

}  // namespace dropnet::backend
