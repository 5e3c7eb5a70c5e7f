// seed_model.cpp: the seed model (see seed_model.hpp).
#include "programs/seed_model.hpp"

#include <cmath>
#include <cstdint>
#include <memory>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dropnet/cifar10.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"

namespace dropnet::cli {
namespace {

std::unique_ptr<Layer> dropout_layer(const SeedModelConfig& c, double rate) {
  switch (c.type) {
    case DropoutType::Standard: return std::make_unique<Dropout>(rate, DropoutOptions{.schedule = c.schedule});
    case DropoutType::Gaussian: return std::make_unique<GaussianDropout>(rate, RandomLayerOptions{.schedule = c.schedule});
    case DropoutType::Alpha: return std::make_unique<AlphaDropout>(rate, DropoutOptions{.schedule = c.schedule});
    case DropoutType::Spatial: return std::make_unique<SpatialDropout2D>(rate, RandomLayerOptions{.schedule = c.schedule});
    case DropoutType::DropBlock:
      return std::make_unique<DropBlock2D>(rate, c.block_size, RandomLayerOptions{.schedule = c.schedule});
  }
  throw InvalidArgument(fmt::format("seed model: unknown dropout type {}", int(c.type)));
}

}  // namespace

DropoutType parse_dropout_type(const std::string& name) {
  if (name == "dropout" || name == "standard") return DropoutType::Standard;
  if (name == "spatial") return DropoutType::Spatial;
  if (name == "gaussian") return DropoutType::Gaussian;
  if (name == "alpha") return DropoutType::Alpha;
  if (name == "dropblock") return DropoutType::DropBlock;
  throw InvalidArgument(fmt::format("unknown dropout type '{}'; expected {}", name, kDropoutTypeNames));
}

const char* to_string(DropoutType type) {
  switch (type) {
    case DropoutType::Standard: return "dropout";
    case DropoutType::Spatial: return "spatial";
    case DropoutType::Gaussian: return "gaussian";
    case DropoutType::Alpha: return "alpha";
    case DropoutType::DropBlock: return "dropblock";
  }
  return "dropout";
}

void set_layer_rates(SeedModelConfig& config, const std::string& text) {
  std::vector<double> rates;
  std::size_t from = 0;
  for (;;) {
    const std::size_t comma = text.find(',', from);
    const std::string item = text.substr(from, comma - from);
    char* end = nullptr;
    const double r = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(r >= 0.0 && r <= 1.0))
      throw InvalidArgument(fmt::format("dropout rates '{}': '{}' is not a rate from 0 to 1", text, item));
    rates.push_back(r);
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  if (rates.size() != 1 && rates.size() != kSeedDropoutLayers)
    throw InvalidArgument(fmt::format("dropout rates '{}': give one rate for every dropout layer or one per layer "
                                      "({} numbers); got {}", text, kSeedDropoutLayers, rates.size()));
  config.dropout = rates[0];
  for (std::size_t i = 0; i < kSeedDropoutLayers; ++i)
    config.layer_dropout[i] = rates.size() == 1 ? std::optional<double>() : rates[i];
}

std::string layer_rates_text(const SeedModelConfig& config) {
  std::string text;
  bool same = true;
  for (std::size_t i = 0; i < kSeedDropoutLayers; ++i) {
    const double r = config.layer_dropout[i].value_or(config.dropout);
    same = same && r == config.layer_dropout[0].value_or(config.dropout);
    text += fmt::format("{}{}", i ? "," : "", r);
  }
  return same ? fmt::format("{}", config.layer_dropout[0].value_or(config.dropout)) : text;
}

Sequential build_seed_model(const SeedModelConfig& config) {
  if (!(config.max_norm >= 0.0 && std::isfinite(config.max_norm)))
    throw InvalidArgument("seed model: max_norm must be a finite number >= 0 (0: no constraint); received " +
                          std::to_string(config.max_norm));
  std::optional<MaxNorm> constraint;
  if (config.max_norm > 0.0) constraint = MaxNorm{.max_value = config.max_norm};

  const Conv2DOptions conv{.padding = "valid", .activation = "relu", .kernel_initializer = "he_uniform",
                           .kernel_constraint = constraint};
  const MaxPooling2DOptions pool{.pool_size = {2, 2}, .strides = std::nullopt};
  const DenseOptions hidden{.activation = "relu", .kernel_initializer = "he_uniform", .kernel_constraint = constraint};
  const DenseOptions output{.activation = "softmax", .kernel_constraint = std::nullopt};
  auto rate = [&](std::size_t i) { return config.layer_dropout[i].value_or(config.dropout); };

  Conv2DOptions bn_conv = conv;  // the BN variant's (seed_model.hpp)
  bn_conv.activation = "linear";
  bn_conv.use_bias = false;
  auto conv_block = [&](Sequential& model, double dropout_rate) {
    if (config.batch_norm) {
      model.add(std::make_unique<Conv2D>(64, std::array<std::int64_t, 2>{3, 3}, bn_conv));
      model.add(std::make_unique<BatchNormalization>());
      model.add(std::make_unique<Activation>("relu"));
    } else {
      model.add(std::make_unique<Conv2D>(64, std::array<std::int64_t, 2>{3, 3}, conv));
    }
    model.add(std::make_unique<MaxPooling2D>(pool));
    model.add(dropout_layer(config, dropout_rate));
  };

  Sequential model({cifar10::kHeight, cifar10::kWidth, cifar10::kChannels});
  if (config.input_dropout > 0.0) model.add(dropout_layer(config, config.input_dropout));
  conv_block(model, rate(0));
  conv_block(model, rate(1));
  model.add(std::make_unique<Flatten>());
  model.add(std::make_unique<Dense>(256, hidden));
  model.add(std::make_unique<Dense>(cifar10::kClasses, output));
  return model;
}

}  // namespace dropnet::cli
