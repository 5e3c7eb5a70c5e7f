// cuda_memory.cpp: GPU memory for the memory layer (backend/memory.hpp, cuda_memory.hpp).
#include "backend/cuda/cuda_memory.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_check.hpp"
#include "dropnet/errors.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {
namespace {

// The device's tensor memory and the captures in progress. One per process, as the device's memory is.
struct MemoryState {
  std::mutex mutex;  // tensors may be freed from any thread
  std::unordered_map<const void*, std::size_t> allocations;
  TensorMemory counts;
  std::vector<std::thread::id> capturing;  // threads inside CudaBackend::capture (one entry per capture)
  // Frees deferred while a capture was in progress, each with the thread that made it.
  std::vector<std::pair<void*, std::thread::id>> deferred;
};

MemoryState& state() {
  static MemoryState s;
  return s;
}

bool this_thread_captures() {
  MemoryState& s = state();
  const std::thread::id me = std::this_thread::get_id();
  std::lock_guard lock(s.mutex);
  return std::find(s.capturing.begin(), s.capturing.end(), me) != s.capturing.end();
}

// The legacy default stream's work (this thread's copy or fill, and any other thread's) has completed:
// a pageable host-to-device cudaMemcpy may return before its DMA lands, a device-to-device one and the
// fill kernel are asynchronous, and the backends' non-blocking streams are not ordered after any of them.
void finish_legacy_stream() { CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy)); }

}  // namespace

TensorMemory tensor_memory() noexcept {
  std::lock_guard lock(state().mutex);
  return state().counts;
}

void reset_peak_tensor_memory() noexcept {
  std::lock_guard lock(state().mutex);
  state().counts.peak_bytes = state().counts.bytes;
}

CaptureRegistration::CaptureRegistration() {
  std::lock_guard lock(state().mutex);
  state().capturing.push_back(std::this_thread::get_id());
}

std::size_t CaptureRegistration::end() noexcept {
  if (!active_) return 0;
  active_ = false;
  MemoryState& s = state();
  const std::thread::id me = std::this_thread::get_id();
  std::vector<std::pair<void*, std::thread::id>> to_free;
  std::size_t by_me = 0;
  {
    std::lock_guard lock(s.mutex);
    s.capturing.erase(std::find(s.capturing.begin(), s.capturing.end(), me));
    for (auto& [ptr, thread] : s.deferred) {
      if (thread == me) {
        ++by_me;
        thread = std::thread::id{};  // counted once, by this capture
      }
    }
    if (s.capturing.empty()) to_free.swap(s.deferred);
  }
  for (const auto& entry : to_free) CUDA_CHECK_LOG(cudaFree(entry.first));
  return by_me;
}

void* allocate_bytes(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  // cudaMalloc cannot be recorded, and a buffer made by the recorded step would not be made by its replays.
  if (this_thread_captures())
    throw DeviceError("a device tensor of " + std::to_string(bytes) + " bytes would be allocated during CUDA graph "
                      "capture (the uncaptured step before the recorded one must run the same ops on the same "
                      "shapes)");
  void* ptr = nullptr;
  CUDA_CHECK(cudaMalloc(&ptr, bytes));
  MemoryState& s = state();
  std::lock_guard lock(s.mutex);
  s.allocations[ptr] = bytes;
  s.counts.bytes += bytes;
  s.counts.peak_bytes = std::max(s.counts.peak_bytes, s.counts.bytes);
  return ptr;
}

void release_bytes(void* ptr) noexcept {
  if (ptr == nullptr) return;
  MemoryState& s = state();
  {
    std::lock_guard lock(s.mutex);
    auto it = s.allocations.find(ptr);
    if (it != s.allocations.end()) {
      s.counts.bytes -= it->second;
      s.allocations.erase(it);
    }
    if (!s.capturing.empty()) {
      // During a capture cudaFree cannot be recorded (on the capturing thread it would invalidate the
      // capture): the block is freed when the captures have ended. Freed by the recording thread, it also
      // fails that capture, since the recorded ops may use this memory at every replay.
      try {
        s.deferred.emplace_back(ptr, std::this_thread::get_id());
        return;
      } catch (...) {
        // Out of host memory: free it now (on a capturing thread the capture then fails on the cudaFree).
      }
    }
  }
  // cudaFree synchronizes the device first: work of any stream that may still use the block completes.
  CUDA_CHECK_LOG(cudaFree(ptr));
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
  const cudaMemcpyKind kind = dst_device == Device::CPU   ? cudaMemcpyDeviceToHost
                              : src_device == Device::CPU ? cudaMemcpyHostToDevice
                                                          : cudaMemcpyDeviceToDevice;
  if (this_thread_captures())
    throw DeviceError(std::string("a ") +
                      (kind == cudaMemcpyDeviceToHost   ? "device-to-host"
                       : kind == cudaMemcpyHostToDevice ? "host-to-device"
                                                        : "device-to-device (Tensor::copy_from)") +
                      " copy cannot be recorded during CUDA graph capture (the step copies through its backend: "
                      "Backend::copy)");
  // On the legacy default stream, which waits for no backend's (non-blocking) stream: the caller has
  // synchronized the model that uses this memory (cuda_memory.hpp, ORDERING). Complete on return, so that
  // whatever any stream queues next reads the copy.
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
  if (kind != cudaMemcpyDeviceToHost) finish_legacy_stream();  // a device-to-host cudaMemcpy has completed
}

void fill_floats(float* ptr, std::size_t count, float value) {
  if (count == 0) return;
  if (this_thread_captures())
    throw DeviceError("a fill through the memory layer cannot be recorded during CUDA graph capture (the step "
                      "fills through its backend: Backend::fill)");
  kernels::launch_fill(ptr, count, value, nullptr);  // the legacy default stream
  finish_legacy_stream();
}

}  // namespace dropnet::backend::cuda
