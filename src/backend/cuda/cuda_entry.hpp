// cuda_entry.hpp: what the rest of dropnet sees of the CUDA backend: the backend factory's CUDA half
// (backend/factory.cpp) and GPU memory for the memory layer (backend/memory.cpp). Plain C++ (no CUDA
// types), so that those files compile the same way in both builds; only included where DROPNET_WITH_CUDA is 1.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "backend/backend.hpp"

namespace dropnet::backend::cuda {

// cudaGetDeviceCount() > 0 (false, not an exception, when the driver or device is missing).
bool device_present() noexcept;
// A new CUDA backend on the current device with `settings`; throws DeviceError when it cannot be set up.
std::unique_ptr<Backend> make_backend(const BackendSettings& settings);
// "NVIDIA H100 80GB HBM3 (132 SMs, 79.1 GiB, CUDA 13.0, cuDNN 9.x)".
std::string describe_device();

// ---- GPU memory (backend/cuda/cuda_memory.cpp; backend/memory.hpp says what each does) ---------------
// cudaMalloc; DeviceError on a thread that is recording a CUDA graph (cudaMalloc cannot be recorded).
void* allocate_bytes(std::size_t bytes);
// cudaFree, deferred until the end of every CUDA graph capture in progress (cudaFree cannot be recorded).
void release_bytes(void* ptr) noexcept;
// Host<->device with a synchronous cudaMemcpy, device-to-device with cudaMemcpy, both on the legacy
// default stream (ordered with every backend's blocking stream); DeviceError on a recording thread.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes);
// The fill kernel on the legacy default stream; DeviceError on a recording thread.
void fill_floats(float* ptr, std::size_t count, float value);

}  // namespace dropnet::backend::cuda
