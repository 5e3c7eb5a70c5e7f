// layer_util.hpp: argument checks and helpers shared by the layer implementations (not public API).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/layers.hpp"

namespace dropnet::layer_util {

// Keras' wording for non-positive kernel sizes, strides and pool sizes.
void check_positive_pair(const std::array<std::int64_t, 2>& v, const char* what);
// "valid" -> false, "same" -> true; anything else throws InvalidArgument.
bool parse_padding(const std::string& padding);
void check_initializer(const std::string& name, const char* what);
void check_constraint(const std::optional<MaxNorm>& c);
// MaxNorm axes made non-negative, unique and sorted for a kernel of `shape`.
std::vector<int> normalize_axes(const MaxNorm& c, const Shape& shape, const std::string& layer);
// A parameter with its host value drawn from `initializer`.
Param make_param(std::string name, Shape shape, const std::string& initializer, std::uint64_t seed,
                 std::optional<MaxNorm> constraint);
// An independent seed for stream `stream` of `seed` (layer weights, dropout masks).
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream);
// The first `batch` rows of a scratch buffer sized for the largest batch.
Tensor batch_view(Tensor& buffer, std::int64_t batch);

}  // namespace dropnet::layer_util
