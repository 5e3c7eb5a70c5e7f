// winograd_gemm.hpp: the small GEMMs of the Winograd convolutions (winograd.cpp), one per transformed
// position and block of tiles: [tiles x C] x [C x K] in the forward and input-gradient passes,
// [C x tiles] x [tiles x K] in the weight gradient. A register-blocked kernel of our own rather than OpenBLAS:
// with C = K = 64 OpenBLAS repacks both operands on every call, and a kernel that reads them in place was
// ~2.3x faster on these shapes (measured on the 2-core AMD EPYC that trains the seed model, blocks of 16 to
// 256 tiles: 56-83 GFLOP/s against 27-33 for cblas_sgemm, one thread). docs/cpu-convolution.md has the numbers.
//
// The kernel keeps an R x (16 NV) tile of the result in vector registers and walks the inner dimension:
// per step NV vector loads of B's row, R broadcasts of A's column, R x NV multiply-adds. With 512-bit
// vectors R = 6, NV = 4 uses 24 of the 32 registers. The columns must be a multiple of 16 (winograd.cpp pads
// K), the rows and the inner dimension may be anything. Everything here is inlined into the target_clones
// functions of winograd.cpp, so the vectors are zmm there, and pairs of ymm or quadruples of xmm in the
// AVX2 and baseline clones (correct, but spilling: those machines were not measured).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dropnet::backend::cpu::winograd {

constexpr std::int64_t kLanes = 16;  // floats per vector below; the GEMMs' column counts are multiples of it
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

// One operand of a GEMM, element (row, i) at data[row * row_step + i * inner_step]: the left operand is
// read one element at a time (broadcast), in any layout, so the weight gradient reads V transposed in place.
struct Operand {
  const float* data;
  std::ptrdiff_t row_step, inner_step;
};

template <int R, int NV>
[[gnu::always_inline]] inline void micro_tile(Operand a, const float* b, std::ptrdiff_t ldb, std::ptrdiff_t inner,
                                              float* c, std::ptrdiff_t ldc, bool accumulate) {
  Lanes acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) {
      if (accumulate) std::memcpy(&acc[r][j], c + r * ldc + kLanes * j, sizeof(Lanes));
      else acc[r][j] = Lanes{};
    }
  for (std::ptrdiff_t i = 0; i < inner; ++i) {
    Lanes row[NV];
    for (int j = 0; j < NV; ++j) std::memcpy(&row[j], b + i * ldb + kLanes * j, sizeof(Lanes));
    for (int r = 0; r < R; ++r) {
      const float s = a.data[r * a.row_step + i * a.inner_step];
      for (int j = 0; j < NV; ++j) acc[r][j] += s * row[j];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) std::memcpy(c + r * ldc + kLanes * j, &acc[r][j], sizeof(Lanes));
}

template <int NV>
[[gnu::always_inline]] inline void column_panel(std::int64_t rows, Operand a, const float* b, std::ptrdiff_t ldb,
                                                std::ptrdiff_t inner, float* c, std::ptrdiff_t ldc, bool accumulate) {
  constexpr int kRows = 6;
  std::int64_t r = 0;
  for (; r + kRows <= rows; r += kRows)
    micro_tile<kRows, NV>({a.data + r * a.row_step, a.row_step, a.inner_step}, b, ldb, inner, c + r * ldc, ldc,
                          accumulate);
  const Operand rest{a.data + r * a.row_step, a.row_step, a.inner_step};
  float* c_rest = c + r * ldc;
  switch (rows - r) {
    case 5: micro_tile<5, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    case 4: micro_tile<4, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    case 3: micro_tile<3, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    case 2: micro_tile<2, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    case 1: micro_tile<1, NV>(rest, b, ldb, inner, c_rest, ldc, accumulate); break;
    default: break;
  }
}

// c (rows x cols, row stride ldc) = a (rows x inner) b (inner x cols, row stride ldb), or += when accumulate;
// cols a multiple of kLanes.
[[gnu::always_inline]] inline void small_gemm(std::int64_t rows, std::int64_t cols, std::ptrdiff_t inner, Operand a,
                                              const float* b, std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc,
                                              bool accumulate) {
  for (std::int64_t j = 0; j < cols; j += 4 * kLanes) {
    switch (std::min<std::int64_t>(4, (cols - j) / kLanes)) {
      case 4: column_panel<4>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate); break;
      case 3: column_panel<3>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate); break;
      case 2: column_panel<2>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate); break;
      default: column_panel<1>(rows, a, b + j, ldb, inner, c + j, ldc, accumulate); break;
    }
  }
}

}  // namespace dropnet::backend::cpu::winograd
