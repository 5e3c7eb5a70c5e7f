// cuda_check.hpp: one check macro per library (CUDA runtime, cuDNN, cuBLAS, cuRAND).
//
// Each macro evaluates the call once and, when it did not succeed, throws dropnet::DeviceError whose
// message names the call as written, the library's error string and file:line:
//   "cudnnConvolutionForward(...) failed: CUDNN_STATUS_BAD_PARAM (src/backend/cuda/conv_cudnn.cpp:212)"
// The *_LOG variants never throw (they print the same line to stderr): destructors use them, since a
// destructor that throws while the stack unwinds ends the program.
//
// No CUDA header is included here: the status codes travel as int, so this header is usable from .cpp
// and .cu files alike. The file using a macro includes the library header it calls anyway.
#pragma once

namespace dropnet::backend::cuda {

enum class Library { Runtime, Cudnn, Cublas, Curand };

// The message above, for `code` returned by `call` (the stringified call) at file:line.
[[noreturn]] void throw_device_error(Library library, int code, const char* call, const char* file, int line);
void log_device_error(Library library, int code, const char* call, const char* file, int line) noexcept;

// Throws DeviceError when the last kernel launch failed (bad configuration, no kernel image for this
// GPU, or an earlier asynchronous fault). Every launcher calls it right after its <<<...>>>.
void check_last_launch(const char* kernel, const char* file, int line);

}  // namespace dropnet::backend::cuda

#define DROPNET_DEVICE_CHECK_(library, ok, call)                                                      \
  do {                                                                                                \
    const auto dropnet_status_ = (call);                                                              \
    if (dropnet_status_ != (ok))                                                                      \
      ::dropnet::backend::cuda::throw_device_error(library, static_cast<int>(dropnet_status_), #call, \
                                                   __FILE__, __LINE__);                               \
  } while (0)

#define DROPNET_DEVICE_LOG_(library, ok, call)                                                      \
  do {                                                                                              \
    const auto dropnet_status_ = (call);                                                            \
    if (dropnet_status_ != (ok))                                                                    \
      ::dropnet::backend::cuda::log_device_error(library, static_cast<int>(dropnet_status_), #call, \
                                                 __FILE__, __LINE__);                               \
  } while (0)

#define CUDA_CHECK(call) DROPNET_DEVICE_CHECK_(::dropnet::backend::cuda::Library::Runtime, cudaSuccess, call)
#define CUDNN_CHECK(call) \
  DROPNET_DEVICE_CHECK_(::dropnet::backend::cuda::Library::Cudnn, CUDNN_STATUS_SUCCESS, call)
#define CUBLAS_CHECK(call) \
  DROPNET_DEVICE_CHECK_(::dropnet::backend::cuda::Library::Cublas, CUBLAS_STATUS_SUCCESS, call)
#define CURAND_CHECK(call) \
  DROPNET_DEVICE_CHECK_(::dropnet::backend::cuda::Library::Curand, CURAND_STATUS_SUCCESS, call)

#define CUDA_CHECK_LOG(call) DROPNET_DEVICE_LOG_(::dropnet::backend::cuda::Library::Runtime, cudaSuccess, call)
#define CUDNN_CHECK_LOG(call) \
  DROPNET_DEVICE_LOG_(::dropnet::backend::cuda::Library::Cudnn, CUDNN_STATUS_SUCCESS, call)
#define CUBLAS_CHECK_LOG(call) \
  DROPNET_DEVICE_LOG_(::dropnet::backend::cuda::Library::Cublas, CUBLAS_STATUS_SUCCESS, call)
#define CURAND_CHECK_LOG(call) \
  DROPNET_DEVICE_LOG_(::dropnet::backend::cuda::Library::Curand, CURAND_STATUS_SUCCESS, call)

// After a kernel launch: `CHECK_LAUNCH("dropout_kernel");`
#define CHECK_LAUNCH(kernel_name) ::dropnet::backend::cuda::check_last_launch(kernel_name, __FILE__, __LINE__)
