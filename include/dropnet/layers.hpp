// layers.hpp: Keras-style layers. Constructors check their arguments the way Keras does and throw
// InvalidArgument with Keras' wording; build() creates the weights once the input shape is known, and
// throws InvalidArgument (naming the layer) for an input shape the layer cannot take.
//
// Layers are constructed and handed to Sequential::add, which builds, allocates and runs them; any layer
// can also be called on a tensor, y = layer(x, training), as in Keras (Layer::operator()). The layer
// set is closed: forward/backward take dropnet's internal RunContext (declared, not defined, here), so
// Layer is not an extension point for custom layers outside the library.
//
// Shapes given to and returned by build() exclude the batch dimension (Keras prints it as None).
// Images are NHWC. Weights use Keras' layouts: Conv2D kernel (rows, cols, in, filters), Dense kernel (in, units).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dropnet/constraints.hpp"
#include "dropnet/export.hpp"
#include "dropnet/tensor.hpp"

namespace dropnet {

// What a layer needs to run (the model's backend, training or inference, its step-state slot): internal
// to dropnet, defined in src/layers/run_context.hpp.
struct RunContext;

// One weight. After Sequential::compile, value and grad are views into the model's parameter arena on the
// model's device (so the optimizer updates all of them in one call).
//
// Non-trainable weights (Keras' layer.non_trainable_weights: BatchNormalization's moving_mean and
// moving_variance) have trainable = false: the layer itself updates them in training forward passes; they
// have no gradient (grad stays empty), compile() places them in a separate arena that Adam and max-norm
// never touch, checkpoints save and restore them under "<layer>/<name>" like every weight but without Adam
// moments, and Sequential::summary() counts them as non-trainable.
struct Param {
  std::string name;                    // "kernel", "bias", "gamma", "moving_mean", ...
  Shape shape;                         // Keras layout
  Tensor value;
  Tensor grad;
  std::optional<MaxNorm> constraint;
  bool trainable = true;
};

// How a stochastic layer's rate (GaussianNoise: its stddev) changes over training, counted in optimizer
// steps (the model's iterations; `dropnet train` converts epochs to steps). The model evaluates it on the
// device at every step (kernels/rate_schedule.hpp), checkpoints store it, and a resumed run continues it.
//   constant()            the layer's rate throughout (the default)
//   linear(start, steps)  from `start` at step 0 to the layer's rate at step `steps`, then constant
//                         (DropBlock's ramp, Ghiasi et al. 2018: start 0)
//   early(steps)          the layer's rate for the first `steps` steps, then 0 (early dropout, Liu et al. 2023)
//   late(steps)           0 for the first `steps` steps, then the layer's rate (late dropout, ibid.)
struct DropoutSchedule {
  enum class Kind { Constant, Linear, Early, Late };
  Kind kind = Kind::Constant;
  double start = 0.0;           // Linear only: the rate at step 0, in [0, 1]
  std::uint64_t steps = 0;
  static DropoutSchedule constant() { return {}; }
  static DropoutSchedule linear(double start, std::uint64_t steps) { return {Kind::Linear, start, steps}; }
  static DropoutSchedule early(std::uint64_t steps) { return {Kind::Early, 0.0, steps}; }
  static DropoutSchedule late(std::uint64_t steps) { return {Kind::Late, 0.0, steps}; }
  bool operator==(const DropoutSchedule&) const = default;
};
// "constant", "linear:START:STEPS", "early:STEPS", "late:STEPS" (to_string writes the same form);
// parse_schedule throws InvalidArgument naming the accepted forms.
DROPNET_EXPORT DropoutSchedule parse_schedule(const std::string& text);
DROPNET_EXPORT std::string to_string(const DropoutSchedule& schedule);

enum class ActivationKind { Linear, ReLU, Softmax };
// "linear" (or ""), "relu", "softmax"; throws InvalidArgument otherwise.
DROPNET_EXPORT ActivationKind parse_activation(const std::string& name);

class DROPNET_EXPORT Layer {
 public:
  virtual ~Layer();
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // Keras class name ("Conv2D") and the stem of the automatic layer name ("conv2d"). name() is empty
  // until set_name() or Sequential::add (which names it as Keras does: conv2d, conv2d_1, ...).
  virtual std::string type() const = 0;
  virtual std::string name_stem() const = 0;
  const std::string& name() const noexcept { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  // Creates the weights for `input_shape` (host tensors, drawn from `seed`) and returns the output shape.
  // Throws InvalidArgument when the input shape does not suit the layer.
  virtual Shape build(const Shape& input_shape, std::uint64_t seed) = 0;
  bool built() const noexcept { return built_; }
  const Shape& input_shape() const noexcept { return input_shape_; }
  const Shape& output_shape() const noexcept { return output_shape_; }

  std::vector<Param>& params() noexcept { return params_; }
  const std::vector<Param>& params() const noexcept { return params_; }
  std::int64_t count_params() const;

  // Sizes per-batch scratch buffers (a softmax layer's logits) for batches of up to max_batch on device.
  virtual void allocate(std::int64_t max_batch, Device device);

  // Layers that draw random numbers in training (the dropout family) have a generator, as Keras'
  // SeedGenerator: a seed and a step, the count of training calls that drew from it, plus the rate the
  // draws use and its schedule. The model keeps the step and the current rate in its step state (one slot
  // per such layer); checkpoints store the seed and step as "<name>/seed_generator_state" and the
  // schedule as "<name>/rate_schedule".
  struct SeedGenerator {
    std::uint64_t seed;
    bool draws;      // whether a training call draws (and moves the step on); false for a rate always 0
    double rate = 0.0;                 // the layer's rate (GaussianNoise: stddev)
    DropoutSchedule schedule{};
  };
  virtual std::optional<SeedGenerator> seed_generator() const noexcept { return std::nullopt; }

  // y = layer(x). x is (N, input_shape...), y is (N, output_shape...), both on the model's device.
  virtual void forward(const Tensor& x, Tensor& y, RunContext& ctx) = 0;
  // From dy = dL/dy: writes dx = dL/dx (unless dx is null: the first layer) and overwrites each
  // params()[i].grad with dL/dparam. x and y are the tensors of the last forward.
  virtual void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) = 0;

