// cudnn_descriptors.cpp: the emulated device's cuDNN, part 1 (test-only; see device_state.hpp): the
// handle, the descriptors and the output-size queries. The algorithm queries are in cudnn_algorithms.cpp,
// the computing calls in cudnn_compute.cpp, the structs in cudnn_internal.hpp.
//
// Argument errors follow cuDNN's documented statuses: a null handle, pointer or never-set descriptor, or
// inconsistent dimensions, is CUDNN_STATUS_BAD_PARAM; a legal request the double does not implement (a
// non-float type, NCHW_VECT_C, average pooling, an algorithm it does not offer) is CUDNN_STATUS_NOT_SUPPORTED.
#include <algorithm>
#include <limits>
#include <new>

#include "emulated_device/cudnn_internal.hpp"
#include "emulated_device/device_state.hpp"

namespace dropnet::emulated::cudnn_double {

Tensor4 view(const cudnnTensorStruct& d) {
  Tensor4 t;
  t.n = d.n, t.c = d.c, t.h = d.h, t.w = d.w;
  if (d.format == CUDNN_TENSOR_NHWC) {
    t.sc = 1, t.sw = d.c, t.sh = std::int64_t{d.w} * d.c, t.sn = std::int64_t{d.h} * d.w * d.c;
  } else {  // NCHW
    t.sw = 1, t.sh = d.w, t.sc = std::int64_t{d.h} * d.w, t.sn = std::int64_t{d.c} * d.h * d.w;
  }
  return t;
}

// A filter as (K, C, KH, KW) dims. cudnnSetFilter4dDescriptor takes k, c, h, w whatever the format; NCHW
// stores them (K, C, KH, KW) and NHWC (K, KH, KW, C).
Tensor4 view(const cudnnFilterStruct& d) {
  cudnnTensorStruct as_tensor;
  as_tensor.format = d.format;
  as_tensor.n = d.k, as_tensor.c = d.c, as_tensor.h = d.h, as_tensor.w = d.w;
  return view(as_tensor);
}

bool device(const void* p, std::size_t bytes) { return p != nullptr && is_device_range(p, bytes); }

cudnnStatus_t queue(const cudnnContext& handle, const char* what, std::function<void()> work) {
  return enqueue(handle.stream, what, std::move(work)) == cudaSuccess ? CUDNN_STATUS_SUCCESS
                                                                      : CUDNN_STATUS_EXECUTION_FAILED;
}

namespace {

// cudnnGetConvolution2dForwardOutputDim's rule: out = (in + 2 pad - ((k - 1) dilation + 1)) / stride + 1,
// and BAD_PARAM when the dilated kernel does not fit in the padded input (the output would be empty).
bool output_size(int in, int pad, int k, int dilation, int stride, int* out) {
  const std::int64_t span = std::int64_t{in} + 2 * std::int64_t{pad} - ((std::int64_t{k} - 1) * dilation + 1);
  if (span < 0) return false;
  *out = static_cast<int>(span / stride + 1);
  return true;
}

cudnnStatus_t conv_output(const cudnnConvolutionStruct* conv, const cudnnTensorStruct* x,
                          const cudnnFilterStruct* w, int* n, int* c, int* h, int* wd) {
  if (conv == nullptr || x == nullptr || w == nullptr || !conv->set || !x->set || !w->set)
    return CUDNN_STATUS_BAD_PARAM;
  // One group: the filter's input channels must be the input's channels.
  if (x->c != w->c) return CUDNN_STATUS_BAD_PARAM;
  if (!output_size(x->h, conv->pad_h, w->h, conv->dilation_h, conv->stride_h, h) ||
      !output_size(x->w, conv->pad_w, w->w, conv->dilation_w, conv->stride_w, wd))
    return CUDNN_STATUS_BAD_PARAM;
  *n = x->n;
  *c = w->k;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

cudnnStatus_t conv_shape(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv,
                         const cudnnTensorStruct* y, ConvShape* shape) {
  int n = 0, c = 0, h = 0, wd = 0;
  if (cudnnStatus_t st = conv_output(conv, x, w, &n, &c, &h, &wd); st != CUDNN_STATUS_SUCCESS) return st;
  if (y == nullptr || !y->set) return CUDNN_STATUS_BAD_PARAM;
  // The output (or dy) must have exactly the size the convolution gives.
  if (y->n != n || y->c != c || y->h != h || y->w != wd) return CUDNN_STATUS_BAD_PARAM;
  // The double computes float32 only (cuDNN supports other type configurations: NOT_SUPPORTED, not BAD_PARAM).
  if (x->type != CUDNN_DATA_FLOAT || w->type != CUDNN_DATA_FLOAT || y->type != CUDNN_DATA_FLOAT ||
      conv->compute != CUDNN_DATA_FLOAT)
    return CUDNN_STATUS_NOT_SUPPORTED;
  shape->x = view(*x);
  shape->w = view(*w);
  shape->y = view(*y);
  shape->pad_h = conv->pad_h, shape->pad_w = conv->pad_w;
  shape->stride_h = conv->stride_h, shape->stride_w = conv->stride_w;
  shape->dilation_h = conv->dilation_h, shape->dilation_w = conv->dilation_w;
  shape->flip = conv->mode == CUDNN_CONVOLUTION;
  shape->math = conv->math;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace dropnet::emulated::cudnn_double

using namespace dropnet::emulated::cudnn_double;

namespace {

bool valid_format(cudnnTensorFormat_t f) {
  return f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC || f == CUDNN_TENSOR_NCHW_VECT_C;
}
bool valid_type(cudnnDataType_t t) { return t >= CUDNN_DATA_FLOAT && t <= CUDNN_DATA_COMPLEX_FP64; }

// Creating/destroying any descriptor: a null output pointer is BAD_PARAM; destroying null is a no-op.
template <typename T>
cudnnStatus_t create(T** out) {
  if (out == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *out = new (std::nothrow) T{};
  return *out != nullptr ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}
template <typename T>
cudnnStatus_t destroy(T* d) {
  delete d;  // queued work holds copies of the values, never the descriptor
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cudnnStatus_t CUDNNWINAPI cudnnCreate(cudnnHandle_t* handle) { return create(handle); }
cudnnStatus_t CUDNNWINAPI cudnnDestroy(cudnnHandle_t handle) {
  if (handle == nullptr) return CUDNN_STATUS_BAD_PARAM;
  return destroy(handle);
}

cudnnStatus_t CUDNNWINAPI cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
  if (handle == nullptr) return CUDNN_STATUS_BAD_PARAM;
  handle->stream = streamId;
  return CUDNN_STATUS_SUCCESS;
}

size_t CUDNNWINAPI cudnnGetVersion(void) { return CUDNN_VERSION; }

const char* CUDNNWINAPI cudnnGetErrorString(cudnnStatus_t status) {
  switch (static_cast<int>(status)) {
#define DROPNET_STATUS(name) \
  case name: return #name;
    DROPNET_STATUS(CUDNN_STATUS_SUCCESS)
    DROPNET_STATUS(CUDNN_STATUS_NOT_INITIALIZED)
    DROPNET_STATUS(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
    DROPNET_STATUS(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
    DROPNET_STATUS(CUDNN_STATUS_DEPRECATED)
    DROPNET_STATUS(CUDNN_STATUS_LICENSE_ERROR)
    DROPNET_STATUS(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
    DROPNET_STATUS(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
    DROPNET_STATUS(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
    DROPNET_STATUS(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
    DROPNET_STATUS(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
    DROPNET_STATUS(CUDNN_STATUS_INTERNAL_ERROR)
    DROPNET_STATUS(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
    DROPNET_STATUS(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
    DROPNET_STATUS(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
    DROPNET_STATUS(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
    DROPNET_STATUS(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
    DROPNET_STATUS(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
    DROPNET_STATUS(CUDNN_STATUS_EXECUTION_FAILED)
    DROPNET_STATUS(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
    DROPNET_STATUS(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
    DROPNET_STATUS(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
    DROPNET_STATUS(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
#undef DROPNET_STATUS
    case 2001: return "CUDNN_STATUS_INVALID_VALUE";  // the deprecated alias that has a value of its own
  }
  return "CUDNN_UNKNOWN_STATUS_FOUND";
}

// ---- Tensor descriptors ----

cudnnStatus_t CUDNNWINAPI cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* tensorDesc) {
  return create(tensorDesc);
}
cudnnStatus_t CUDNNWINAPI cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
  return destroy(tensorDesc);
}

cudnnStatus_t CUDNNWINAPI cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                                     cudnnDataType_t dataType, int n, int c, int h, int w) {
  // BAD_PARAM: null descriptor, a dimension < 1, an invalid format or data type enumerant.
  if (tensorDesc == nullptr || n < 1 || c < 1 || h < 1 || w < 1 || !valid_format(format) || !valid_type(dataType))
    return CUDNN_STATUS_BAD_PARAM;
  // NCHW_VECT_C only exists for the vectorized int8 types; the double implements NCHW and NHWC only.
  if (format == CUDNN_TENSOR_NCHW_VECT_C) return CUDNN_STATUS_NOT_SUPPORTED;
  // cuDNN's tensors hold at most 2^31 - 1 elements (NOT_SUPPORTED beyond).
  if (std::int64_t{n} * c * h * w > std::numeric_limits<int>::max()) return CUDNN_STATUS_NOT_SUPPORTED;
  *tensorDesc = cudnnTensorStruct{true, dataType, format, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

// ---- Filter descriptors ----

cudnnStatus_t CUDNNWINAPI cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* filterDesc) {
  return create(filterDesc);
}
cudnnStatus_t CUDNNWINAPI cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
  return destroy(filterDesc);
}

cudnnStatus_t CUDNNWINAPI cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                                     cudnnTensorFormat_t format, int k, int c, int h, int w) {
  if (filterDesc == nullptr || k < 1 || c < 1 || h < 1 || w < 1 || !valid_format(format) || !valid_type(dataType))
    return CUDNN_STATUS_BAD_PARAM;
  if (format == CUDNN_TENSOR_NCHW_VECT_C) return CUDNN_STATUS_NOT_SUPPORTED;
  if (std::int64_t{k} * c * h * w > std::numeric_limits<int>::max()) return CUDNN_STATUS_NOT_SUPPORTED;
  *filterDesc = cudnnFilterStruct{true, dataType, format, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

// ---- Convolution descriptors ----

cudnnStatus_t CUDNNWINAPI cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* convDesc) {
  return create(convDesc);
}
cudnnStatus_t CUDNNWINAPI cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
  return destroy(convDesc);
}

cudnnStatus_t CUDNNWINAPI cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h,
                                                          int pad_w, int u, int v, int dilation_h, int dilation_w,
                                                          cudnnConvolutionMode_t mode, cudnnDataType_t computeType) {
  // BAD_PARAM (documented): pad < 0, stride <= 0, dilation <= 0, an invalid mode or compute type.
  if (convDesc == nullptr || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1 ||
      (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) || !valid_type(computeType))
    return CUDNN_STATUS_BAD_PARAM;
  const cudnnMathType_t math = convDesc->math;  // the math type is set separately and survives
  *convDesc = cudnnConvolutionStruct{true, pad_h, pad_w, u, v, dilation_h, dilation_w, mode, computeType, math};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                                      cudnnMathType_t mathType) {
  if (convDesc == nullptr || (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
                              mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && mathType != CUDNN_FMA_MATH))
    return CUDNN_STATUS_BAD_PARAM;
  convDesc->math = mathType;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                                const cudnnTensorDescriptor_t inputTensorDesc,
                                                                const cudnnFilterDescriptor_t filterDesc, int* n,
                                                                int* c, int* h, int* w) {
  if (n == nullptr || c == nullptr || h == nullptr || w == nullptr) return CUDNN_STATUS_BAD_PARAM;
  return conv_output(convDesc, inputTensorDesc, filterDesc, n, c, h, w);
}

// ---- Pooling descriptors ----

cudnnStatus_t CUDNNWINAPI cudnnCreatePoolingDescriptor(cudnnPoolingDescriptor_t* poolingDesc) {
  return create(poolingDesc);
}
cudnnStatus_t CUDNNWINAPI cudnnDestroyPoolingDescriptor(cudnnPoolingDescriptor_t poolingDesc) {
  return destroy(poolingDesc);
}

cudnnStatus_t CUDNNWINAPI cudnnSetPooling2dDescriptor(cudnnPoolingDescriptor_t poolingDesc, cudnnPoolingMode_t mode,
                                                      cudnnNanPropagation_t maxpoolingNanOpt, int windowHeight,
                                                      int windowWidth, int verticalPadding, int horizontalPadding,
                                                      int verticalStride, int horizontalStride) {
  // BAD_PARAM (documented): window or stride <= 0, padding < 0, an invalid mode or NaN option. Average
  // modes are legal here; the double refuses them when pooling (NOT_SUPPORTED).
  if (poolingDesc == nullptr || windowHeight < 1 || windowWidth < 1 || verticalStride < 1 || horizontalStride < 1 ||
      verticalPadding < 0 || horizontalPadding < 0 || mode < CUDNN_POOLING_MAX ||
      mode > CUDNN_POOLING_MAX_DETERMINISTIC ||
      (maxpoolingNanOpt != CUDNN_NOT_PROPAGATE_NAN && maxpoolingNanOpt != CUDNN_PROPAGATE_NAN))
    return CUDNN_STATUS_BAD_PARAM;
  *poolingDesc = cudnnPoolingStruct{true,          mode,           maxpoolingNanOpt,  windowHeight,   windowWidth,
                                    verticalPadding, horizontalPadding, verticalStride, horizontalStride};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetPooling2dForwardOutputDim(const cudnnPoolingDescriptor_t poolingDesc,
                                                            const cudnnTensorDescriptor_t inputTensorDesc, int* n,
                                                            int* c, int* h, int* w) {
  if (poolingDesc == nullptr || inputTensorDesc == nullptr || !poolingDesc->set || !inputTensorDesc->set ||
      n == nullptr || c == nullptr || h == nullptr || w == nullptr)
    return CUDNN_STATUS_BAD_PARAM;
  // out = 1 + (in + 2 pad - window) / stride; a window larger than the padded input leaves no output.
  const auto out = [](int in, int pad, int window, int stride, int* o) {
    const int span = in + 2 * pad - window;
    if (span < 0) return false;
    *o = 1 + span / stride;
    return true;
  };
  if (!out(inputTensorDesc->h, poolingDesc->pad_h, poolingDesc->window_h, poolingDesc->stride_h, h) ||
      !out(inputTensorDesc->w, poolingDesc->pad_w, poolingDesc->window_w, poolingDesc->stride_w, w))
    return CUDNN_STATUS_BAD_PARAM;
  *n = inputTensorDesc->n;
  *c = inputTensorDesc->c;
  return CUDNN_STATUS_SUCCESS;
}

}  // extern "C"
