// cuda_device.hpp: device discovery, apart from the CUDA backend: whether a GPU is there, what it is and
// how much of its memory is free. What core/device.cpp reaches of CUDA; it knows no op, stream, handle or
// backend, so core's Device does not depend on the backend (the backend factory is backend/factory.cpp,
// the GPU memory layer cuda_memory.hpp). Plain C++ (no CUDA types), only included where DROPNET_WITH_CUDA is 1.
//
// Nothing here is cached: core/device.cpp caches cuda_available() (a constant of the process) itself, and
// every call is safe from any host thread (the CUDA runtime's queries are).
#pragma once

#include <cstddef>
#include <string>

namespace dropnet::backend::cuda {

// cudaGetDeviceCount() > 0 (false, not an exception, when the driver or device is missing).
bool device_present() noexcept;

// "NVIDIA H100 80GB HBM3 (132 SMs, 79.1 GiB, compute 9.0, CUDA 13.0, cuDNN 9.x.y)", for the current device.
// Throws DeviceError when the runtime cannot be asked.
std::string describe_device();

// cudaMemGetInfo on the current device: what is free now (every process's and every model's allocations
// and the CUDA context itself taken away) and the device's total. Throws DeviceError.
struct MemoryInfo {
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
};
MemoryInfo memory_info();

}  // namespace dropnet::backend::cuda
