// cuda_entry.cpp: device discovery, the CUDA backend factory and the device description (cuda_entry.hpp;
// GPU memory is in cuda_memory.cpp).
#include "backend/cuda/cuda_entry.hpp"

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdio>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "dropnet/errors.hpp"

namespace dropnet::backend::cuda {

bool device_present() noexcept {
  int count = 0;
  // Without a driver this returns cudaErrorNoDevice or cudaErrorInsufficientDriver; neither is sticky.
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

std::unique_ptr<Backend> make_backend(const BackendSettings& settings) {
  if (!device_present()) throw DeviceUnavailable("no CUDA device is visible (cudaGetDeviceCount found none)");
  return std::make_unique<CudaBackend>(settings);
}

std::string describe_device() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int runtime = 0;
  CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  const std::size_t cudnn = cudnnGetVersion();  // major * 10000 + minor * 100 + patch (cuDNN 9)
  char text[512];
  std::snprintf(text, sizeof text, "%s (%d SMs, %.1f GiB, compute %d.%d, CUDA %d.%d, cuDNN %zu.%zu.%zu)", prop.name,
                prop.multiProcessorCount, static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0),
                prop.major, prop.minor, runtime / 1000, (runtime % 1000) / 10, cudnn / 10000, (cudnn % 10000) / 100,
                cudnn % 100);
  return text;
}

}  // namespace dropnet::backend::cuda
