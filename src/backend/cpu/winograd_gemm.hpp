// winograd_gemm.hpp: the small GEMMs of the Winograd convolutions (winograd.cpp), one per transformed
// position and block of tiles: [tiles x C] x [C x K] in the forward and input-gradient passes,
// [C x tiles] x [tiles x K] in the weight gradient. A register-blocked kernel of our own rather than OpenBLAS:
// with C = K = 64 OpenBLAS repacks both operands on every call, and this kernel, which reads them in place,
// was 2.1-2.3x faster on these shapes (one core: 201-254 GFLOP/s against 97-112; docs/cpu-convolution.md).
//
// The kernel keeps an R x (NV vectors) tile of the result in registers and walks the inner dimension: per
// step NV vector loads of B's row, R broadcasts of A's column, R x NV multiply-adds. It is written for a GCC
// vector type V of 16, 8 or 4 floats, instantiated by winograd.cpp once per instruction set with the
// vectors that set has registers for: AVX-512 6 x 4 zmm (24 of 32 registers), AVX2 6 x 2 ymm and the x86-64
// baseline 6 x 2 xmm (12 of 16). The columns must be a multiple of 16 (winograd.cpp pads K); the rows and
// the inner dimension may be anything.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dropnet::backend::cpu::winograd {

typedef float Vec16 __attribute__((vector_size(64)));
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec4 __attribute__((vector_size(16)));
template <typename V>
constexpr std::int64_t kWidth = std::int64_t(sizeof(V) / sizeof(float));
// Channel counts in the transformed domain are padded to this, a multiple of every width above.
constexpr std::int64_t kPad = 16;

// One operand of a GEMM, element (row, i) at data[row * row_step + i * inner_step]: the left operand is
// read one element at a time (broadcast), in any layout, so the weight gradient reads V transposed in place.
struct Operand {
  const float* data;
  std::ptrdiff_t row_step, inner_step;
};

template <typename V, int R, int NV>
[[gnu::always_inline]] inline void micro_tile(Operand a, const float* b, std::ptrdiff_t ldb, std::ptrdiff_t inner,
                                              float* c, std::ptrdiff_t ldc, bool accumulate) {
  constexpr std::int64_t W = kWidth<V>;
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) {
      if (accumulate) std::memcpy(&acc[r][j], c + r * ldc + W * j, sizeof(V));
      else acc[r][j] = V{};
    }
  for (std::ptrdiff_t i = 0; i < inner; ++i) {
    V row[NV];
    for (int j = 0; j < NV; ++j) std::memcpy(&row[j], b + i * ldb + W * j, sizeof(V));
    for (int r = 0; r < R; ++r) {
      const float s = a.data[r * a.row_step + i * a.inner_step];
      for (int j = 0; j < NV; ++j) acc[r][j] += s * row[j];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) std::memcpy(c + r * ldc + W * j, &acc[r][j], sizeof(V));
}

template <typename V, int NV>
[[gnu::always_inline]] inline void column_panel(std::int64_t rows, Operand a, const float* b, std::ptrdiff_t ldb,
                                                std::ptrdiff_t inner, float* c, std::ptrdiff_t ldc, bool accumulate) {
  constexpr int kRows = 6;
  std::int64_t r = 0;
  for (; r + kRows <= rows; r += kRows)
    micro_tile<V, kRows, NV>({a.data + r * a.row_step, a.row_step, a.inner_step}, b, ldb, inner, c + r * ldc, ldc,
                             accumulate);
  const Operand rest{a.data + r * a.row_step, a.row_step, a.inner_step};
  float* c_rest = c + r * ldc;
  switch (rows - r) {
    case 5: micro_tile<V, 5, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    case 4: micro_tile<V, 4, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    case 3: micro_tile<V, 3, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    case 2: micro_tile<V, 2, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    case 1: micro_tile<V, 1, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    default: break;
  }
}

// c (rows x cols, row stride ldc) = a (rows x inner) b (inner x cols, row stride ldb), or += when accumulate;
// cols a multiple of kPad.
template <typename V>
[[gnu::always_inline]] inline void small_gemm(std::int64_t rows, std::int64_t cols, std::ptrdiff_t inner, Operand a,
                                              const float* b, std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc,
                                              bool accumulate) {
  constexpr std::int64_t W = kWidth<V>;
  if constexpr (W == 16) {  // 64 columns a panel, then 48, 32 or 16
    for (std::int64_t j = 0; j < cols; j += 4 * W) {
      switch (std::min<std::int64_t>(4, (cols - j) / W)) {
        case 4: column_panel<V, 4>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate); break;
        case 3: column_panel<V, 3>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate); break;
        case 2: column_panel<V, 2>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate); break;
        default: column_panel<V, 1>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate); break;
      }
    }
  } else {  // 2 vectors a panel: 16 or 8 columns, which kPad divides
    for (std::int64_t j = 0; j < cols; j += 2 * W)
      column_panel<V, 2>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate);
  }
}

}  // namespace dropnet::backend::cpu::winograd
