// winograd.hpp: 3x3 stride-1 convolutions on the CPU by Winograd's minimal filtering (winograd.cpp says
// how), float only. The three passes of a Conv2D, for any padding and size (the tiles that run past the
// input or the output are zero-padded or cut), NHWC data and the Keras kernel layout (3, 3, C, K):
// conv2d.cpp calls them where conv_path.hpp's rule says so; tests call them directly.
//
// `tile` is the output tile m of F(m x m, 3 x 3): 2 or 4. `parts` is how many threads share the blocks of
// work (each with its own scratch): cpu_threads() in the library, other values in the tests, which check
// that the results never depend on it. `isa`: the instruction set whose compiled variant runs (Best: the
// widest this CPU has); the tests run each one the CPU supports.
#pragma once

#include "backend/backend.hpp"

namespace dropnet::backend::cpu {

// Whether the Winograd passes take this geometry: a 3x3 kernel, stride 1 (any padding).
bool winograd_applies(const ConvGeometry& g);

enum class WinogradIsa { Best, Avx512, Avx2, Baseline };
bool winograd_isa_supported(WinogradIsa isa);

// y = x (*) w + b (b may be null).
void winograd_forward(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g, int tile,
                      unsigned parts, WinogradIsa isa = WinogradIsa::Best);
// dx = the full correlation of dy with the kernel rotated by 180 degrees, C and K swapped.
void winograd_input_grad(const float* dy, const float* w, float* dx, const ConvGeometry& g, int tile,
                         unsigned parts, WinogradIsa isa = WinogradIsa::Best);
// dw = sum over images and output positions of x patch (x) dy, with m x m tiles of dy as the filters of
// F(3 x 3, m x m); db = the column sums of dy (db may be null).
void winograd_weight_grad(const float* x, const float* dy, float* dw, float* db, const ConvGeometry& g, int tile,
                          unsigned parts, WinogradIsa isa = WinogradIsa::Best);

}  // namespace dropnet::backend::cpu
