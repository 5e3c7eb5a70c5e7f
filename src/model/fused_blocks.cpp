// fused_blocks.cpp: finding and running the model's fused blocks (fused_blocks.hpp).
#include "model/fused_blocks.hpp"

#include <cstdlib>
#include <cstring>
#include <optional>

#include "core/nvtx.hpp"
#include "layers/layer_util.hpp"
#include "model/impl.hpp"

namespace dropnet {
namespace {

// What the fused op does in place of the dropout layer: nothing where the layer passes its input on
// (inference, a constant rate of 0), zeros at a constant rate of 1 (a call of rate 1 without a slot: the
// op's rate edge), else the layer's own call, its step and rate read from its slot. These are the cases of
// layer_util::pass_without_draws (layer_util::draw_case decides for both), so the block does what
// Dropout::forward and backward do.
std::optional<backend::DropoutCall> block_dropout(const Dropout& layer, const Shape& input_shape,
                                                  const RunContext& ctx) {
  switch (layer_util::draw_case(ctx, layer.rate(), layer.seed_generator()->schedule)) {
    case layer_util::DrawCase::Identity: return std::nullopt;
    case layer_util::DrawCase::Zeros:
      return backend::DropoutCall{layer.seed(), 0, 1.0f, input_shape, layer.mask_shape(input_shape)};
    case layer_util::DrawCase::Draw: break;
  }
  return layer_util::dropout_call(layer, input_shape, ctx);
}

backend::PoolGeometry block_geometry(const std::vector<std::unique_ptr<Layer>>& layers, const FusedBlock& b,
                                     std::int64_t n) {
  const auto& pool = static_cast<const MaxPooling2D&>(*layers[b.pool]);
  return layer_util::pool_geometry(pool.options(), pool.input_shape(), n);
}

}  // namespace

bool fusion_allowed_by_environment() {
  static const bool allowed = [] {
    const char* env = std::getenv("DROPNET_CPU_FUSE");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  return allowed;
}

std::vector<FusedBlock> find_fused_blocks(const std::vector<std::unique_ptr<Layer>>& layers) {
  std::vector<FusedBlock> blocks;
  for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
    const auto* conv = dynamic_cast<const Conv2D*>(layers[i].get());
    const auto* pool = dynamic_cast<const MaxPooling2D*>(layers[i + 1].get());
    if (conv == nullptr || pool == nullptr || parse_activation(conv->options().activation) != ActivationKind::ReLU)
      continue;
    const auto& size = pool->options().pool_size;
    if (size[0] * size[1] > backend::kReluPoolMaxWindow) continue;
    FusedBlock b;
    b.conv = i;
    b.pool = b.last = i + 1;
    if (i + 2 < layers.size()) {
      // Dropout and its subclasses (SpatialDropout1D/2D/3D); the rest of the family runs after the block.
      if (const auto* dropout = dynamic_cast<const Dropout*>(layers[i + 2].get())) {
        b.dropout = dropout;
        b.last = i + 2;
      }
    }
    i = b.last;
    blocks.push_back(std::move(b));
  }
  return blocks;
}

void Sequential::Impl::forward_block(FusedBlock& b, std::int64_t n, RunContext& ctx, bool backward) {
  DROPNET_NVTX_RANGE(range_name(b.conv, false));
  Tensor z = outputs[b.conv].rows(0, n);  // the pre-activation: the block applies the relu
  RunContext conv_ctx{ctx.backend, ctx.training, slot(b.conv), /*activation_deferred=*/true};
  layers[b.conv]->forward(layer_input(b.conv, n), z, conv_ctx);
  Tensor y = outputs[b.last].rows(0, n);
  const backend::PoolGeometry g = block_geometry(layers, b, n);
  RunContext drop_ctx{ctx.backend, ctx.training, slot(b.last)};
  const auto call = b.dropout ? block_dropout(*b.dropout, {g.n, g.oh, g.ow, g.c}, drop_ctx)
                              : std::nullopt;
  backend->relu_pool_forward(z, y, backward ? b.route.data() : nullptr, g, call ? &*call : nullptr);
}

void Sequential::Impl::backward_block(FusedBlock& b, std::int64_t n, RunContext& ctx) {
  DROPNET_NVTX_RANGE(range_name(b.conv, true));
  const backend::PoolGeometry g = block_geometry(layers, b, n);
  RunContext drop_ctx{ctx.backend, ctx.training, slot(b.last)};
  const auto call = b.dropout ? block_dropout(*b.dropout, {g.n, g.oh, g.ow, g.c}, drop_ctx)
                              : std::nullopt;
  Tensor dz = output_grads[b.conv].rows(0, n);
  backend->relu_pool_backward(output_grads[b.last].rows(0, n), b.route.data(), dz, g, call ? &*call : nullptr);
  Tensor dx = b.conv > 0 ? output_grads[b.conv - 1].rows(0, n) : Tensor();
  ctx.slot = slot(b.conv);
  layers[b.conv]->backward_from_logits(layer_input(b.conv, n), dz, b.conv > 0 ? &dx : nullptr, ctx);
}

}  // namespace dropnet
