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
//   model.compile({.optimizer = dropnet::Adam{.learning_rate = 1e-3}, .loss = "categorical_crossentropy", .seed = 1});
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>

#include "dropnet/model.hpp"

namespace dropnet::cli {

// The number of Dropout layers in the seed model (after each conv block).
inline constexpr std::size_t kSeedDropoutLayers = 2;

// Which layer of the dropout family stands in the Dropout positions (and on the input, if asked):
// Dropout, SpatialDropout2D (whole channels), GaussianDropout, AlphaDropout, DropBlock2D.
enum class DropoutType { Standard, Spatial, Gaussian, Alpha, DropBlock };
inline constexpr const char* kDropoutTypeNames = "dropout, spatial, gaussian, alpha or dropblock";
// "dropout" (or "standard"), "spatial", "gaussian", "alpha", "dropblock"; throws InvalidArgument otherwise.
DropoutType parse_dropout_type(const std::string& name);
const char* to_string(DropoutType type);

struct SeedModelConfig {
  double dropout = 0.5;   // the rate of every Dropout layer unless layer_dropout overrides it; in [0, 1]
  // Per-layer rates, in model order (first: after the first conv block); an empty entry uses `dropout`.
  std::array<std::optional<double>, kSeedDropoutLayers> layer_dropout{};
  double max_norm = 2.0;  // MaxNorm max_value on the three hidden kernels; 0 means no constraint
  DropoutType type = DropoutType::Standard;
  std::int64_t block_size = 3;           // DropBlock2D's block (the second block's maps are 6x6)
  DropoutSchedule schedule{};            // every dropout layer's, in optimizer steps
  // A layer of `type` on the input image with this rate (0: none). It is the model's first layer, so it
  // shifts every later layer's position and with it the seeds their initial weights are drawn from.
  double input_dropout = 0.0;
  // The BN variant: BatchNormalization (Keras' defaults) after each Conv2D, which then has no activation and
  // no bias (BatchNormalization's mean subtraction cancels a bias; its beta is the offset), and the ReLU as an
  // Activation layer after it:
  //   Conv2D(linear, use_bias=False) -> BatchNormalization -> Activation(relu) -> MaxPooling2D -> dropout
  // ReLU after BN is the placement of Ioffe and Szegedy (2015) and of Li et al. (2019, "Understanding the
  // disharmony between dropout and batch normalization by variance shift"), whose subject is exactly this
  // order: the first block's dropout feeds the second block's BatchNormalization, whose moving variance is
  // collected with dropout on and used with it off. The extra layers shift the later layers' positions and
  // so the seeds of their initial weights. The CPU's fused Conv2D(relu) > MaxPooling2D [> Dropout] blocks do
  // not apply (the Conv2D is linear and BatchNormalization sits between): the layers run one by one.
  bool batch_norm = false;
};

// "RATE" (every dropout layer) or "R1,R2" (one per layer, in model order) into config's rates; throws
// InvalidArgument unless there are 1 or kSeedDropoutLayers numbers, each from 0 to 1.
void set_layer_rates(SeedModelConfig& config, const std::string& text);
// The rates in the same form: "0.5" when every layer has the same rate, else "0.25,0.5".
std::string layer_rates_text(const SeedModelConfig& config);

// Throws dropnet::InvalidArgument (from the layers, with Keras' wording) for a rate outside [0, 1], and
// for a negative or non-finite max_norm.
Sequential build_seed_model(const SeedModelConfig& config = {});

}  // namespace dropnet::cli
