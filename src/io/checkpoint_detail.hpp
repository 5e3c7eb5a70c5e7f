// checkpoint_detail.hpp: the checkpoint loaders on an already parsed file (model/checkpoint.cpp), for the
// fuzzer and tests that build files in memory.
#pragma once

#include "dropnet/checkpoint.hpp"
#include "io/safetensors.hpp"

namespace dropnet::detail {

void load_weights_from(Sequential& model, const io::SafetensorsFile& file);
TrainingState load_checkpoint_from(Sequential& model, const io::SafetensorsFile& file);
TrainingState training_state_from(const io::SafetensorsFile& file);

}  // namespace dropnet::detail
