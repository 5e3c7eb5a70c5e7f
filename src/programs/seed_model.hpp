// seed_model.hpp: the seed program's model, the Keras dropout convnet for CIFAR-10, built from the public
// API only; `dropnet train` and dropnet-bench's sweep and throughput build it here (dropnet_program_support):
//
//   Conv2D(64, (3, 3), relu, he_uniform, MaxNorm)  -> MaxPooling2D((2, 2)) -> Dropout
//   Conv2D(64, (3, 3), relu, he_uniform, MaxNorm)  -> MaxPooling2D((2, 2)) -> Dropout
//   Flatten -> Dense(256, relu, he_uniform, MaxNorm) -> Dense(10, softmax)
//
// Padding is "valid" throughout, as in the seed; MaxNorm keeps Keras' default axis 0 (the seed writes
// MaxNorm(2) without an axis). The model comes back uncompiled; the seed compiles it with Adam's defaults:
//
//   dropnet::Sequential model = dropnet::cli::build_seed_model({.dropout = 0.5, .max_norm = 2.0});
//   model.compile({.optimizer = dropnet::Adam{.learning_rate = 1e-3}, .seed = 1});
#pragma once

#include <array>
#include <cstddef>
#include <optional>

#include "dropnet/model.hpp"

namespace dropnet::cli {

// The number of Dropout layers in the seed model (after each conv block).
inline constexpr std::size_t kSeedDropoutLayers = 2;

struct SeedModelConfig {
  double dropout = 0.5;   // the rate of every Dropout layer unless layer_dropout overrides it; in [0, 1]
  // Per-layer rates, in model order (first: after the first conv block); an empty entry uses `dropout`.
  std::array<std::optional<double>, kSeedDropoutLayers> layer_dropout{};
  double max_norm = 2.0;  // MaxNorm max_value on the three hidden kernels; 0 means no constraint
};

// Throws dropnet::InvalidArgument (from the layers, with Keras' wording) for a rate outside [0, 1], and
// for a negative or non-finite max_norm.
Sequential build_seed_model(const SeedModelConfig& config = {});

}  // namespace dropnet::cli
