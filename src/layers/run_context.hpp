// run_context.hpp: what a layer needs to run, internal to dropnet (include/dropnet/layers.hpp only declares
// it): the backend of the model that owns the layer, whether this is a training pass, and for a layer with
// a seed generator (Dropout) its slot of the model's step state, which the layer's ops read on the device,
// and whether a fused block of the model takes over the layer's activation.
#pragma once

#include "backend/backend.hpp"

namespace dropnet {

struct RunContext {
  backend::Backend& backend;
  bool training = false;
  const backend::StepSlot* slot = nullptr;
  // The model applies this layer's activation itself, in a fused block (model/fused_blocks.hpp): Conv2D's
  // forward then writes its pre-activation z as its output.
  bool activation_deferred = false;
  // A Monte Carlo predict pass (training is then true so that the dropout family draws): layers with
  // batch statistics (BatchNormalization) run as in inference and leave their moving statistics alone.
  bool monte_carlo = false;
};

}  // namespace dropnet
