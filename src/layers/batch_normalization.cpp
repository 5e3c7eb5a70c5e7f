// batch_normalization.cpp: keras.layers.BatchNormalization over the last axis (see layers.hpp). The layer
// holds its four weights as Params, the moving statistics non-trainable (Param::trainable): the backend's
// training forward moves them in place, in the model's arena, as Keras 3 assigns them in call().
#include <cmath>

#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {

BatchNormalization::BatchNormalization(BatchNormalizationOptions options) : options_(std::move(options)) {
  if (!(options_.momentum >= 0.0 && options_.momentum <= 1.0))
    throw InvalidArgument(fmt::format("BatchNormalization: momentum must be in [0, 1]; received {}", options_.momentum));
  if (!(options_.epsilon > 0.0 && std::isfinite(options_.epsilon)))
    throw InvalidArgument(fmt::format("BatchNormalization: epsilon must be positive and finite; received {}",
                                      options_.epsilon));
  layer_util::check_initializer(options_.beta_initializer, "beta_initializer");
  layer_util::check_initializer(options_.gamma_initializer, "gamma_initializer");
  layer_util::check_initializer(options_.moving_mean_initializer, "moving_mean_initializer");
  layer_util::check_initializer(options_.moving_variance_initializer, "moving_variance_initializer");
}

Shape BatchNormalization::build(const Shape& in, std::uint64_t seed) {
  const int rank = static_cast<int>(in.size()) + 1;  // batch included, as Keras counts the axis
  if (in.empty() || (options_.axis != -1 && options_.axis != rank - 1))
    throw InvalidArgument(fmt::format("layer '{}' (BatchNormalization): axis {} on input (None, {}: dropnet "
                                      "normalizes over the last axis only (axis=-1)", name_, options_.axis,
                                      to_string(in).substr(1)));
  channels_ = in.back();
  params_.clear();
  // Keras' order: gamma, beta, moving_mean, moving_variance (the initializers draw nothing at random).
  if (options_.scale)
    params_.push_back(layer_util::make_param("gamma", {channels_}, options_.gamma_initializer,
                                             layer_util::derive_seed(seed, 1), std::nullopt));
  if (options_.center)
    params_.push_back(layer_util::make_param("beta", {channels_}, options_.beta_initializer,
                                             layer_util::derive_seed(seed, 2), std::nullopt));
  for (const auto& [name, init] : {std::pair{"moving_mean", options_.moving_mean_initializer},
                                   std::pair{"moving_variance", options_.moving_variance_initializer}}) {
    Param p = layer_util::make_param(name, {channels_}, init, 0, std::nullopt);
    p.grad = Tensor();
    p.trainable = false;
    params_.push_back(std::move(p));
  }
  return finish_build(in, in);
}

const Param& BatchNormalization::weight(const char* name) const {
  for (const Param& p : params_)
    if (p.name == name) return p;
  throw InvalidArgument(fmt::format("layer '{}' has no weight '{}'", name_, name));
}
Param& BatchNormalization::weight(const char* name) {
  return const_cast<Param&>(static_cast<const BatchNormalization&>(*this).weight(name));
}

void BatchNormalization::allocate(std::int64_t, Device device) {
  batch_mean_ = Tensor({channels_}, device);
  batch_inv_std_ = Tensor({channels_}, device);
  batch_mean_.fill(0.0f);
  batch_inv_std_.fill(1.0f);
  unit_gamma_ = zero_beta_ = unused_grad_ = Tensor();
  if (!options_.scale) {
    unit_gamma_ = Tensor({channels_}, device);
    unit_gamma_.fill(1.0f);
  }
  if (!options_.center) {
    zero_beta_ = Tensor({channels_}, device);
    zero_beta_.fill(0.0f);
  }
  // Where the gradient of a missing gamma or beta goes (two halves: the backends write both at once).
  if (!options_.scale || !options_.center) unused_grad_ = Tensor({2 * channels_}, device);
}

namespace {

backend::BatchNormCall call_for(const BatchNormalizationOptions& o, const Tensor& x, std::int64_t channels) {
  backend::BatchNormCall c;
  c.channels = channels;
  c.rows = channels > 0 ? x.size() / channels : 0;
  c.epsilon = float(o.epsilon);
  c.momentum = float(o.momentum);
  c.momentum_complement = float(1.0 - o.momentum);  // Python's 1.0 - momentum, then float32
  return c;
}

}  // namespace

void BatchNormalization::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  if (batch_mean_.empty() || batch_mean_.device() != ctx.backend.device()) allocate(x.dim(0), ctx.backend.device());
  Param& mean = weight("moving_mean");
  Param& var = weight("moving_variance");
  const backend::BatchNormWeights w{options_.scale ? weight("gamma").value.data() : unit_gamma_.data(),
                                    options_.center ? weight("beta").value.data() : zero_beta_.data(),
                                    mean.value.data(), var.value.data(), batch_mean_.data(), batch_inv_std_.data()};
  const backend::BatchNormCall call = call_for(options_, x, channels_);
  if (ctx.training && !ctx.monte_carlo)
    ctx.backend.batch_norm_forward_training(x, y, w, call);
  else
    ctx.backend.batch_norm_forward_inference(x, y, w, call);
}

void BatchNormalization::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  Param& mean = weight("moving_mean");
  Param& var = weight("moving_variance");
  const backend::BatchNormWeights w{options_.scale ? weight("gamma").value.data() : unit_gamma_.data(),
                                    options_.center ? weight("beta").value.data() : zero_beta_.data(),
                                    mean.value.data(), var.value.data(), batch_mean_.data(), batch_inv_std_.data()};
  float* dgamma = options_.scale ? weight("gamma").grad.data() : unused_grad_.data();
  float* dbeta = options_.center ? weight("beta").grad.data() : unused_grad_.data() + channels_;
  ctx.backend.batch_norm_backward(x, dy, dx, w, dgamma, dbeta, call_for(options_, x, channels_));
}

}  // namespace dropnet
