// device.cpp: the emulated device's identity and the runtime's error calls. Test-only.
//
// One device, named so that no log can mistake it for a GPU. It reports 4 SMs: the kernels size their
// grids from the SM count (kernels/launch.cuh), so big tensors take several trips round a grid-stride
// loop here, as they do on a GPU, instead of one thread per element.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "emulated_device/runtime_state.hpp"

using namespace dropnet::emulated;

namespace {

constexpr int kSms = 4;
constexpr const char* kName = "dropnet emulated device (CPU, not a GPU)";

const char* error_name(cudaError_t e) {
  switch (e) {
#define DROPNET_ERROR_NAME(code) \
  case code: return #code;
    DROPNET_ERROR_NAME(cudaSuccess)
    DROPNET_ERROR_NAME(cudaErrorInvalidValue)
    DROPNET_ERROR_NAME(cudaErrorMemoryAllocation)
    DROPNET_ERROR_NAME(cudaErrorInvalidConfiguration)
    DROPNET_ERROR_NAME(cudaErrorInvalidDevice)
    DROPNET_ERROR_NAME(cudaErrorInvalidResourceHandle)
    DROPNET_ERROR_NAME(cudaErrorNotReady)
    DROPNET_ERROR_NAME(cudaErrorIllegalAddress)
    DROPNET_ERROR_NAME(cudaErrorLaunchFailure)
    DROPNET_ERROR_NAME(cudaErrorIllegalState)
    DROPNET_ERROR_NAME(cudaErrorNoDevice)
    DROPNET_ERROR_NAME(cudaErrorInsufficientDriver)
    DROPNET_ERROR_NAME(cudaErrorCudartUnloading)
    DROPNET_ERROR_NAME(cudaErrorStreamCaptureUnsupported)
    DROPNET_ERROR_NAME(cudaErrorStreamCaptureInvalidated)
    DROPNET_ERROR_NAME(cudaErrorStreamCaptureImplicit)
    DROPNET_ERROR_NAME(cudaErrorStreamCaptureWrongThread)
    DROPNET_ERROR_NAME(cudaErrorNotSupported)
#undef DROPNET_ERROR_NAME
    default: return nullptr;
  }
}

}  // namespace

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = kSms; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
    case cudaDevAttrWarpSize: *value = 32; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    default:
      // Not needed by dropnet so far: say so rather than invent a value.
      std::fprintf(stderr, "dropnet emulated device: cudaDeviceGetAttribute(%d) is not emulated\n", static_cast<int>(attr));
      return fail(cudaErrorInvalidValue);
  }
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "%s", kName);
  prop->totalGlobalMem = total_device_memory();
  prop->sharedMemPerBlock = 48 << 10;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7FFFFFFF;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = kSms;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  if (version == nullptr) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) { return cudaRuntimeGetVersion(version); }

// The last error of this host thread, cleared unless the device has faulted (a sticky error stays).
cudaError_t cudaGetLastError(void) {
  std::lock_guard lock(runtime().mutex);
  const cudaError_t e = runtime().sticky != cudaSuccess ? runtime().sticky : last_error();
  if (runtime().sticky == cudaSuccess) last_error() = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  std::lock_guard lock(runtime().mutex);
  return runtime().sticky != cudaSuccess ? runtime().sticky : last_error();
}

const char* cudaGetErrorName(cudaError_t error) {
  const char* name = error_name(error);
  return name != nullptr ? name : "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    default: return cudaGetErrorName(error);
  }
}

}  // extern "C"
