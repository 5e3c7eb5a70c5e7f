// conv_path.cpp: the choice between the direct and the Winograd convolutions (conv_path.hpp).
#include "backend/cpu/conv_path.hpp"

#include <cstdlib>
#include <optional>
#include <string>

#include "backend/cpu/conv2d_small_c.hpp"
#include "backend/cpu/winograd.hpp"
#include "dropnet/errors.hpp"

namespace dropnet::backend::cpu {
namespace {

// DROPNET_CPU_CONV, read once; nullopt = auto.
std::optional<ConvPath> forced_path() {
  static const std::string value = [] {
    const char* env = std::getenv("DROPNET_CPU_CONV");
    return std::string(env != nullptr ? env : "");
  }();
  if (value.empty() || value == "auto") return std::nullopt;
  if (value == "direct") return ConvPath::Direct;
  if (value == "winograd2") return ConvPath::Winograd2;
  if (value == "winograd4") return ConvPath::Winograd4;
  throw InvalidArgument("DROPNET_CPU_CONV=" + value + ": expected auto, direct, winograd2 or winograd4");
}

// Channels below which a pass stays direct. Winograd measured faster than im2col + GEMM from C = K = 8 up,
// and even for the seed's first layer (C = 3, K = 64); the small-C kernels (conv2d_small_c.hpp) take that
// layer before this rule is asked (docs/cpu-convolution.md has the numbers to compare them with).
constexpr std::int64_t kMinWinogradChannels = 8;

// GEMM work per output of F(m x m) on an out_h x out_w grid: alpha^2 products per tile, tiles cut at the edge.
double work(std::int64_t out_h, std::int64_t out_w, std::int64_t m) {
  const std::int64_t tiles = ((out_h + m - 1) / m) * ((out_w + m - 1) / m);
  return double((m + 2) * (m + 2) * tiles);
}

// F(4x4) where its GEMMs are at least 10% smaller than F(2x2)'s on this grid (13x13: 576 against 784
// products per channel pair), else F(2x2), whose transforms are cheaper and more accurate: on 6x6 outputs
// both need 144 and F(2x2) measured 12% faster.
ConvPath tile_for_grid(std::int64_t out_h, std::int64_t out_w) {
  return work(out_h, out_w, 4) < 0.9 * work(out_h, out_w, 2) ? ConvPath::Winograd4 : ConvPath::Winograd2;
}

// The weight gradient keeps alpha^2 x C x K sums per group of blocks; F(4x4)'s (36 C K floats) fell out of
// the 1 MiB L2 for C = K = 128 (2.4 MB: F(2x2) was 12% faster there), not for C = K = 96 (1.3 MB: F(4x4)
// 8% faster).
constexpr std::int64_t kMaxWeightSums = 384 * 1024;  // floats

}  // namespace

ConvPath conv_path(const ConvGeometry& g, ConvPass pass) {
  const std::optional<ConvPath> forced = forced_path();
  if (forced == ConvPath::Direct) return ConvPath::Direct;
  if (forced && winograd_applies(g)) return *forced;
  // Few input channels: the direct kernels, which compute the forward and the weight gradient only.
  if (pass != ConvPass::InputGrad && small_c_applies(g)) return ConvPath::SmallC;
  if (!winograd_applies(g)) return ConvPath::Direct;
  if (g.c < kMinWinogradChannels || g.k < kMinWinogradChannels) return ConvPath::Direct;
  switch (pass) {
    case ConvPass::InputGrad: return tile_for_grid(g.h, g.w);  // dx is the correlation's output
    case ConvPass::WeightGrad:
      if (36 * g.c * g.k > kMaxWeightSums) return ConvPath::Winograd2;
      return tile_for_grid(g.oh, g.ow);  // the tiles of dy
    default: return tile_for_grid(g.oh, g.ow);
  }
}

const char* conv_path_name(const ConvGeometry& g, ConvPass pass) {
  switch (conv_path(g, pass)) {
    case ConvPath::SmallC: return "small-c";
    case ConvPath::Winograd2: return "winograd2";
    case ConvPath::Winograd4: return "winograd4";
    default: return "direct";
  }
}

}  // namespace dropnet::backend::cpu
