// cuda_memory.hpp: the GPU half of the memory layer (backend/memory.hpp), as the CUDA backend sees it:
// the device's tensor memory counts, and the registration of a CUDA graph capture, during which the layer
// refuses what cannot be recorded and defers frees.
//
// This is state of the device's memory, shared by every backend of the process as cudaMalloc's own pool
// is, not a backend: no op, stream or setting of any backend is reached through it.
#pragma once

#include <cstddef>

namespace dropnet::backend::cuda {

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
