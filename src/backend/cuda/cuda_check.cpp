// cuda_check.cpp: the error messages behind the check macros of cuda_check.hpp.
#include "backend/cuda/cuda_check.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <curand.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "dropnet/errors.hpp"

namespace dropnet::backend::cuda {
namespace {

// cuRAND has no error-string function; these are the names of curand.h's curandStatus_t.
const char* curand_status_name(int code) {
  switch (code) {
    case CURAND_STATUS_SUCCESS: return "CURAND_STATUS_SUCCESS";
    case CURAND_STATUS_VERSION_MISMATCH: return "CURAND_STATUS_VERSION_MISMATCH";
    case CURAND_STATUS_NOT_INITIALIZED: return "CURAND_STATUS_NOT_INITIALIZED";
    case CURAND_STATUS_ALLOCATION_FAILED: return "CURAND_STATUS_ALLOCATION_FAILED";
    case CURAND_STATUS_TYPE_ERROR: return "CURAND_STATUS_TYPE_ERROR";
    case CURAND_STATUS_OUT_OF_RANGE: return "CURAND_STATUS_OUT_OF_RANGE";
    case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "CURAND_STATUS_LENGTH_NOT_MULTIPLE";
    case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: return "CURAND_STATUS_DOUBLE_PRECISION_REQUIRED";
    case CURAND_STATUS_LAUNCH_FAILURE: return "CURAND_STATUS_LAUNCH_FAILURE";
    case CURAND_STATUS_PREEXISTING_FAILURE: return "CURAND_STATUS_PREEXISTING_FAILURE";
    case CURAND_STATUS_INITIALIZATION_FAILED: return "CURAND_STATUS_INITIALIZATION_FAILED";
    case CURAND_STATUS_ARCH_MISMATCH: return "CURAND_STATUS_ARCH_MISMATCH";
    case CURAND_STATUS_INTERNAL_ERROR: return "CURAND_STATUS_INTERNAL_ERROR";
    default: return "unknown cuRAND status";
  }
}

std::string status_text(Library library, int code) {
  switch (library) {
    case Library::Runtime:
      return std::string(cudaGetErrorName(static_cast<cudaError_t>(code))) + ": " +
             cudaGetErrorString(static_cast<cudaError_t>(code));
    case Library::Cudnn: return cudnnGetErrorString(static_cast<cudnnStatus_t>(code));
    case Library::Cublas: return cublasGetStatusString(static_cast<cublasStatus_t>(code));
    case Library::Curand: return curand_status_name(code);
  }
  return "unknown library";
}

// __FILE__ is absolute in a CMake build; keep it from the repository's top folders on.
std::string_view short_path(std::string_view file) {
  for (std::string_view top : {"/src/", "/kernels/", "/tests/", "/benchmarks/"}) {
    const auto at = file.rfind(top);
    if (at != std::string_view::npos) return file.substr(at + 1);
  }
  return file;
}

std::string message(Library library, int code, const char* call, const char* file, int line) {
  std::string out(call);
  out.append(" failed: ").append(status_text(library, code)).append(" (").append(short_path(file));
  out.append(":").append(std::to_string(line)).append(")");
  return out;
}

}  // namespace

void throw_device_error(Library library, int code, const char* call, const char* file, int line) {
  throw DeviceError(message(library, code, call, file, line));
}

void log_device_error(Library library, int code, const char* call, const char* file, int line) noexcept {
  // At process exit the runtime may unload before the last destructor runs; nothing is left to free then.
  if (library == Library::Runtime && code == cudaErrorCudartUnloading) return;
  try {
    std::fprintf(stderr, "dropnet: %s\n", message(library, code, call, file, line).c_str());
  } catch (...) {
    std::fprintf(stderr, "dropnet: %s failed (%s:%d)\n", call, file, line);
  }
}

void check_last_launch(const char* kernel, const char* file, int line) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    const std::string call = std::string("launch of ") + kernel;
    throw_device_error(Library::Runtime, static_cast<int>(status), call.c_str(), file, line);
  }
}

}  // namespace dropnet::backend::cuda
