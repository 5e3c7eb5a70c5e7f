// conv2d_small_c.hpp: Conv2D forward and weight gradient for few input channels (the seed model's first
// layer: C = 3, 3x3, K = 64), by register-blocked direct kernels instead of im2col + GEMM, whose GEMMs
// are too skinny there (inner dimension KH*KW*C = 27). conv2d.cpp calls these where small_c_applies();
// float only (double, the gradient checks' type, stays on im2col + GEMM). conv2d_small_c.cpp says how.
#pragma once

#include <cstdint>

#include "backend/backend.hpp"
#include "backend/cpu/isa.hpp"
#include "backend/cpu/parallel.hpp"

namespace dropnet::backend::cpu {

// Whether conv2d.cpp gives the problem to these kernels: at most kSmallCMaxChannels input channels (any
// kernel size, stride and padding), at least one output, and a CPU with AVX-512 or AVX2 + FMA. Measured (AMD
// EPYC Zen 5, 2 threads, batch 250 of 32x32, K = 64, against im2col + OpenBLAS): the AVX-512 kernels ran
// 2-4x faster for C = 1 to 16 and still 2.2x for C = 64, the AVX2 ones 1.1-3x; the baseline (SSE2) ones
// 2x slower, so without AVX2 conv2d.cpp keeps im2col + GEMM. Many-channel layers stay with conv2d.cpp's
// own dispatch (its GEMM and Winograd paths) whatever this measured: that is its decision.
constexpr std::int64_t kSmallCMaxChannels = 8;
bool small_c_applies(const ConvGeometry& g);

// y (N,OH,OW,K) = x (N,H,W,C) (*) w (KH,KW,C,K) + b; b may be null. For a geometry small_c_applies() takes.
// `isa` picks the kernels' instruction set (a path this CPU supports; tests run each one): the paths
// round differently (FMA or not, conv2d_small_c.cpp). `threads` is how many parts the work is split
// into; it never changes a bit of the result.
void conv2d_small_c_forward(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
                            CpuIsa isa = cpu_isa(), std::int64_t threads = cpu_threads());

// dw (KH,KW,C,K) = sum over output pixels of patch^T dy; db (K) = sum over pixels of dy (db may be null).
// No dx: the first layer needs none (conv2d_backward takes im2col + GEMM where dx is wanted). The sums run
// in blocks of images fixed by the geometry, added in block order: the same bits for any `threads`.
void conv2d_small_c_weight_gradient(const float* x, const float* dy, float* dw, float* db, const ConvGeometry& g,
                                    CpuIsa isa = cpu_isa(), std::int64_t threads = cpu_threads());

}  // namespace dropnet::backend::cpu
