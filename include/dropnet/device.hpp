// device.hpp: where tensors live and ops run.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "dropnet/export.hpp"

namespace dropnet {

enum class Device { CPU, CUDA };

// True when this library was built with the CUDA backend.
DROPNET_EXPORT bool cuda_compiled() noexcept;

// True when the CUDA backend is compiled in, a GPU is visible and DROPNET_DISABLE_CUDA is unset.
// Computed once and cached.
DROPNET_EXPORT bool cuda_available() noexcept;

// "auto" (CUDA when available, else CPU), "cpu" or "cuda". Throws InvalidArgument for other names and
// DeviceUnavailable for "cuda" when cuda_available() is false.
DROPNET_EXPORT Device resolve_device(std::string_view name);

// "cpu" or "cuda".
DROPNET_EXPORT std::string_view to_string(Device device) noexcept;

// A human description of the hardware behind `device`, for benchmark and training headers:
// the CPU model and thread count, or the GPU name, SM count and memory.
DROPNET_EXPORT std::string describe(Device device);

// Memory of `device` in bytes, now: on CUDA cudaMemGetInfo on the current device (free counts out what every
// process and model holds, the CUDA context included); on the CPU MemAvailable and MemTotal of
// /proc/meminfo (both 0 where it cannot be read). For checking, before starting several models at once,
// that they fit. Throws DeviceUnavailable for CUDA when cuda_available() is false.
struct DeviceMemory {
  std::size_t free_bytes = 0, total_bytes = 0;
};
DROPNET_EXPORT DeviceMemory device_memory(Device device);

}  // namespace dropnet
