// cuda_memory.cpp: GPU memory for the memory layer (backend/memory.hpp, cuda_memory.hpp).
#include "backend/cuda/cuda_memory.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <condition_variable>
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

// A block to free: device memory (cudaFree) or pinned host memory (cudaFreeHost).
struct Block {
  void* ptr = nullptr;
  bool pinned = false;
};

// The device's tensor memory, the captures in progress and the device-wide calls in progress (which
// exclude each other: DeviceWideCall). One per process, as the device's memory is.
struct MemoryState {
  std::mutex mutex;  // tensors may be freed from any thread
  std::condition_variable changed;  // a capture or a device-wide call ended
  std::unordered_map<const void*, std::size_t> allocations;
  TensorMemory counts;
  std::vector<std::thread::id> capturing;  // threads inside CudaBackend::capture (one entry per capture)
  int device_wide = 0;                     // DeviceWideCalls in progress
  // Frees deferred while a capture was in progress, each with the thread that made it.
  std::vector<std::pair<Block, std::thread::id>> deferred;
};

MemoryState& state() {
  static MemoryState* s = new MemoryState();  // never destroyed: backends held by statics free at exit
  return *s;
}

bool captures(const MemoryState& s, std::thread::id thread) {
  return std::find(s.capturing.begin(), s.capturing.end(), thread) != s.capturing.end();
}

bool this_thread_captures() {
  MemoryState& s = state();
  std::lock_guard lock(s.mutex);
  return captures(s, std::this_thread::get_id());
}

// Frees `blocks` once the device is idle: cudaFree and cudaFreeHost may or may not synchronize the device
// (CUDA documents only that they may), and a stream may still use a block that its owner drops (fit
// unwinding with steps queued). A device-wide call: outside every capture.
void free_blocks(const std::vector<Block>& blocks) noexcept {
  if (blocks.empty()) return;
  DeviceWideCall call;
  CUDA_CHECK_LOG(cudaDeviceSynchronize());
  for (const Block& b : blocks) {
    if (b.pinned) CUDA_CHECK_LOG(cudaFreeHost(b.ptr));
    else CUDA_CHECK_LOG(cudaFree(b.ptr));
  }
}

// Frees `block` (device memory from allocate_bytes when `counted`): now, or, while a capture is in progress,
// when the captures have ended.
void release(Block block, bool counted) noexcept {
  MemoryState& s = state();
  {
    std::lock_guard lock(s.mutex);
    if (counted) {
      auto it = s.allocations.find(block.ptr);
      if (it != s.allocations.end()) {
        s.counts.bytes -= it->second;
        s.allocations.erase(it);
      }
    }
    if (!s.capturing.empty()) {
      // During a capture a free cannot be recorded (on the capturing thread it would invalidate the
      // capture, and the device-wide wait before it would invalidate every capture): the block is freed
      // when the captures have ended. Freed by the recording thread, it also fails that capture, since the
      // recorded ops may use this memory at every replay.
      try {
        s.deferred.emplace_back(block, std::this_thread::get_id());
        return;
      } catch (...) {
        // Out of host memory: free it now (free_blocks waits for the captures of other threads to end).
      }
    }
  }
  try {
    free_blocks({block});
  } catch (...) {
    // Out of host memory for a one-element vector: free without the device-wide wait.
    if (block.pinned) CUDA_CHECK_LOG(cudaFreeHost(block.ptr));
    else CUDA_CHECK_LOG(cudaFree(block.ptr));
  }
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

DeviceWideCall::DeviceWideCall() noexcept {
  MemoryState& s = state();
  std::unique_lock lock(s.mutex);
  // On a recording thread the call fails that recording anyway; waiting for it to end would never end.
  if (captures(s, std::this_thread::get_id())) return;
  s.changed.wait(lock, [&] { return s.capturing.empty(); });
  ++s.device_wide;
  counted_ = true;
}

DeviceWideCall::~DeviceWideCall() {
  if (!counted_) return;
  MemoryState& s = state();
  {
    std::lock_guard lock(s.mutex);
    --s.device_wide;
  }
  s.changed.notify_all();
}

CaptureRegistration::CaptureRegistration() {
  MemoryState& s = state();
  std::unique_lock lock(s.mutex);
  s.changed.wait(lock, [&] { return s.device_wide == 0; });
  s.capturing.push_back(std::this_thread::get_id());
}

std::size_t CaptureRegistration::end() noexcept {
  if (!active_) return 0;
  active_ = false;
  MemoryState& s = state();
  const std::thread::id me = std::this_thread::get_id();
  std::vector<std::pair<Block, std::thread::id>> deferred;
  std::size_t by_me = 0;
  {
    std::lock_guard lock(s.mutex);
    s.capturing.erase(std::find(s.capturing.begin(), s.capturing.end(), me));
    for (auto& [block, thread] : s.deferred) {
      if (thread == me) {
        ++by_me;
        thread = std::thread::id{};  // counted once, by this capture
      }
    }
    if (s.capturing.empty()) deferred.swap(s.deferred);
  }
  s.changed.notify_all();
  std::vector<Block> to_free;
  try {
    to_free.reserve(deferred.size());
    for (const auto& entry : deferred) to_free.push_back(entry.first);
    free_blocks(to_free);
  } catch (...) {
    for (const auto& entry : deferred) {  // out of host memory: free without the device-wide wait
      if (entry.first.pinned) CUDA_CHECK_LOG(cudaFreeHost(entry.first.ptr));
      else CUDA_CHECK_LOG(cudaFree(entry.first.ptr));
    }
  }
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
  if (ptr != nullptr) release({ptr, false}, /*counted=*/true);
}

void release_block(void* ptr, bool pinned) noexcept {
  if (ptr != nullptr) release({ptr, pinned}, /*counted=*/false);
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
