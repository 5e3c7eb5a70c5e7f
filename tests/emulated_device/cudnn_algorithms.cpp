// cudnn_algorithms.cpp: the emulated device's cuDNN, part 2 (test-only; see device_state.hpp): the
// convolution algorithm queries (cudnnGet*AlgorithmMaxCount, cudnnFind*, cudnnGet*Algorithm_v7,
// cudnnGet*WorkspaceSize) and the workspace each algorithm needs, which the computing calls
// (cudnn_compute.cpp) check against.
#include <algorithm>

#include "emulated_device/cudnn_internal.hpp"

namespace dropnet::emulated::cudnn_double {

bool workspace_for(Direction dir, int algo, const ConvShape& s, std::size_t* bytes) {
  // Plausible sizes: a packed filter matrix (K x C*KH*KW) or one image's patch matrix (OH*OW x C*KH*KW).
  const std::size_t q = static_cast<std::size_t>(s.w.c) * static_cast<std::size_t>(s.w.h) * s.w.w;
  const std::size_t filter = static_cast<std::size_t>(s.w.n) * q * sizeof(float);
  const std::size_t patches = static_cast<std::size_t>(s.y.h) * static_cast<std::size_t>(s.y.w) * q * sizeof(float);
  std::size_t need = 0;
  switch (dir) {
    case Direction::Forward:
      if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) need = filter;
      else if (algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM) need = patches;
      else if (algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) return false;
      break;
    case Direction::BackwardData:
      if (algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) need = filter;
      else if (algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_1) return false;
      break;
    case Direction::BackwardFilter:
      if (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3) need = filter;
      else if (algo != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 && algo != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1)
        return false;
      break;
  }
  *bytes = need;
  return true;
}

}  // namespace dropnet::emulated::cudnn_double

using namespace dropnet::emulated::cudnn_double;

namespace {

// What cudnnFind*/_v7 report for the algorithms the double offers, fastest first. The times are fake but
// fixed. Like real cuDNN: backward-data ALGO_0 and backward-filter ALGO_0/ALGO_3 are non-deterministic
// (they accumulate with atomics); with CUDNN_DEFAULT_MATH the `tensor_op` ones would run in TF32
// (reported as CUDNN_TENSOR_OP_MATH, so callers that refuse TF32 must filter); CUDNN_FMA_MATH keeps
// every one in float32. Every direction has a deterministic algorithm with no workspace, so every
// combination of settings has one, and one with a workspace, so callers must size and pass it.
struct Offer {
  int algo;
  float time_ms;
  bool deterministic;
  bool tensor_op;
};
constexpr Offer kForward[] = {{CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, 0.05f, true, true},
                              {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, 0.08f, true, false},
                              {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, 0.12f, true, false}};
constexpr Offer kBackwardData[] = {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, 0.05f, false, true},
                                   {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, 0.08f, true, false}};
constexpr Offer kBackwardFilter[] = {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, 0.05f, false, true},
                                     {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, 0.08f, true, false},
                                     {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, 0.10f, false, false}};

// Fills perf results (any of cuDNN's three perf structs: same fields) from an offer table.
template <typename Perf, typename Algo, std::size_t N>
cudnnStatus_t report(Direction dir, const Offer (&offers)[N], const ConvShape& s, int requested, int* returned,
                     Perf* results) {
  if (requested < 1 || returned == nullptr || results == nullptr) return CUDNN_STATUS_BAD_PARAM;
  const int count = std::min(requested, static_cast<int>(N));
  for (int i = 0; i < count; ++i) {
    const Offer& o = offers[i];
    Perf p{};
    p.algo = static_cast<Algo>(o.algo);
    p.status = CUDNN_STATUS_SUCCESS;
    p.time = o.time_ms;
    workspace_for(dir, o.algo, s, &p.memory);
    p.determinism = o.deterministic ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
    p.mathType = s.math == CUDNN_FMA_MATH || !o.tensor_op ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    results[i] = p;
  }
  *returned = count;
  return CUDNN_STATUS_SUCCESS;
}


// The checks shared by the three directions' algorithm queries.
cudnnStatus_t query_shape(cudnnHandle_t handle, const cudnnTensorStruct* x, const cudnnFilterStruct* w,
                          const cudnnConvolutionStruct* conv, const cudnnTensorStruct* y, ConvShape* s) {
  if (handle == nullptr) return CUDNN_STATUS_BAD_PARAM;
  return conv_shape(x, w, conv, y, s);
}

cudnnStatus_t workspace_size(Direction dir, cudnnHandle_t handle, const cudnnTensorStruct* x,
                             const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv,
                             const cudnnTensorStruct* y, int algo, size_t* size) {
  ConvShape s;
  if (cudnnStatus_t st = query_shape(handle, x, w, conv, y, &s); st != CUDNN_STATUS_SUCCESS) return st;
  if (size == nullptr) return CUDNN_STATUS_BAD_PARAM;
  return workspace_for(dir, algo, s, size) ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
}

}  // namespace