  // A layer whose output is softmax(z) keeps z so that the loss can be computed from logits (stably)
  // and backward can start from dL/dz = (softmax(z) - target) / N. Layer's own logits() and
  // backward_from_logits(), for layers without a softmax output, throw InvalidArgument.
  virtual bool softmax_output() const noexcept { return false; }
  virtual const Tensor& logits() const;
  virtual void backward_from_logits(const Tensor& x, const Tensor& dz, Tensor* dx, RunContext& ctx);

  // ---- Calling a layer on a tensor, as Keras' y = layer(x, training=...) ------------------------------
  // x is (N, input_shape...) on the CPU or the GPU; returns y (N, output_shape...) on x's device, computed
  // by the time the call returns. A layer not yet built is built on the first call for x's shape (batch
  // excluded), its weights drawn from a random seed as Keras draws an unseeded layer's (call
  // build(input_shape, seed) first for chosen weights; a dropout-family layer's `seed` option fixes its
  // draws). The call runs on the layer's own backend context for x's device (default BackendSettings),
  // made on the first call on that device and kept with the layer; weights that live on another device
  // are copied for each call. `training` (Keras' training=True) turns the dropout family on: the n-th
  // training call (from 0) draws the masks a model's layer of the same seed draws at its n-th step
  // (Philox keyed by (seed, n)), a scheduled rate takes its value at n, and each training call that draws
  // moves n on; inference calls draw nothing. A layer owned by a model may be called too: it runs on the
  // layer's own context with its own call count (call_step()), and neither moves the model's step nor
  // touches its buffers. Throws InvalidArgument (naming the layer and both shapes) for an x of rank < 2
  // or whose shape, batch excluded, is not the built input shape, what build() throws on the first call,
  // and DeviceUnavailable/DeviceError as make_backend does.
  Tensor operator()(const Tensor& x, bool training = false);
  // The step of the next direct training call: the training calls that drew so far (0 for a layer
  // without a seed generator). A model's steps are its own (its step state, saved in checkpoints).
  std::uint64_t call_step() const noexcept;

 protected:
  Layer() = default;
  // Layers move into the model (Sequential::add); only the model then owns them.
  Layer(Layer&&) = default;
  Layer& operator=(Layer&&) = default;
  // Records the shapes and marks the layer built; returns output_shape.
  Shape finish_build(const Shape& input_shape, Shape output_shape);

