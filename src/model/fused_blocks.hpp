// fused_blocks.hpp: the runs of layers the model executes as one block on backends that can
// (Backend::fuses_relu_pool; the CPU's does, the CUDA backend runs the layers one by one).
//
// A block is Conv2D(activation="relu") followed by MaxPooling2D (a window of at most kReluPoolMaxWindow
// positions), and optionally by a Dropout (or SpatialDropout1D/2D/3D, which are Dropouts). Forward: the
// convolution writes its pre-activation z into its own output buffer, then one pass
// (Backend::relu_pool_forward) writes the block's last output and, in training, one route byte per
// pooled element. Backward: one pass (relu_pool_backward) turns the block's output gradient into dL/dz in
// the convolution's output-gradient buffer, then the convolution's backward_from_logits. The results are
// the bits of the unfused layers (backend.hpp states why); the layers stay separate objects, and what the
// block does not produce is the intermediate outputs: the Conv2D's output buffer then holds z, not relu(z),
// and a fused dropout's input (the pooling output) is not written at all. Nothing reads them: a layer
// reads its own input, the loss the last layer's, predict the last output.
//
// Off with CompileOptions::fuse_layers = false or the environment variable DROPNET_CPU_FUSE=0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/layers.hpp"

namespace dropnet {

struct FusedBlock {
  std::size_t conv = 0, pool = 0, last = 0;   // layer indices: the Conv2D, its MaxPooling2D, the block's last
  const Dropout* dropout = nullptr;           // the fused dropout layer (last), or null (last == pool)
  // The forward's route bytes for backward (training only): one per pooled element of the largest batch.
  backend::DeviceArray<std::uint8_t> route;
};

// Whether the environment allows fusing (DROPNET_CPU_FUSE unset or not "0"), read once.
bool fusion_allowed_by_environment();

// The blocks of a built model's `layers`, in order and disjoint (route buffers not yet allocated).
std::vector<FusedBlock> find_fused_blocks(const std::vector<std::unique_ptr<Layer>>& layers);

}  // namespace dropnet
