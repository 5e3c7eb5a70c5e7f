// memory.hpp: raw memory on a device, the layer under Tensor storage and DeviceArray. It allocates, frees,
// copies and fills per device (host memory for Device::CPU, GPU memory for Device::CUDA) and knows nothing
// of backends or ops: core (src/core/tensor.cpp) depends on it, not on the op contract (backend.hpp).
//
// Ordering on the GPU (backend/cuda/cuda_memory.hpp, ORDERING): copy() and fill() have completed when they
// return, so work any backend queues afterwards sees their result; they do NOT wait for work a backend has
// queued before: every backend's stream is non-blocking, so that models on several host threads never wait
// for one another. Whoever reads or writes memory that a model's stream may still use synchronizes that
// model's backend first (Backend::synchronize); Sequential's entry points return with their model's stream
// idle. release() waits for the device (cudaFree) before the memory can be reused. Inside a training step,
// fills and device-to-device copies go through the model's backend instead (Backend::fill, Backend::copy),
// on its stream, so that a CUDA graph records them; these calls are refused (DeviceError) on a thread that
// is recording a CUDA graph.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dropnet/device.hpp"

namespace dropnet::backend::memory {

// `bytes` of memory on `device` (64-byte aligned on the host), contents undefined; null for 0 bytes.
// Throws DeviceUnavailable for CUDA without a usable GPU (or a build without CUDA), std::bad_alloc or
// DeviceError when the allocation fails.
void* allocate(Device device, std::size_t bytes);
// How many buffers allocate() has handed out in this process, on any device (tests count the buffers a
// pass allocates: an inference pass allocates none per batch).
std::uint64_t allocations() noexcept;
// Returns memory from allocate() (null is ignored).
void release(Device device, void* ptr) noexcept;
// Copies `bytes` between any two devices.
void copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes);
// Sets `count` floats at `ptr` on `device` to `value`.
void fill(float* ptr, Device device, std::size_t count, float value);

}  // namespace dropnet::backend::memory
