// cuda_entry.cpp: the four functions dispatch.cpp calls (backend/cuda/cuda_entry.hpp).
#include "backend/cuda/cuda_entry.hpp"

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdio>
#include <cstring>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "dropnet/errors.hpp"

namespace dropnet::backend::cuda {

bool device_present() noexcept {
  int count = 0;
  // Without a driver this returns cudaErrorNoDevice or cudaErrorInsufficientDriver; neither is sticky.
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

std::unique_ptr<Backend> make_backend() {
  if (!device_present()) throw DeviceUnavailable("no CUDA device is visible (cudaGetDeviceCount found none)");
  return std::make_unique<CudaBackend>();
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
  CudaBackend* backend = CudaBackend::live();
  if (kind == cudaMemcpyDeviceToDevice && backend != nullptr) {
    // On the backend's stream, in order with its ops, and recordable into a CUDA graph (Tensor::copy_from in
    // a training step: Flatten, a Dropout of rate 0). cudaMemcpy does not make the host wait for a
    // device-to-device copy either, so callers see no difference.
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, static_cast<cudaStream_t>(backend->stream())));
    return;
  }
  if (backend != nullptr && backend->recording())
    throw DeviceError(std::string("a ") + (kind == cudaMemcpyDeviceToHost ? "device-to-host" : "host-to-device") +
                      " copy cannot be recorded during CUDA graph capture (it makes the host wait)");
  // A synchronous copy on the legacy default stream: the backend's stream is a blocking one, so the copy
  // waits for every op queued before it and the ops queued after it wait for the copy.
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
}

std::string describe_device() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int runtime = 0;
  CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  const std::size_t cudnn = cudnnGetVersion();  // major * 10000 + minor * 100 + patch (cuDNN 9)
  char text[512];
  std::snprintf(text, sizeof text, "%s (%d SMs, %.1f GiB, compute %d.%d, CUDA %d.%d, cuDNN %zu.%zu.%zu)", prop.name,
                prop.multiProcessorCount, static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0),
                prop.major, prop.minor, runtime / 1000, (runtime % 1000) / 10, cudnn / 10000, (cudnn % 10000) / 100,
                cudnn % 100);
  return text;
}

}  // namespace dropnet::backend::cuda