  std::string name_;
  std::vector<Param> params_;

  // The per-batch buffers that allocate() sizes and forward() writes or keeps (logits, activation
  // scratch, a view of the last input). A direct call (operator()) swaps in its own and puts these
  // back, so that the buffers of a model owning the layer stay untouched: a layer with such members
  // returns pointers to them.
  virtual std::vector<Tensor*> scratch_buffers() noexcept { return {}; }

 private:
  bool built_ = false;
  Shape input_shape_;
  Shape output_shape_;
  // What direct calls keep (layer_call.cpp): the call count and a backend context per device.
  struct CallState;
  struct DROPNET_EXPORT CallStateDeleter {
    void operator()(CallState* state) const noexcept;
  };
  std::unique_ptr<CallState, CallStateDeleter> call_state_;
};

// ---------------------------------------------------------------------------------------------------

struct Conv2DOptions {
  std::array<std::int64_t, 2> strides = {1, 1};
  std::string padding = "valid";                       // "valid" | "same"
  std::string activation = "linear";                   // "linear" | "relu" | "softmax" (over channels)
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  std::optional<MaxNorm> kernel_constraint;
};

// keras.layers.Conv2D(filters, kernel_size, ...), channels_last, no dilation or groups.
// Input (H, W, C) -> output (OH, OW, filters); "valid": OH = (H - kh) / sh + 1, "same": OH = ceil(H / sh).
// Weights: kernel (kh, kw, C, filters), bias (filters) unless use_bias is false.
// Throws InvalidArgument from the constructor for filters <= 0, a kernel_size or strides entry <= 0, a
// padding other than "valid"/"same", an unknown activation or initializer name, or a MaxNorm whose
// max_value is not positive and finite; from build() for an input that is not (H, W, C), a kernel larger
// than a "valid" input, or a MaxNorm axis out of range.
class DROPNET_EXPORT Conv2D : public Layer {
 public:
  Conv2D(std::int64_t filters, std::array<std::int64_t, 2> kernel_size, Conv2DOptions options = {});
  std::string type() const override { return "Conv2D"; }
  std::string name_stem() const override { return "conv2d"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void allocate(std::int64_t max_batch, Device device) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  bool softmax_output() const noexcept override { return activation_ == ActivationKind::Softmax; }
  const Tensor& logits() const override { return z_; }
  void backward_from_logits(const Tensor& x, const Tensor& dz, Tensor* dx, RunContext& ctx) override;

  std::int64_t filters() const noexcept { return filters_; }
  const Conv2DOptions& options() const noexcept { return options_; }

 protected:
  std::vector<Tensor*> scratch_buffers() noexcept override { return {&z_, &dz_}; }

 private:
  struct Geometry;
  Geometry geometry(std::int64_t batch) const;
  std::int64_t filters_;
  std::array<std::int64_t, 2> kernel_size_;
  Conv2DOptions options_;
  ActivationKind activation_;
  Tensor z_;        // pre-activation scratch (max_batch, OH, OW, filters); softmax and ReLU need it
  Tensor dz_;       // dL/dz scratch
};

struct MaxPooling2DOptions {
  std::array<std::int64_t, 2> pool_size = {2, 2};
  std::optional<std::array<std::int64_t, 2>> strides;   // defaults to pool_size
  std::string padding = "valid";                        // "valid" | "same"
};

// keras.layers.MaxPooling2D. Input (H, W, C) -> output (OH, OW, C), OH computed as for Conv2D with
// pool_size and strides (which default to pool_size); no weights. In backward the gradient goes to the
// first maximum of each window (row-major order), as in TensorFlow; ties are the only case where
// implementations differ. Throws InvalidArgument for a pool_size or strides entry <= 0 or an unknown
// padding (constructor), and for an input that is not (H, W, C) or smaller than the window (build()).
class DROPNET_EXPORT MaxPooling2D : public Layer {
 public:
  explicit MaxPooling2D(MaxPooling2DOptions options = {});
  std::string type() const override { return "MaxPooling2D"; }
  std::string name_stem() const override { return "max_pooling2d"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  const MaxPooling2DOptions& options() const noexcept { return options_; }

 private:
  MaxPooling2DOptions options_;
};

struct DropoutOptions {
  // Keras' noise_shape, batch dimension included; std::nullopt entries take the input's dimension.
  // The mask has this shape and is broadcast over the input. Empty: the input's shape.
  std::vector<std::optional<std::int64_t>> noise_shape;
  // Layer seed. Without one, the model derives it from its own seed and the layer's position.
  std::optional<std::uint64_t> seed;
  // How the rate changes over training (the constructor's rate is the schedule's target).
  DropoutSchedule schedule{};
};

// The options every dropout-family layer without a noise_shape takes (SpatialDropout1D/2D/3D,
// GaussianDropout, GaussianNoise, DropBlock2D).
struct RandomLayerOptions {
  // Layer seed. Without one, the model derives it from its own seed and the layer's position.
  std::optional<std::uint64_t> seed;
  // How the rate (GaussianNoise: the stddev) changes over training; the constructor's value is its target.
  DropoutSchedule schedule{};
};

// keras.layers.Dropout(rate): during training zeroes each element with probability `rate` and divides the
// others by 1 - rate; the identity in inference or when rate == 0; zeros when rate == 1. With a schedule
// (DropoutOptions::schedule) the rate of each step is the schedule's. The mask of the
// n-th training call is a pure function of (seed, n, element index) (Philox4x32-10; kernels/dropout_math.hpp
// in dropnet's sources), the same on the CPU and the GPU; n is kept in the model's step state and saved in
// checkpoints. Any input shape; output shape = input shape;
// no weights. Throws InvalidArgument for a rate outside [0, 1] (constructor), a noise_shape
// entry <= 0 or an invalid schedule (constructor), and a noise_shape whose rank differs from the input's (batch included) or
// whose entries are neither 1 nor the input's dimension (build(), and forward for the batch entry).
class DROPNET_EXPORT Dropout : public Layer {
 public:
  explicit Dropout(double rate, DropoutOptions options = {});
  std::string type() const override { return "Dropout"; }
  std::string name_stem() const override { return "dropout"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;

  std::optional<SeedGenerator> seed_generator() const noexcept override;

  double rate() const noexcept { return rate_; }
  std::uint64_t seed() const noexcept { return seed_; }
  // The concrete mask shape (batch included) for an input of `input_shape` (batch included).
  Shape mask_shape(const Shape& input_shape) const;

 private:
  double rate_;
  DropoutOptions options_;
  std::uint64_t seed_ = 0;
};

// keras.layers.GaussianDropout(rate): during training multiplies each element by its own draw of
// Normal(mean 1, stddev sqrt(rate / (1 - rate))); the identity in inference, at rate 0 and, unlike Keras 3
// (which raises ZeroDivisionError when called in training), at rate 1 (tf.keras 2's `0 < rate < 1` rule: the
// stddev is infinite there). With a schedule (RandomLayerOptions::schedule) the rate of each step is the
// schedule's. The draws of the n-th training call are a pure function of (seed, n, element index)
// (Philox4x32-10 and a Box–Muller transform built from correctly rounded operations only,
// kernels/normal_math.hpp), bit-identical on the CPU and the GPU. Any input shape; output shape = input
// shape; no weights. Throws InvalidArgument for a rate outside [0, 1] or an invalid schedule (constructor).
class DROPNET_EXPORT GaussianDropout : public Layer {
 public:
  explicit GaussianDropout(double rate, RandomLayerOptions options = {});
  std::string type() const override { return "GaussianDropout"; }
  std::string name_stem() const override { return "gaussian_dropout"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  std::optional<SeedGenerator> seed_generator() const noexcept override;

  double rate() const noexcept { return rate_; }
  std::uint64_t seed() const noexcept { return seed_; }

 private:
  double rate_;
  RandomLayerOptions options_;
  std::uint64_t seed_ = 0;
};

// keras.layers.GaussianNoise(stddev): during training adds stddev * n to each element, n ~ Normal(0, 1) drawn
// as GaussianDropout's; the identity in inference or when stddev == 0. The schedule schedules the stddev.
// Any input shape; output shape = input shape; no weights. Throws InvalidArgument for a stddev outside
// [0, 1] (Keras' check) or an invalid schedule (constructor).
class DROPNET_EXPORT GaussianNoise : public Layer {
 public:
  explicit GaussianNoise(double stddev, RandomLayerOptions options = {});
  std::string type() const override { return "GaussianNoise"; }
  std::string name_stem() const override { return "gaussian_noise"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  std::optional<SeedGenerator> seed_generator() const noexcept override;

  double stddev() const noexcept { return stddev_; }
  std::uint64_t seed() const noexcept { return seed_; }

 private:
  double stddev_;
  RandomLayerOptions options_;
  std::uint64_t seed_ = 0;
};

// keras.layers.AlphaDropout(rate, noise_shape): self-normalising dropout for SELU networks. During training
// each mask element is kept with probability 1 - rate (the keep rule and masks of Dropout with the same
// seed, step and rate), and y = a * (kept ? x : alpha_p) + b with alpha_p = -1.6732632... * 1.0507009...,
// a = ((1 - rate) (1 + rate alpha_p^2))^-1/2, b = -a alpha_p rate, which keeps a standard normal input's
// mean 0 and variance 1. The identity in inference or at rate 0; zeros at rate 1 (the limit of the formula;
// Keras 3 raises ZeroDivisionError there). noise_shape and the exceptions thrown are Dropout's.
class DROPNET_EXPORT AlphaDropout : public Layer {
 public:
  explicit AlphaDropout(double rate, DropoutOptions options = {});
  std::string type() const override { return "AlphaDropout"; }
  std::string name_stem() const override { return "alpha_dropout"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  std::optional<SeedGenerator> seed_generator() const noexcept override;

  double rate() const noexcept { return rate_; }
  std::uint64_t seed() const noexcept { return seed_; }
  // The concrete mask shape (batch included) for an input of `input_shape` (batch included).
  Shape mask_shape(const Shape& input_shape) const;

 private:
  double rate_;
  DropoutOptions options_;
  std::uint64_t seed_ = 0;
};

// keras.layers.SpatialDropout1D/2D/3D(rate), channels_last: Dropout whose mask drops whole channels, the
// noise shape (N, 1, C), (N, 1, 1, C) and (N, 1, 1, 1, C) (Keras derives them from Dropout the same way).
// Kept channels are divided by 1 - rate; the identity in inference or when rate == 0. The mask of a training
// call is Dropout's, drawn per (sample, channel) from (seed, step, index in the noise shape). Inputs (steps, C),
// (H, W, C) and (D, H, W, C) respectively (batch excluded). Throws InvalidArgument for a rate outside [0, 1]
// or an invalid schedule (constructor, Keras' Dropout wording) and for an input of another rank (build(),
// Keras' InputSpec wording: "Input 0 with name 'None' of layer '...' is incompatible with the layer: expected
// ndim=4, found ndim=3. Full shape received: (None, 8, 8)").
class DROPNET_EXPORT SpatialDropout1D : public Dropout {
 public:
  explicit SpatialDropout1D(double rate, RandomLayerOptions options = {});
  std::string type() const override { return "SpatialDropout1D"; }
  std::string name_stem() const override { return "spatial_dropout1d"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
};

class DROPNET_EXPORT SpatialDropout2D : public Dropout {
 public:
  explicit SpatialDropout2D(double rate, RandomLayerOptions options = {});
  std::string type() const override { return "SpatialDropout2D"; }
  std::string name_stem() const override { return "spatial_dropout2d"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
};

class DROPNET_EXPORT SpatialDropout3D : public Dropout {
 public:
  explicit SpatialDropout3D(double rate, RandomLayerOptions options = {});
  std::string type() const override { return "SpatialDropout3D"; }
  std::string name_stem() const override { return "spatial_dropout3d"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
};

// DropBlock2D(rate, block_size) (Ghiasi, Lin, Le 2018; keras-cv's keras_cv.layers.DropBlock2D(rate,
// block_size, seed) with a square block): on an (H, W, C) input, during training, seeds are drawn at every
// position where a block_size x block_size block fits inside the feature map, independently per sample and
// channel, with probability gamma = rate / block_size^2 * H W / ((H - block_size + 1)(W - block_size + 1)); the
// blocks of the seeds are zeroed and the output is scaled by (all elements / kept elements) of the whole batch
// (all zeros if nothing is kept). The identity in inference or when rate == 0; zeros when rate == 1. The
// rate may follow a schedule (the paper ramps it linearly from 0: DropoutSchedule::linear(0, steps)). The mask
// of a training call is a pure function of (seed, step, element), the same on the CPU and the GPU; backward
// regenerates it. No weights. Throws InvalidArgument for a rate outside [0, 1] or an invalid schedule (Keras'
// Dropout wording) and block_size <= 0 (Keras' block_size wording) from the constructor, and for an input
// that is not (H, W, C) or smaller than the block from build().
class DROPNET_EXPORT DropBlock2D : public Layer {
 public:
  DropBlock2D(double rate, std::int64_t block_size, RandomLayerOptions options = {});
  std::string type() const override { return "DropBlock2D"; }
  std::string name_stem() const override { return "drop_block2d"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  std::optional<SeedGenerator> seed_generator() const noexcept override;

  double rate() const noexcept { return rate_; }
  std::int64_t block_size() const noexcept { return block_size_; }
  std::uint64_t seed() const noexcept { return seed_; }

 private:
  double rate_;
  std::int64_t block_size_;
  RandomLayerOptions options_;
  std::uint64_t seed_ = 0;
};

// keras.layers.Flatten: (H, W, C) -> (H * W * C), row-major (channels_last order, as Keras). Any input
// shape (its element count); no weights.
class DROPNET_EXPORT Flatten : public Layer {
 public:
  Flatten() = default;
  std::string type() const override { return "Flatten"; }
  std::string name_stem() const override { return "flatten"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
};

struct DenseOptions {
  std::string activation = "linear";                   // "linear" | "relu" | "softmax"
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  std::optional<MaxNorm> kernel_constraint;
};

// keras.layers.Dense(units): y = activation(x @ kernel + bias), x of shape (N, in) -> y (N, units).
// Weights: kernel (in, units), bias (units) unless use_bias is false. Unlike Keras, the input must be flat:
// build() throws InvalidArgument for an input shape of rank other than 1 (put a Flatten before it). The
// constructor throws InvalidArgument for units <= 0, an unknown activation or initializer name, or a
// MaxNorm whose max_value is not positive and finite.
class DROPNET_EXPORT Dense : public Layer {
 public:
  explicit Dense(std::int64_t units, DenseOptions options = {});
  std::string type() const override { return "Dense"; }
  std::string name_stem() const override { return "dense"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void allocate(std::int64_t max_batch, Device device) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  bool softmax_output() const noexcept override { return activation_ == ActivationKind::Softmax; }
  const Tensor& logits() const override { return z_; }
  void backward_from_logits(const Tensor& x, const Tensor& dz, Tensor* dx, RunContext& ctx) override;

  std::int64_t units() const noexcept { return units_; }
  const DenseOptions& options() const noexcept { return options_; }

 protected:
  std::vector<Tensor*> scratch_buffers() noexcept override { return {&z_, &dz_}; }

 private:
  std::int64_t units_;
  DenseOptions options_;
  ActivationKind activation_;
  Tensor z_;
  Tensor dz_;
};

// keras.layers.Activation(name): elementwise relu/linear, or softmax over the last axis. Any input shape;
// output shape = input shape; no weights. Throws InvalidArgument for a name parse_activation rejects.
class DROPNET_EXPORT Activation : public Layer {
 public:
  explicit Activation(const std::string& activation);
  std::string type() const override { return "Activation"; }
  std::string name_stem() const override { return "activation"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  bool softmax_output() const noexcept override { return kind_ == ActivationKind::Softmax; }
  // For softmax the logits are the input of the last forward.
  const Tensor& logits() const override { return input_; }
  void backward_from_logits(const Tensor& x, const Tensor& dz, Tensor* dx, RunContext& ctx) override;
  ActivationKind kind() const noexcept { return kind_; }

 protected:
  std::vector<Tensor*> scratch_buffers() noexcept override { return {&input_}; }

 private:
  ActivationKind kind_;
  Tensor input_;  // a view of the last forward's input (no copy)
};

// ---------------------------------------------------------------------------------------------------
// Normalization and average pooling (issue 24).

struct BatchNormalizationOptions {
  int axis = -1;                 // only the last axis (channels_last) is implemented
  double momentum = 0.99;
  double epsilon = 1e-3;
  bool center = true;            // a trainable offset beta
  bool scale = true;             // a trainable factor gamma
  std::string beta_initializer = "zeros";
  std::string gamma_initializer = "ones";
  std::string moving_mean_initializer = "zeros";
  std::string moving_variance_initializer = "ones";
};

// keras.layers.BatchNormalization over the last axis (the channels of an (H, W, C) image, the features of
// a flat input): y = gamma * (x - mean) / sqrt(var + epsilon) + beta per channel. In training (fit,
// train_on_batch) mean and var are the batch's, over every axis but the channel (the variance biased,
// divided by the count), and the moving statistics move as Keras 3 moves them:
//   moving_mean = moving_mean * momentum + mean * (1 - momentum), the same for moving_variance with var.
// In inference (evaluate, predict, and Monte Carlo predict, where only the dropout family draws) mean and
// var are moving_mean and moving_variance. Weights, in Keras' order: gamma (C) unless scale is false,
// beta (C) unless center is false (both trainable), moving_mean and moving_variance (C, non-trainable: see
// Param). Any input rank >= 1 (batch excluded); output shape = input shape. Throws InvalidArgument for a
// momentum outside [0, 1], an epsilon <= 0 or an unknown initializer name (constructor), and from build()
// for an axis that is not the input's last (-1, or the rank with the batch counted; other axes are not
// implemented).
class DROPNET_EXPORT BatchNormalization : public Layer {
 public:
  explicit BatchNormalization(BatchNormalizationOptions options = {});
  std::string type() const override { return "BatchNormalization"; }
  std::string name_stem() const override { return "batch_normalization"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void allocate(std::int64_t max_batch, Device device) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  const BatchNormalizationOptions& options() const noexcept { return options_; }
  std::int64_t channels() const noexcept { return channels_; }

 private:
  const Param& weight(const char* name) const;
  Param& weight(const char* name);
  BatchNormalizationOptions options_;
  std::int64_t channels_ = 0;
  // The last training forward's batch mean and 1 / sqrt(var + epsilon), for backward; constant gamma = 1
  // and beta = 0 where scale or center is off, with a gradient sink for the missing one.
  Tensor batch_mean_, batch_inv_std_, unit_gamma_, zero_beta_, unused_grad_;

 protected:
  // allocate() makes all five: a direct call (operator()) on a model's layer swaps in its own.
  std::vector<Tensor*> scratch_buffers() noexcept override {
    return {&batch_mean_, &batch_inv_std_, &unit_gamma_, &zero_beta_, &unused_grad_};
  }
};

struct AveragePooling2DOptions {
  std::array<std::int64_t, 2> pool_size = {2, 2};
  std::optional<std::array<std::int64_t, 2>> strides;   // defaults to pool_size
  std::string padding = "valid";                        // "valid" | "same"
};

// keras.layers.AveragePooling2D: the mean of each window of an (H, W, C) input -> (OH, OW, C), OH as for
// MaxPooling2D. With "same" padding a window that runs past the edge averages the positions inside only
// (Keras' count excludes the padding). No weights. Throws InvalidArgument as MaxPooling2D does.
class DROPNET_EXPORT AveragePooling2D : public Layer {
 public:
  explicit AveragePooling2D(AveragePooling2DOptions options = {});
  std::string type() const override { return "AveragePooling2D"; }
  std::string name_stem() const override { return "average_pooling2d"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
  const AveragePooling2DOptions& options() const noexcept { return options_; }

 private:
  AveragePooling2DOptions options_;
};

// keras.layers.GlobalAveragePooling2D() (channels_last, keepdims false): (H, W, C) -> (C), the mean over
// all positions of each channel. No weights. Throws InvalidArgument from build() for an input that is not
// (H, W, C).
class DROPNET_EXPORT GlobalAveragePooling2D : public Layer {
 public:
  GlobalAveragePooling2D() = default;
  std::string type() const override { return "GlobalAveragePooling2D"; }
  std::string name_stem() const override { return "global_average_pooling2d"; }
  Shape build(const Shape& input_shape, std::uint64_t seed) override;
  void forward(const Tensor& x, Tensor& y, RunContext& ctx) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, RunContext& ctx) override;
};

}  // namespace dropnet
