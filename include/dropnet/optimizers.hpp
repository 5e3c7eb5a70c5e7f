// optimizers.hpp: the optimizer configuration. The update itself (Keras' formula, kernels/adam_math.hpp in
// dropnet's sources) runs on the model's device in one call over all parameters.
#pragma once

namespace dropnet {

// keras.optimizers.Adam with Keras' defaults. epsilon is the paper's "epsilon hat". Sequential::compile
// throws InvalidArgument unless learning_rate > 0, 0 <= beta_1 < 1, 0 <= beta_2 < 1 and epsilon >= 0.
struct Adam {
  double learning_rate = 1e-3;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
};

}  // namespace dropnet
