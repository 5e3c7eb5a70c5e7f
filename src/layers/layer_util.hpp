// layer_util.hpp: argument checks and helpers shared by the layer implementations (not public API).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "layers/run_context.hpp"
#include "dropnet/layers.hpp"

namespace dropnet::layer_util {

// Keras' wording for non-positive kernel sizes, strides and pool sizes.
void check_positive_pair(const std::array<std::int64_t, 2>& v, const char* what);
// "valid" -> false, "same" -> true; anything else throws InvalidArgument.
bool parse_padding(const std::string& padding);
void check_initializer(const std::string& name, const char* what);
void check_constraint(const std::optional<MaxNorm>& c);
// MaxNorm axes made non-negative, unique and sorted for a kernel of `shape`.
std::vector<int> normalize_axes(const MaxNorm& c, const Shape& shape, const std::string& layer);
// A parameter with its host value drawn from `initializer`.
Param make_param(std::string name, Shape shape, const std::string& initializer, std::uint64_t seed,
                 std::optional<MaxNorm> constraint);
// An independent seed for stream `stream` of `seed` (layer weights, dropout masks).
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream);
// Keras' check of a dropout-family rate (GaussianNoise: stddev) in [0, 1], with Keras' wording
// ("Invalid value received for argument `rate`. Expected a float value between 0 and 1. ...").
void check_unit_interval(double value, const char* argument);
// A schedule's own arguments (Linear's start rate); the rate is the layer's to check.
void check_schedule(const DropoutSchedule& schedule);
// The step state's form of `schedule` for a layer of rate `rate` (kernels/rate_schedule.hpp).
kernels::RateSchedule rate_schedule(double rate, const DropoutSchedule& schedule);
// Whether a layer of this rate and schedule ever draws (a rate that is not always 0).
bool schedule_draws(double rate, const DropoutSchedule& schedule);
// Whether forward may skip the op: a constant rate of 0 (the identity) or 1 (zeros), as Keras does.
inline bool fixed_rate(double rate, const DropoutSchedule& s, double value) {
  return s.kind == DropoutSchedule::Kind::Constant && rate == value;
}
// For a dropout-style layer (identity at rate 0, zeros at rate 1), forward x -> y or backward dy -> dx
// without its op where no draw decides: out = in in inference or at a constant rate of 0, zeros at a
// constant rate of 1. Returns whether it did so (false: the op must run).
bool pass_without_draws(RunContext& ctx, double rate, const DropoutSchedule& s, const Tensor& in, Tensor& out);
// The decision behind pass_without_draws, for callers that run the op themselves (the model's fused
// blocks): Identity in inference or at a constant rate of 0, Zeros at a constant rate of 1, else Draw.
enum class DrawCase { Identity, Zeros, Draw };
inline DrawCase draw_case(const RunContext& ctx, double rate, const DropoutSchedule& s) {
  if (!ctx.training || fixed_rate(rate, s, 0.0)) return DrawCase::Identity;
  if (fixed_rate(rate, s, 1.0)) return DrawCase::Zeros;
  return DrawCase::Draw;
}
// The op call of a training pass of `layer` (Dropout or a SpatialDropout) on an input of `input_shape`
// (batch included): its seed, rate and mask shape, the step and the rate read from ctx.slot when the op
// runs. Throws InvalidArgument without a slot.
backend::DropoutCall dropout_call(const Dropout& layer, const Shape& input_shape, const RunContext& ctx);
// MaxPooling2D's geometry for a batch of `batch` inputs of `input_shape` (batch excluded).
backend::PoolGeometry pool_geometry(const MaxPooling2DOptions& options, const Shape& input_shape, std::int64_t batch);
// Keras' noise_shape: each entry positive or None (constructor check, Keras' wording).
void check_noise_shape(const std::vector<std::optional<std::int64_t>>& noise_shape);
// The concrete mask shape (batch included) of `noise_shape` for an input of `input_shape` (batch
// included): the input's shape when noise_shape is empty. Throws InvalidArgument naming `layer` for a rank
// that differs or an entry neither 1 nor the input's dimension (the batch entry only for real batches).
Shape noise_mask_shape(const std::vector<std::optional<std::int64_t>>& noise_shape, const Shape& input_shape,
                       const std::string& layer);
// The first `batch` rows of a scratch buffer sized for the largest batch.
Tensor batch_view(Tensor& buffer, std::int64_t batch);
// dst = src and dst = value through the model's backend: queued in order with the step's other ops (on the
// GPU on the backend's stream, so a recorded step records them), unlike Tensor::copy_from and Tensor::fill.
// Both tensors live on the backend's device; copy throws InvalidArgument for different element counts.
void copy(RunContext& ctx, Tensor& dst, const Tensor& src);
void fill(RunContext& ctx, Tensor& dst, float value);

// The activation stage shared by Conv2D and Dense, y = act(z) with z = the layer's linear part.
// Scratch: `z` (the logits) only for softmax, which keeps them for the loss; `dz` for any nonlinear
// activation. `out` is the layer's output shape with the batch dimension first.
void allocate_activation(ActivationKind kind, const Shape& out, Device device, Tensor& z, Tensor& dz);
// Runs linear(target) and applies the activation: softmax writes z then y; relu works in place in y.
template <typename Linear>
void forward_activation(ActivationKind kind, Tensor& z_buffer, Tensor& y, RunContext& ctx, Linear&& linear) {
  if (kind == ActivationKind::Softmax) {
    Tensor z = batch_view(z_buffer, y.dim(0));
    linear(z);
    ctx.backend.activation_forward(kind, z, y);
  } else {
    linear(y);
    if (kind != ActivationKind::Linear) ctx.backend.activation_forward(kind, y, y);
  }
}
// dL/dz from dL/dy: dy itself for a linear activation, else written into the dz scratch.
Tensor activation_gradient(ActivationKind kind, Tensor& dz_buffer, const Tensor& y, const Tensor& dy,
                           RunContext& ctx);

}  // namespace dropnet::layer_util
