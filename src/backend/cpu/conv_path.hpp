// conv_path.hpp: which algorithm a float Conv2D pass takes on the CPU: im2col + GEMM (conv2d.cpp, every
// geometry), the direct kernels for few input channels (conv2d_small_c.cpp: forward and weight gradient,
// where small_c_applies) or Winograd F(2x2,3x3) / F(4x4,3x3) (winograd.cpp, 3x3 stride 1 only). double always
// takes im2col + GEMM (the gradient checks in tests/ use it as the reference).
//
// The rule (conv_path.cpp, measurements in docs/cpu-convolution.md) can be pinned for the whole process with
// DROPNET_CPU_CONV=auto|direct|winograd2|winograd4, read once: "direct" takes im2col + GEMM everywhere;
// "winograd2"/"winograd4" take that tile wherever Winograd applies (any channel count) and the auto rule's
// choice elsewhere; an unknown value throws
// InvalidArgument from the first convolution.
#pragma once

#include "backend/backend.hpp"

namespace dropnet::backend::cpu {

enum class ConvPass { Forward, InputGrad, WeightGrad };
enum class ConvPath { Direct, SmallC, Winograd2, Winograd4 };

ConvPath conv_path(const ConvGeometry& g, ConvPass pass);
// "direct", "small-c", "winograd2" or "winograd4": what conv_path says, for reports (dropnet-bench throughput).
const char* conv_path_name(const ConvGeometry& g, ConvPass pass);
// The output tile of a Winograd path (2 or 4).
inline int winograd_tile(ConvPath path) { return path == ConvPath::Winograd2 ? 2 : 4; }

}  // namespace dropnet::backend::cpu
