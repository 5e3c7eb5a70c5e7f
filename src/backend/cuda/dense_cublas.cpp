// dense_cublas.cpp: Dense through cuBLAS (the row-major trick: see dense_cublas.hpp).
#include "backend/cuda/dense_cublas.hpp"

#include <limits>
#include <string>

#include "dropnet/errors.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {
namespace {

constexpr float kOne = 1.0f, kZero = 0.0f;

int as_int(std::int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max())
    throw InvalidArgument(std::string("cuBLAS needs the Dense ") + what + " to fit in an int, got " +
                          std::to_string(v));
  return static_cast<int>(v);
}

}  // namespace

void dense_forward(DeviceContext& ctx, const float* x, const float* w, const float* b, float* y, std::int64_t n,
                   std::int64_t in, std::int64_t out) {
  const int N = as_int(n, "batch"), IN = as_int(in, "input size"), OUT = as_int(out, "output size");
  if (N == 0 || OUT == 0) return;
  if (IN == 0) {
    kernels::launch_fill(y, static_cast<std::size_t>(n * out), 0.0f, ctx.stream_ptr());
  } else {
    // y^T (OUT, N) = w^T (OUT, IN; w row-major is it, ld OUT) * x^T (IN, N; ld IN).
    CUBLAS_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, OUT, N, IN, &kOne, w, OUT, x, IN, &kZero, y, OUT));
  }
  if (b != nullptr)
    kernels::launch_add_bias(y, b, static_cast<std::size_t>(n), static_cast<std::size_t>(out), ctx.stream_ptr());
}

void dense_backward(DeviceContext& ctx, const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db, std::int64_t n, std::int64_t in, std::int64_t out) {
  const int N = as_int(n, "batch"), IN = as_int(in, "input size"), OUT = as_int(out, "output size");
  void* stream = ctx.stream_ptr();
  if (N == 0 || IN == 0 || OUT == 0) {
    // Nothing to multiply: every gradient is an empty sum.
    if (dx != nullptr) kernels::launch_fill(dx, static_cast<std::size_t>(n * in), 0.0f, stream);
    kernels::launch_fill(dw, static_cast<std::size_t>(in * out), 0.0f, stream);
    if (db != nullptr) kernels::launch_fill(db, static_cast<std::size_t>(out), 0.0f, stream);
    return;
  }
  if (dx != nullptr) {
    // dx^T (IN, N) = w (as stored: column-major (OUT, IN), transposed) * dy^T (OUT, N; ld OUT).
    CUBLAS_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, IN, N, OUT, &kOne, w, OUT, dy, OUT, &kZero, dx, IN));
  }
  // dw^T (OUT, IN) = dy^T (OUT, N; ld OUT) * x (x^T stored column-major (IN, N), transposed).
  CUBLAS_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, OUT, IN, N, &kOne, dy, OUT, x, IN, &kZero, dw, OUT));
  if (db != nullptr) {
    const float* ones = ctx.ones(static_cast<std::size_t>(n));
    CUBLAS_CHECK(cublasSgemv(ctx.cublas(), CUBLAS_OP_N, OUT, N, &kOne, dy, OUT, ones, 1, &kZero, db, 1));
  }
}

}  // namespace dropnet::backend::cuda
