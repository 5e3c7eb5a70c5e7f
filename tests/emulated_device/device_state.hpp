// device_state.hpp: what the emulated CUDA runtime (runtime.cpp) offers the emulated libraries
// (cublas.cpp, cudnn.cpp). Test-only: see docs/design.md, "Testing the CUDA path without a GPU".
//
// The emulated device keeps CUDA's asynchrony: work queued on a stream runs only when the host waits for it
// (cudaStreamSynchronize, cudaEventSynchronize, a blocking cudaMemcpy, cudaDeviceSynchronize...). A library
// call therefore never computes at once: it checks its arguments, copies every value it needs by value
// (descriptor contents, alpha/beta, pointers) and queues a closure with enqueue(). While the stream is being
// captured, enqueue() records the closure into the graph instead; each replay runs it again with the values
// it was recorded with, as a real CUDA graph does.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>
#include <string>

namespace dropnet::emulated {

// Queues `work` on `stream` (0 is the legacy default stream), or records it when the stream is being
// captured. `what` names the operation in error messages ("cublasSgemm", "cudnnConvolutionForward").
// Returns cudaSuccess, or the error the call must report (a sticky fault, or a capture error, which also
// invalidates the capture, as CUDA does).
cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<void()> work);

// Whether [p, p + bytes) lies inside one live allocation of cudaMalloc (device memory). Library doubles
// use it to reject host pointers where the real library needs device memory.
bool is_device_range(const void* p, std::size_t bytes);

// Called from inside queued work when it finds a device-side fault (an out-of-bounds access, a barrier
// deadlock): the device gets a sticky error, reported by the next runtime call, with `message` on stderr.
void device_fault(cudaError_t error, const std::string& message);

}  // namespace dropnet::emulated
