// cuda_entry.hpp: what the rest of dropnet sees of the CUDA backend. Plain C++ (no CUDA types), so that
// dispatch.cpp compiles the same way in both builds; only included where DROPNET_WITH_CUDA is 1.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "backend/backend.hpp"

namespace dropnet::backend::cuda {

// cudaGetDeviceCount() > 0 (false, not an exception, when the driver or device is missing).
bool device_present() noexcept;
// The CUDA backend on the current device; throws DeviceError when it cannot be set up.
std::unique_ptr<Backend> make_backend();
// Copies between any two of host and device memory: host<->device with a synchronous cudaMemcpy (ordered
// with the backend's blocking stream; DeviceError while that stream is being recorded), device-to-device
// with cudaMemcpyAsync on the backend's stream (recordable).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes);
// "NVIDIA H100 80GB HBM3 (132 SMs, 79.1 GiB, CUDA 13.0, cuDNN 9.x)".
std::string describe_device();

}  // namespace dropnet::backend::cuda
