// geometry.cpp: Keras' output-size and padding rules (keras/src/ops/operation_utils.py).
#include "backend/backend.hpp"

#include <algorithm>

namespace dropnet::backend {

AxisGeometry axis_geometry(std::int64_t in, std::int64_t k, std::int64_t s, bool same_padding) {
  if (!same_padding) return {in >= k ? (in - k) / s + 1 : 0, 0};
  const std::int64_t out = (in + s - 1) / s;
  const std::int64_t total = std::max<std::int64_t>((out - 1) * s + k - in, 0);
  return {out, total / 2};
}

}  // namespace dropnet::backend
