// gemm.cpp: row-major GEMM on OpenBLAS for float and double.
//
// dropnet runs OpenBLAS single-threaded and splits the work over the cores itself (parallel.hpp). The
// convolutions call it on small blocks of patch rows that they have just written, from several threads at
// once, so the patches are read while still in cache; OpenBLAS's own threads would sit beside ours, and
// after each threaded call they spin for a while, taking the cores from the copies that follow.
//
// PROCESS-WIDE: openblas_set_num_threads(1) below is the one setting that is not a backend context's
// (backends are per model, backend.hpp): OpenBLAS 0.3.21 has no per-call thread count, so every CPU backend
// of the process, and any OpenBLAS call the host program makes itself after dropnet's first GEMM, runs
// single-threaded OpenBLAS. A program that wants threaded OpenBLAS for its own calls sets it again.
// docs/design.md ("Threads on the CPU") says so too.
//
// Models training side by side (sweep --concurrent) coexist with it: each context's share of the threads
// (BackendSettings::cpu_threads) is the count of OUR loop threads, each of which calls single-threaded
// OpenBLAS, so the process runs at most the sum of the shares. OpenBLAS's threaded builds (Debian's
// libopenblas0-pthread) take concurrent calls from several threads; each call works in its own buffer.
#include <algorithm>

#include <cblas.h>

#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"

namespace dropnet::backend::cpu {
namespace {

void use_single_threaded_openblas() {
  static const bool done = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}

CBLAS_TRANSPOSE op(bool trans) { return trans ? CblasTrans : CblasNoTrans; }

void blas_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
               std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, op(ta), op(tb), int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c,
              int(ldc));
}

void blas_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
               std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, op(ta), op(tb), int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c,
              int(ldc));
}

}  // namespace

template <typename T>
void gemm_on_this_thread(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                         std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  use_single_threaded_openblas();
  blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <typename T>
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
          const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  use_single_threaded_openblas();
  // Each thread takes a band of C's rows, i.e. of op(A)'s rows: every element of C is still one dot product
  // over all of k, so the split changes no result. Below ~1 MFLOP a band is not worth a thread start.
  const double flops_per_row = 2.0 * double(n) * double(k);
  const auto grain = std::max<std::int64_t>(32, std::int64_t(double(1 << 20) / std::max(flops_per_row, 1.0)));
  parallel_for(m, grain, [&](std::int64_t r0, std::int64_t r1) {
    const T* a_band = ta ? a + r0 : a + r0 * lda;
    blas_gemm(ta, tb, r1 - r0, n, k, alpha, a_band, lda, b, ldb, beta, c + r0 * ldc, ldc);
  });
}

template void gemm_on_this_thread<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                                         std::int64_t, const float*, std::int64_t, float, float*, std::int64_t);
template void gemm_on_this_thread<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double,
                                          const double*, std::int64_t, const double*, std::int64_t, double, double*,
                                          std::int64_t);
template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                          const float*, std::int64_t, float, float*, std::int64_t);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double, const double*,
                           std::int64_t, const double*, std::int64_t, double, double*, std::int64_t);

}  // namespace dropnet::backend::cpu
