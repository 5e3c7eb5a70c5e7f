// cuda_device.cpp: device discovery, the device description and its free memory (cuda_device.hpp).
#include "backend/cuda/cuda_device.hpp"

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdio>

#include "backend/cuda/cuda_check.hpp"

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

MemoryInfo memory_info() {
  MemoryInfo info;
  CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  return info;
}

}  // namespace dropnet::backend::cuda
