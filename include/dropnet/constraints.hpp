// constraints.hpp: weight constraints, applied after every optimizer step (as Keras' BaseOptimizer.apply).
#pragma once

#include <vector>

namespace dropnet {

// keras.constraints.MaxNorm(max_value=2, axis=0): rescales each weight vector whose L2 norm over `axis`
// exceeds max_value back onto the ball: w *= clip(n, 0, max_value) / (1e-7 + n). Axes index the Keras
// layout of the kernel: Dense (input_dim, units), Conv2D (rows, cols, in_channels, filters). axis {0} on a
// Dense kernel constrains each unit's incoming weights; use {0, 1, 2} for one norm per Conv2D filter.
// Negative axes count from the end. max_value must be positive and finite (checked when the layer is built).
struct MaxNorm {
  double max_value = 2.0;
  std::vector<int> axis = {0};
};

}  // namespace dropnet
