// noise_layers.cpp: keras.layers.GaussianDropout, GaussianNoise and AlphaDropout. Each owns its seed, as
// Dropout does; the step of Keras' SeedGenerator state (seed, step) and the current rate (GaussianNoise: the
// stddev) live in the layer's slot of the model's step state, which the backend op reads when it runs.
// The per-element math is in kernels/noise_math.hpp and kernels/normal_math.hpp.
#include <fmt/format.h>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {
namespace {

using Kind = backend::NoiseCall::Kind;

backend::NoiseCall make_call(Kind kind, std::uint64_t seed, double rate, const Shape& input_shape, Shape mask_shape,
                             const RunContext& ctx, const std::string& name) {
  if (ctx.slot == nullptr)
    throw InvalidArgument(fmt::format("layer '{}': a training pass needs the layer's step-state slot", name));
  backend::NoiseCall c{kind, seed, 0, float(rate), input_shape, std::move(mask_shape)};
  c.slot = ctx.slot;
  return c;
}

// The forward of the three layers: `edge` is 1 where the layer skips the op and passes x through, 0 where
// it gives zeros (a constant rate no draw decides, as Keras skips it), -1 where the op runs.
void run_forward(int edge, const Tensor& x, Tensor& y, RunContext& ctx, const backend::NoiseCall* call) {
  if (!ctx.training || edge == 1) layer_util::copy(ctx, y, x);
  else if (edge == 0) layer_util::fill(ctx, y, 0.0f);
  else ctx.backend.noise_forward(x, y, *call);
}

void run_backward(int edge, const Tensor& dy, Tensor* dx, RunContext& ctx, const backend::NoiseCall* call) {
  if (dx == nullptr) return;
  if (!ctx.training || edge == 1) layer_util::copy(ctx, *dx, dy);
  else if (edge == 0) layer_util::fill(ctx, *dx, 0.0f);
  else ctx.backend.noise_backward(dy, *dx, *call);
}

// The edge of a layer whose schedule is constant at `rate`: what the op would do without drawing.
int fixed_edge(Kind kind, double rate, const DropoutSchedule& schedule) {
  if (schedule.kind != DropoutSchedule::Kind::Constant) return -1;
  if (rate == 0.0) return 1;
  if (rate == 1.0 && kind == Kind::GaussianDropout) return 1;
  if (rate == 1.0 && kind == Kind::AlphaDropout) return 0;
  return -1;
}

}  // namespace

// ---- GaussianDropout --------------------------------------------------------------------------------

GaussianDropout::GaussianDropout(double rate, RandomLayerOptions options) : rate_(rate), options_(options) {
  layer_util::check_unit_interval(rate_, "rate");
  layer_util::check_schedule(options_.schedule);
}

std::optional<Layer::SeedGenerator> GaussianDropout::seed_generator() const noexcept {
  return SeedGenerator{seed_, layer_util::schedule_draws(rate_, options_.schedule), rate_, options_.schedule};
}

Shape GaussianDropout::build(const Shape& in, std::uint64_t seed) {
  seed_ = options_.seed.value_or(layer_util::derive_seed(seed, 3));
  return finish_build(in, in);
}

void GaussianDropout::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  const int edge = fixed_edge(Kind::GaussianDropout, rate_, options_.schedule);
  if (!ctx.training || edge >= 0) return run_forward(edge == -1 ? 1 : edge, x, y, ctx, nullptr);
  const auto call = make_call(Kind::GaussianDropout, seed_, rate_, x.shape(), {}, ctx, name_);
  run_forward(-1, x, y, ctx, &call);
}

void GaussianDropout::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  const int edge = fixed_edge(Kind::GaussianDropout, rate_, options_.schedule);
  if (dx == nullptr || !ctx.training || edge >= 0) return run_backward(edge == -1 ? 1 : edge, dy, dx, ctx, nullptr);
  const auto call = make_call(Kind::GaussianDropout, seed_, rate_, x.shape(), {}, ctx, name_);
  run_backward(-1, dy, dx, ctx, &call);
}

// ---- GaussianNoise ----------------------------------------------------------------------------------

GaussianNoise::GaussianNoise(double stddev, RandomLayerOptions options) : stddev_(stddev), options_(options) {
  layer_util::check_unit_interval(stddev_, "stddev");
  layer_util::check_schedule(options_.schedule);
}

std::optional<Layer::SeedGenerator> GaussianNoise::seed_generator() const noexcept {
  return SeedGenerator{seed_, layer_util::schedule_draws(stddev_, options_.schedule), stddev_, options_.schedule};
}

Shape GaussianNoise::build(const Shape& in, std::uint64_t seed) {
  seed_ = options_.seed.value_or(layer_util::derive_seed(seed, 3));
  return finish_build(in, in);
}

void GaussianNoise::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  const int edge = fixed_edge(Kind::GaussianNoise, stddev_, options_.schedule);
  if (!ctx.training || edge >= 0) return run_forward(1, x, y, ctx, nullptr);
  const auto call = make_call(Kind::GaussianNoise, seed_, stddev_, x.shape(), {}, ctx, name_);
  run_forward(-1, x, y, ctx, &call);
}

void GaussianNoise::backward(const Tensor&, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  // d(x + stddev * n)/dx = 1 whatever the draws: no op, a copy on the model's backend.
  if (dx != nullptr) layer_util::copy(ctx, *dx, dy);
}

// ---- AlphaDropout -----------------------------------------------------------------------------------

AlphaDropout::AlphaDropout(double rate, DropoutOptions options) : rate_(rate), options_(std::move(options)) {
  layer_util::check_unit_interval(rate_, "rate");
  layer_util::check_schedule(options_.schedule);
  layer_util::check_noise_shape(options_.noise_shape);
}

std::optional<Layer::SeedGenerator> AlphaDropout::seed_generator() const noexcept {
  return SeedGenerator{seed_, layer_util::schedule_draws(rate_, options_.schedule), rate_, options_.schedule};
}

Shape AlphaDropout::build(const Shape& in, std::uint64_t seed) {
  seed_ = options_.seed.value_or(layer_util::derive_seed(seed, 3));
  Shape with_batch{1};
  with_batch.insert(with_batch.end(), in.begin(), in.end());
  mask_shape(with_batch);  // checks noise_shape against the input once, at build time
  return finish_build(in, in);
}

Shape AlphaDropout::mask_shape(const Shape& input_shape) const {
  return layer_util::noise_mask_shape(options_.noise_shape, input_shape, name_);
}

void AlphaDropout::forward(const Tensor& x, Tensor& y, RunContext& ctx) {
  const int edge = fixed_edge(Kind::AlphaDropout, rate_, options_.schedule);
  if (!ctx.training || edge >= 0) return run_forward(ctx.training ? edge : 1, x, y, ctx, nullptr);
  const auto call = make_call(Kind::AlphaDropout, seed_, rate_, x.shape(), mask_shape(x.shape()), ctx, name_);
  run_forward(-1, x, y, ctx, &call);
}

void AlphaDropout::backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  const int edge = fixed_edge(Kind::AlphaDropout, rate_, options_.schedule);
  if (dx == nullptr || !ctx.training || edge >= 0) return run_backward(ctx.training ? edge : 1, dy, dx, ctx, nullptr);
  const auto call = make_call(Kind::AlphaDropout, seed_, rate_, x.shape(), mask_shape(x.shape()), ctx, name_);
  run_backward(-1, dy, dx, ctx, &call);
}

}  // namespace dropnet