extern "C" {

// cuDNN answers the number of algorithm enumerants (the most results a query can return).
cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (handle == nullptr || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (handle == nullptr || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (handle == nullptr || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

// cudnnFind* would time each algorithm on the device; the double answers the same fixed table as the
// heuristics (_v7). Neither touches device memory, so neither queues anything.
cudnnStatus_t CUDNNWINAPI cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t handle,
                                                               const cudnnTensorDescriptor_t xDesc,
                                                               const cudnnFilterDescriptor_t wDesc,
                                                               const cudnnConvolutionDescriptor_t convDesc,
                                                               const cudnnTensorDescriptor_t yDesc,
                                                               const int requestedAlgoCount, int* returnedAlgoCount,
                                                               cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  ConvShape s;
  if (cudnnStatus_t st = query_shape(handle, xDesc, wDesc, convDesc, yDesc, &s); st != CUDNN_STATUS_SUCCESS)
    return st;
  return report<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
      Direction::Forward, kForward, s, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle,
                                                                 const cudnnTensorDescriptor_t srcDesc,
                                                                 const cudnnFilterDescriptor_t filterDesc,
                                                                 const cudnnConvolutionDescriptor_t convDesc,
                                                                 const cudnnTensorDescriptor_t destDesc,
                                                                 const int requestedAlgoCount, int* returnedAlgoCount,
                                                                 cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  return cudnnFindConvolutionForwardAlgorithm(handle, srcDesc, filterDesc, convDesc, destDesc, requestedAlgoCount,
                                              returnedAlgoCount, perfResults);
}

cudnnStatus_t CUDNNWINAPI cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t handle,
                                                                    const cudnnFilterDescriptor_t wDesc,
                                                                    const cudnnTensorDescriptor_t dyDesc,
                                                                    const cudnnConvolutionDescriptor_t convDesc,
                                                                    const cudnnTensorDescriptor_t dxDesc,
                                                                    const int requestedAlgoCount,
                                                                    int* returnedAlgoCount,
                                                                    cudnnConvolutionBwdDataAlgoPerf_t* perfResults) {
  ConvShape s;
  if (cudnnStatus_t st = query_shape(handle, dxDesc, wDesc, convDesc, dyDesc, &s); st != CUDNN_STATUS_SUCCESS)
    return st;
  return report<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
      Direction::BackwardData, kBackwardData, s, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc, const cudnnTensorDescriptor_t diffDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount,
    int* returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t* perfResults) {
  return cudnnFindConvolutionBackwardDataAlgorithm(handle, filterDesc, diffDesc, convDesc, gradDesc,
                                                   requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t CUDNNWINAPI cudnnFindConvolutionBackwardFilterAlgorithm(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t dwDesc, const int requestedAlgoCount,
    int* returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t* perfResults) {
  ConvShape s;
  if (cudnnStatus_t st = query_shape(handle, xDesc, dwDesc, convDesc, dyDesc, &s); st != CUDNN_STATUS_SUCCESS)
    return st;
  return report<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      Direction::BackwardFilter, kBackwardFilter, s, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc, const cudnnTensorDescriptor_t diffDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount,
    int* returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t* perfResults) {
  return cudnnFindConvolutionBackwardFilterAlgorithm(handle, srcDesc, diffDesc, convDesc, gradDesc,
                                                     requestedAlgoCount, returnedAlgoCount, perfResults);
}

// Workspace per algorithm; one the double does not offer is NOT_SUPPORTED (as cuDNN for an algorithm that
// does not support the configuration).
cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle,
                                                                  const cudnnTensorDescriptor_t xDesc,
                                                                  const cudnnFilterDescriptor_t wDesc,
                                                                  const cudnnConvolutionDescriptor_t convDesc,
                                                                  const cudnnTensorDescriptor_t yDesc,
                                                                  cudnnConvolutionFwdAlgo_t algo, size_t* sizeInBytes) {
  return workspace_size(Direction::Forward, handle, xDesc, wDesc, convDesc, yDesc, algo, sizeInBytes);
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle,
                                                                       const cudnnFilterDescriptor_t wDesc,
                                                                       const cudnnTensorDescriptor_t dyDesc,
                                                                       const cudnnConvolutionDescriptor_t convDesc,
                                                                       const cudnnTensorDescriptor_t dxDesc,
                                                                       cudnnConvolutionBwdDataAlgo_t algo,
                                                                       size_t* sizeInBytes) {
  return workspace_size(Direction::BackwardData, handle, dxDesc, wDesc, convDesc, dyDesc, algo, sizeInBytes);
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle,
                                                                         const cudnnTensorDescriptor_t xDesc,
                                                                         const cudnnTensorDescriptor_t dyDesc,
                                                                         const cudnnConvolutionDescriptor_t convDesc,
                                                                         const cudnnFilterDescriptor_t gradDesc,
                                                                         cudnnConvolutionBwdFilterAlgo_t algo,
                                                                         size_t* sizeInBytes) {
  return workspace_size(Direction::BackwardFilter, handle, xDesc, gradDesc, convDesc, dyDesc, algo, sizeInBytes);
}

}  // extern "C"
