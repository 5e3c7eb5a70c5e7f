// dense.cpp: Dense on the CPU: three GEMMs and a column sum.
#include <algorithm>

#include "backend/cpu/ops.hpp"

namespace dropnet::backend::cpu {

template <typename T>
void dense_forward(const T* x, const T* w, const T* b, T* y, std::int64_t n, std::int64_t in, std::int64_t out) {
  if (b != nullptr) {
    for (std::int64_t r = 0; r < n; ++r) std::copy(b, b + out, y + r * out);
  }
  gemm<T>(false, false, n, out, in, T(1), x, in, w, out, b ? T(1) : T(0), y, out);
}

template <typename T>
void dense_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, std::int64_t n, std::int64_t in,
                    std::int64_t out) {
  gemm<T>(true, false, in, out, n, T(1), x, in, dy, out, T(0), dw, out);   // dw = x^T dy
  if (dx != nullptr) gemm<T>(false, true, n, in, out, T(1), dy, out, w, out, T(0), dx, in);  // dx = dy w^T
  if (db != nullptr) {
    std::fill(db, db + out, T(0));
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < out; ++j) db[j] += dy[r * out + j];
  }
}

template void dense_forward<float>(const float*, const float*, const float*, float*, std::int64_t, std::int64_t,
                                   std::int64_t);
template void dense_forward<double>(const double*, const double*, const double*, double*, std::int64_t,
                                    std::int64_t, std::int64_t);
template void dense_backward<float>(const float*, const float*, const float*, float*, float*, float*, std::int64_t,
                                    std::int64_t, std::int64_t);
template void dense_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                     std::int64_t, std::int64_t, std::int64_t);

}  // namespace dropnet::backend::cpu
