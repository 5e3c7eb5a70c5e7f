// dense_cublas.hpp: Dense forward and backward through cuBLAS SGEMM.
//
// cuBLAS is column-major and dropnet row-major. A row-major (R, C) matrix is the column-major (C, R)
// matrix of its transpose, so each product is computed transposed, with no copy:
//   y  = x w          (N, OUT)   <=>  y^T  = w^T x^T        sgemm(N, N, OUT, N, IN)
//   dx = dy w^T       (N, IN)    <=>  dx^T = w dy^T         sgemm(T, N, IN, N, OUT)
//   dw = x^T dy       (IN, OUT)  <=>  dw^T = dy^T x         sgemm(N, T, OUT, IN, N)
//   db = sum over rows of dy     <=>  dy^T (OUT, N) times a vector of ones (SGEMV)
// Float32 throughout unless the context allows TF32 (cublasSetMathMode, device_context.cpp).
#pragma once

#include <cstdint>

#include "backend/cuda/device_context.hpp"

namespace dropnet::backend::cuda {

// y (n, in) @ w (in, out) + b (out); b may be null.
void dense_forward(DeviceContext& ctx, const float* x, const float* w, const float* b, float* y, std::int64_t n,
                   std::int64_t in, std::int64_t out);
// dx (may be null), dw, db (may be null) from dy (n, out); each is overwritten.
void dense_backward(DeviceContext& ctx, const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db, std::int64_t n, std::int64_t in, std::int64_t out);

}  // namespace dropnet::backend::cuda
