// cublas.cpp: the emulated device's cuBLAS (test-only; see device_state.hpp and docs/design.md, "Testing
// the CUDA path without a GPU"). Link-time doubles of exactly the cuBLAS calls src/backend/cuda makes.
//
// Every call follows the same pattern as the real library on a GPU: it checks its arguments now (with the
// statuses cuBLAS documents), copies what it needs by value (sizes, pointers, alpha/beta in host pointer
// mode) and queues the work on the handle's stream; the work runs when the host waits. The arithmetic is
// OpenBLAS's (column-major, as cuBLAS): the double only has to be right, the CPU backend is the reference.
#include <cblas.h>
#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>

#include "emulated_device/device_state.hpp"

// The header only forward-declares the handle (typedef struct cublasContext* cublasHandle_t).
struct cublasContext {
  cudaStream_t stream = nullptr;  // 0, the legacy default stream, until cublasSetStream
  void* workspace = nullptr;      // nullptr: cuBLAS' own default pool
  std::size_t workspace_bytes = 0;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
  cublasMath_t math_mode = CUBLAS_DEFAULT_MATH;
  cublasAtomicsMode_t atomics_mode = CUBLAS_ATOMICS_NOT_ALLOWED;
};

namespace {

using dropnet::emulated::enqueue;
using dropnet::emulated::is_device_range;

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// For real matrices CUBLAS_OP_C is CUBLAS_OP_T.
CBLAS_TRANSPOSE to_cblas(cublasOperation_t op) { return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans; }

// Bytes spanned by a column-major rows x cols matrix with leading dimension ld (0 when empty).
std::size_t matrix_bytes(int rows, int cols, int ld) {
  if (rows <= 0 || cols <= 0) return 0;
  return (static_cast<std::size_t>(cols - 1) * static_cast<std::size_t>(ld) + static_cast<std::size_t>(rows)) *
         sizeof(float);
}

// Bytes spanned by a strided vector of `count` elements (BLAS convention: a negative increment walks the
// same memory backwards from the last element, so the span is the same).
std::size_t vector_bytes(int count, int inc) {
  if (count <= 0) return 0;
  const auto step = static_cast<std::size_t>(inc < 0 ? -static_cast<long long>(inc) : inc);
  return (static_cast<std::size_t>(count - 1) * step + 1) * sizeof(float);
}

bool device(const void* p, std::size_t bytes) { return p != nullptr && is_device_range(p, bytes); }

// alpha/beta: in host pointer mode their values are taken now (the caller may change or free them once the
// call returns, as cuBLAS allows); in device pointer mode the pointers are kept and read when the work runs.
struct Scalars {
  float alpha = 0, beta = 0;
  const float* alpha_device = nullptr;
  const float* beta_device = nullptr;
  float a() const { return alpha_device ? *alpha_device : alpha; }
  float b() const { return beta_device ? *beta_device : beta; }
};

// Argument errors on alpha/beta: null is CUBLAS_STATUS_INVALID_VALUE; in device mode they must be device
// memory (the GPU would fault reading a host pointer).
bool take_scalars(const cublasContext& h, const float* alpha, const float* beta, Scalars* out) {
  if (alpha == nullptr || beta == nullptr) return false;
  if (h.pointer_mode == CUBLAS_POINTER_MODE_DEVICE) {
    if (!device(alpha, sizeof(float)) || !device(beta, sizeof(float))) return false;
    out->alpha_device = alpha;
    out->beta_device = beta;
  } else {
    out->alpha = *alpha;
    out->beta = *beta;
  }
  return true;
}

// C (m x n, ldc) = beta * C, with beta == 0 writing zeros without reading C (BLAS: C need not be set then).
void scale_matrix(float* c, int m, int n, int ldc, float beta) {
  for (int j = 0; j < n; ++j) {
    float* col = c + static_cast<std::size_t>(j) * static_cast<std::size_t>(ldc);
    if (beta == 0.0f)
      std::fill(col, col + m, 0.0f);
    else if (beta != 1.0f)
      for (int i = 0; i < m; ++i) col[i] *= beta;
  }
}

cublasStatus_t queue(const cublasContext& h, const char* what, std::function<void()> work) {
  return enqueue(h.stream, what, std::move(work)) == cudaSuccess ? CUBLAS_STATUS_SUCCESS
                                                                 : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // namespace

extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new (std::nothrow) cublasContext{};
  return *handle != nullptr ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  // cuBLAS documents that releasing a handle implicitly synchronizes the device: so here, with what that
  // does to a CUDA graph capture in progress on any thread (streams.cpp, cudaDeviceSynchronize).
  const cudaError_t synced = cudaDeviceSynchronize();
  // Queued work holds copies of everything it needs, never the handle: deleting now is safe.
  delete handle;
  return synced == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INTERNAL_ERROR;
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = streamId;
  // cuBLAS documents that cublasSetStream unconditionally resets the workspace to the default pool.
  handle->workspace = nullptr;
  handle->workspace_bytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace,
                                                  size_t workspaceSizeInBytes) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (workspaceSizeInBytes > 0) {
    // The workspace is device memory that cuBLAS' kernels use, and cuBLAS documents that it must be aligned
    // to at least 256 bytes (as cudaMalloc's pointers are): otherwise CUBLAS_STATUS_INVALID_VALUE.
    if (!device(workspace, workspaceSizeInBytes)) return CUBLAS_STATUS_INVALID_VALUE;
    if (reinterpret_cast<std::uintptr_t>(workspace) % 256 != 0) return CUBLAS_STATUS_INVALID_VALUE;
  }
  handle->workspace = workspaceSizeInBytes > 0 ? workspace : nullptr;
  handle->workspace_bytes = workspaceSizeInBytes;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
  handle->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  // One of the four modes, optionally OR-ed with CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION. The
  // emulated GEMMs always compute in float32, so TF32 only widens what a caller may legally get.
  const int base = static_cast<int>(mode) & ~static_cast<int>(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
  if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH && base != CUBLAS_PEDANTIC_MATH &&
      base != CUBLAS_TF32_TENSOR_OP_MATH)
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->math_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetAtomicsMode(cublasHandle_t handle, cublasAtomicsMode_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_ATOMICS_NOT_ALLOWED && mode != CUBLAS_ATOMICS_ALLOWED) return CUBLAS_STATUS_INVALID_VALUE;
  handle->atomics_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "<unknown>";  // what cuBLAS answers for a value outside the enum
}

