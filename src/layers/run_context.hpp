// run_context.hpp: what a layer needs to run, internal to dropnet (include/dropnet/layers.hpp only declares
// it): the backend of the model that owns the layer, whether this is a training pass, and for a layer with
// a seed generator (Dropout) its slot of the model's step state, which the layer's ops read on the device.
#pragma once

#include "backend/backend.hpp"

namespace dropnet {

struct RunContext {
  backend::Backend& backend;
  bool training = false;
  const backend::StepSlot* slot = nullptr;
};

}  // namespace dropnet
