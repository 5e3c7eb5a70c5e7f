// cuda_memory.hpp: the GPU half of the memory layer (backend/memory.hpp): cudaMalloc'd tensor memory,
// its copies and fills, the device's tensor memory counts, and the registration of a CUDA graph capture,
// during which the layer refuses what cannot be recorded and defers frees. Plain C++ (no CUDA types), so
// that backend/memory.cpp compiles the same way in both builds.
//
// This is state of the device's memory, shared by every backend of the process as cudaMalloc's own pool
// is, not a backend: no op, stream or setting of any backend is reached through it.
//
// ORDERING (the rule that lets models on several host threads share the GPU). Every backend's stream is a
// non-blocking one (cudaStreamNonBlocking, device_resources.cpp): nothing orders it implicitly with the
// legacy default stream, where the calls below work, nor with another model's stream. So:
//   * copy_bytes() and fill_floats() have completed when they return (the device holds the data; the
//     legacy stream is synchronized after the copy or the fill kernel), so work a backend queues later sees
//     it, whichever stream that is;
//   * they do not wait for any backend's stream: the caller makes sure no stream still uses the memory
//     (the model synchronizes its own backend first: Sequential's entry points return with their model's
//     stream idle, checkpoints and evaluate synchronize before they read, backend/step_state.cpp's read());
//   * release_bytes() waits for the whole device (cudaDeviceSynchronize) before cudaFree returns the
//     block, so a tensor dropped while a stream still uses it (fit unwinding with steps queued) is not
//     reused under that work.
// CAPTURES AND DEVICE-WIDE CALLS. A call that synchronizes the whole device (cudaDeviceSynchronize; cudaFree,
// cudaFreeHost and cudaMallocHost may; cublasDestroy does, and the library handles' creation may) made on
// any thread invalidates every stream capture in progress on the device, whatever its capture mode, and
// fails itself. So the backend makes such calls as DeviceWideCalls, which wait for the captures in
// progress to end and hold back new ones; frees during a capture are deferred to its end instead.
// Legacy-stream work waits for no non-blocking stream, so one thread's copy never waits for, nor (as it did
// with blocking streams) invalidates, another thread's capture of its stream.
#pragma once

#include <cstddef>

#include "dropnet/device.hpp"

namespace dropnet::backend::cuda {

// ---- what backend/memory.cpp calls (backend/memory.hpp says what each does) ----------------------------
// cudaMalloc; DeviceError on a thread that is recording a CUDA graph (cudaMalloc cannot be recorded).
void* allocate_bytes(std::size_t bytes);
// cudaFree, deferred until the end of every CUDA graph capture in progress (cudaFree cannot be recorded).
void release_bytes(void* ptr) noexcept;
// A cudaMemcpy on the legacy default stream, complete on return (see ORDERING); DeviceError on a
// recording thread.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes);
// The fill kernel on the legacy default stream, complete on return; DeviceError on a recording thread.
void fill_floats(float* ptr, std::size_t count, float value);

// Frees a block that is not tensor memory (a backend's scratch: cudaMalloc; pinned staging: cudaMallocHost)
// as release_bytes() frees tensors: after the device is idle, deferred while a capture is in progress.
void release_block(void* ptr, bool pinned) noexcept;

// For its life the calling thread may make calls that synchronize the whole device (see above): it waited
// for every CUDA graph capture in progress to end, and no capture begins until it ends. A thread that is
// itself recording does not wait (its call fails its own recording, which CUDA reports). Must not be held
// while waiting for another thread that may be recording.
class DeviceWideCall {
 public:
  DeviceWideCall() noexcept;
  ~DeviceWideCall();
  DeviceWideCall(const DeviceWideCall&) = delete;
  DeviceWideCall& operator=(const DeviceWideCall&) = delete;

 private:
  bool counted_ = false;
};

// Tensor memory (everything allocate_bytes() made and release_bytes() has not returned), all backends.
struct TensorMemory {
  std::size_t bytes = 0;
  std::size_t peak_bytes = 0;  // the most `bytes` reached since reset_peak_tensor_memory()
};
TensorMemory tensor_memory() noexcept;
void reset_peak_tensor_memory() noexcept;

// Registers the calling thread as recording a CUDA graph (CudaBackend::capture) for the life of the object
// or until end(): the memory layer then refuses to allocate, copy or fill on this thread (DeviceError, which
// fails the capture cleanly), and any thread's release_bytes() is deferred until no capture is in progress.
// Made only once no DeviceWideCall is in progress (it waits for them).
class CaptureRegistration {
 public:
  CaptureRegistration();
  ~CaptureRegistration() { end(); }
  CaptureRegistration(const CaptureRegistration&) = delete;
  CaptureRegistration& operator=(const CaptureRegistration&) = delete;
  // Ends the registration and frees what was deferred (once no other capture is in progress); returns how
  // many of the deferred frees this thread made during the capture (the step freed memory it may use).
  std::size_t end() noexcept;

 private:
  bool active_ = true;
};

}  // namespace dropnet::backend::cuda