// C = alpha * op(A) op(B) + beta * C, column-major; op(A) is m x k, op(B) k x n, C m x n.
cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                           int m, int n, int k, const float* alpha, const float* A, int lda,
                                           const float* B, int ldb, const float* beta, float* C, int ldc) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  // cublas<t>gemm's CUBLAS_STATUS_INVALID_VALUE: m, n or k < 0; transa/transb not N, T or C; lda, ldb or ldc
  // smaller than the rows of A, B (as stored, i.e. before op) or C, and at least 1; alpha or beta null.
  if (m < 0 || n < 0 || k < 0 || !valid_op(transa) || !valid_op(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  const int a_rows = transa == CUBLAS_OP_N ? m : k, a_cols = transa == CUBLAS_OP_N ? k : m;
  const int b_rows = transb == CUBLAS_OP_N ? k : n, b_cols = transb == CUBLAS_OP_N ? n : k;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  Scalars s;
  if (!take_scalars(*handle, alpha, beta, &s)) return CUBLAS_STATUS_INVALID_VALUE;
  // Quick return, as BLAS: an empty C is neither read nor written (and no kernel is launched).
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  // The matrices are read by the GPU: they must be device memory over the extent their ld implies (A and B
  // are not read when k == 0).
  if (!device(C, matrix_bytes(m, n, ldc))) return CUBLAS_STATUS_INVALID_VALUE;
  if (k > 0 && (!device(A, matrix_bytes(a_rows, a_cols, lda)) || !device(B, matrix_bytes(b_rows, b_cols, ldb))))
    return CUBLAS_STATUS_INVALID_VALUE;
  return queue(*handle, "cublasSgemm", [=] {
    const float a = s.a(), b = s.b();
    // k == 0 or alpha == 0: C = beta * C (beta == 0 writes zeros without reading C, which may hold NaN).
    // Otherwise C is scaled first for the same reason, and the product added with beta = 1.
    scale_matrix(C, m, n, ldc, b);
    if (k == 0 || a == 0.0f) return;
    cblas_sgemm(CblasColMajor, to_cblas(transa), to_cblas(transb), m, n, k, a, A, lda, B, ldb, 1.0f, C, ldc);
  });
}

// y = alpha * op(A) x + beta * y, column-major A (m x n); op(A) x has m rows (N) or n rows (T/C).
cublasStatus_t CUBLASWINAPI cublasSgemv_v2(cublasHandle_t handle, cublasOperation_t trans, int m, int n,
                                           const float* alpha, const float* A, int lda, const float* x, int incx,
                                           const float* beta, float* y, int incy) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  // cublas<t>gemv's CUBLAS_STATUS_INVALID_VALUE: m or n < 0; incx or incy == 0; lda < max(1, m); trans not
  // N, T or C; alpha or beta null.
  if (m < 0 || n < 0 || incx == 0 || incy == 0 || lda < std::max(1, m) || !valid_op(trans))
    return CUBLAS_STATUS_INVALID_VALUE;
  Scalars s;
  if (!take_scalars(*handle, alpha, beta, &s)) return CUBLAS_STATUS_INVALID_VALUE;
  // Quick return, as BLAS' gemv: with m == 0 or n == 0 nothing is done (y is left as it is).
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const int x_len = trans == CUBLAS_OP_N ? n : m, y_len = trans == CUBLAS_OP_N ? m : n;
  if (!device(A, matrix_bytes(m, n, lda)) || !device(x, vector_bytes(x_len, incx)) ||
      !device(y, vector_bytes(y_len, incy)))
    return CUBLAS_STATUS_INVALID_VALUE;
  return queue(*handle, "cublasSgemv", [=] {
    const float a = s.a(), b = s.b();
    // y = beta * y first, beta == 0 writing zeros without reading y; then y += alpha op(A) x.
    const std::size_t step = static_cast<std::size_t>(incy < 0 ? -incy : incy);
    for (int i = 0; i < y_len; ++i) {
      float& v = y[static_cast<std::size_t>(i) * step];
      v = b == 0.0f ? 0.0f : v * b;
    }
    if (a == 0.0f) return;
    cblas_sgemv(CblasColMajor, to_cblas(trans), m, n, a, A, lda, x, incx, 1.0f, y, incy);
  });
}

}  // extern "C"
