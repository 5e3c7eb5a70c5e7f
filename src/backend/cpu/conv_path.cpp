// conv_path.cpp: the choice between the direct and the Winograd convolutions (conv_path.hpp).
#include "backend/cpu/conv_path.hpp"

#include <cstdlib>
#include <optional>
#include <string>

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

// Channels below which a pass stays direct: with few channels the GEMMs are short and the transforms,
// which cost the same per channel, dominate (and the first layer's C = 3 has a kernel of its own).
constexpr std::int64_t kMinWinogradChannels = 8;

}  // namespace

ConvPath conv_path(const ConvGeometry& g, ConvPass pass) {
  const std::optional<ConvPath> forced = forced_path();
  if (!winograd_applies(g)) return ConvPath::Direct;
  if (forced) return *forced;
  (void)pass;
  if (g.c < kMinWinogradChannels || g.k < kMinWinogradChannels) return ConvPath::Direct;
  return ConvPath::Winograd4;
}

const char* conv_path_name(const ConvGeometry& g, ConvPass pass) {
  switch (conv_path(g, pass)) {
    case ConvPath::Winograd2: return "winograd2";
    case ConvPath::Winograd4: return "winograd4";
    default: return "direct";
  }
}

}  // namespace dropnet::backend::cpu
