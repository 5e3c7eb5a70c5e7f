// model.hpp: keras.Sequential: add layers, compile, fit, evaluate, predict, summary.
//
//   dropnet::Sequential model({32, 32, 3});
//   model.add(dropnet::Conv2D(64, {3, 3}, {.activation = "relu", .kernel_initializer = "he_uniform"}));
//   ...
//   model.compile({.optimizer = dropnet::Adam{}, .loss = "categorical_crossentropy", .seed = 1});
//   dropnet::History h = model.fit(x, y, {.batch_size = 250, .epochs = 55, .validation_split = 0.2});
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dropnet/device.hpp"
#include "dropnet/export.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/optimizers.hpp"
#include "dropnet/tensor.hpp"

namespace dropnet {

class Sequential;

// Metric values by Keras name: "loss", the metric ("accuracy", "mae", ...), "val_loss", "val_accuracy", ...
using Logs = std::map<std::string, double>;

// Hooks into fit, as keras.callbacks.Callback. Epochs and batches count from 0.
class DROPNET_EXPORT Callback {
 public:
  virtual ~Callback();
  virtual void on_train_begin(Sequential& model);
  virtual void on_epoch_begin(int epoch);
  // After each training batch. `logs` holds the running means of the epoch so far when fit read them at
  // this batch: at a progress tick (the bar redraws), the epoch's last batch, and every batch when some
  // callback of the fit returns true from wants_batch_logs(); otherwise it is empty. The running sums live
  // on the model's device, and reading them makes the host wait for it.
  virtual void on_batch_end(int batch, const Logs& logs);
  // Whether this callback needs the logs of every batch (default: no).
  virtual bool wants_batch_logs() const;
  virtual void on_epoch_end(int epoch, const Logs& logs);
  virtual void on_train_end(const Logs& logs);
};

// A loss, as keras' compile(loss=...) names it, and whether the model's outputs are logits (Keras'
// from_logits). Converts from its name, so that .loss = "sparse_categorical_crossentropy" reads as in Keras;
// with logits: .loss = {"binary_crossentropy", true} or dropnet::Loss("categorical_crossentropy", true).
//   categorical_crossentropy         targets of the output's shape (one-hot or soft, rows summing to 1)
//   sparse_categorical_crossentropy  integer class indices as floats, y of shape (N,) or (N, 1) (more
//                                    generally the output's shape without its last axis, or with it 1)
//   binary_crossentropy              targets in [0, 1] of the output's shape
//   mean_squared_error ("mse")       targets of the output's shape
// As Keras: without from_logits the outputs are probabilities, clipped to [1e-7, 1 - 1e-7] (categorical
// ones first divided by their sum); with it the losses are computed stably from logits (log-softmax,
// log-sigmoid). Each is the mean over the last axis where Keras takes one (binary, mse), then the mean over
// the batch (and any other axes). On a softmax head categorical_crossentropy and the sparse form go from
// the softmax's logits, unclipped (docs/keras-parity.md). An empty name is no loss (inference only).
struct Loss {
  std::string name;
  bool from_logits = false;
  Loss() = default;
  Loss(const char* loss_name, bool logits = false) : name(loss_name == nullptr ? "" : loss_name), from_logits(logits) {}
  Loss(std::string loss_name, bool logits = false) : name(std::move(loss_name)), from_logits(logits) {}
};

struct CompileOptions {
  Adam optimizer{};
  // No loss by default, as Keras' loss=None: the model can predict (and Monte Carlo predict) but fit,
  // evaluate and train_on_batch throw InvalidArgument. Written without a braced initializer (see metrics).
  Loss loss;
  // At most one metric, reported under the name given: "accuracy" (or "acc"), which Keras resolves by the
  // shapes: binary_accuracy (threshold 0.5) for an output whose last axis is 1, else sparse_categorical_accuracy
  // with the sparse loss, else categorical_accuracy; or one of those three explicitly, or "mae"
  // ("mean_absolute_error"); an empty list for none. The default (dropnet's, not Keras' none) is
  // "accuracy". Written as a constructor call, not = {"accuracy"}: that braced list makes GCC 12 (Debian
  // 12's compiler) stop with an internal compiler error (check_noexcept_r) wherever
  // compile({.device = ..., .seed = ...}) appears inside a function template (tests/cpu/test_api_templates.cpp).
  std::vector<std::string> metrics = std::vector<std::string>(1, "accuracy");
  std::optional<Device> device;                     // default: CUDA when available, else CPU
  // Seeds weight initialisation, unseeded dropout layers and shuffling. Default: a random seed
  // (as Keras without set_random_seed); seed() tells which was used.
  std::optional<std::uint64_t> seed;
  // Each compile() makes the model its own backend context for `device` with the settings below (on the
  // GPU: its own stream, cuDNN/cuBLAS handles and algorithm choices), so models compiled with different
  // settings do not change each other.
  //
  // Only reproducible algorithms: on the GPU, cuDNN's deterministic convolution and pooling algorithms
  // (slower); the same inputs then give the same bits on every run. The CPU backend always is.
  bool deterministic = false;
  // On the GPU, TF32 tensor cores for float32 convolutions and GEMMs (faster on Ampere and later GPUs, with
  // about 10 mantissa bits per product). Off by default, for reproducibility: results then stay within
  // 1e-5 relative of float32. No effect on the CPU.
  bool allow_tf32 = false;
  // On the GPU, the most memory one cuDNN convolution algorithm may use as workspace, in bytes (algorithms
  // that need more are not considered). No effect on the CPU.
  std::size_t workspace_limit = std::size_t{64} << 20;
  // On the GPU, fit records its training step once as a CUDA graph (after a first, ordinary step) and
  // replays it for every further full batch, which saves the launch overhead of ~40 kernels per step. The
  // results are the same bits either way. No effect on the CPU.
  bool cuda_graphs = true;
  // On the CPU, each Conv2D(activation="relu") -> MaxPooling2D [-> Dropout/SpatialDropout] run goes as one
  // pass over the convolution's output instead of three (forward and backward), with the same bits. false
  // (or the environment variable DROPNET_CPU_FUSE=0) runs the layers one by one. No effect on the GPU.
  bool fuse_layers = true;
  // On the CPU, the threads this model's ops use (0: the process default, DROPNET_CPU_THREADS or the hardware
  // threads, at most 16). Models training side by side on their own threads each take a share of the cores
  // this way (docs/scaling.md); the results are the same bits for every count. No effect on the GPU.
  unsigned cpu_threads = 0;
};

// The running sums of an epoch's training metrics after some of its batches (what fit reports as the
// running means loss = loss_sum / seen and accuracy = correct / seen). Checkpoints record them so that a run
// interrupted mid-epoch resumes with exactly the values it would have had (see checkpoint.hpp).
struct EpochTotals {
  double loss_sum = 0.0;   // sum over the records seen of their loss
  double correct = 0.0;    // sum over the records seen of the metric (for accuracy: records classified correctly)
  std::int64_t seen = 0;   // records seen
};

struct FitOptions {
  int batch_size = 32;
  int epochs = 1;
  int verbose = 1;               // 0 silent, 1 progress bar, 2 one line per epoch
  double validation_split = 0.0; // the last fraction of x and y, taken before shuffling
  bool shuffle = true;           // reshuffle the training part every epoch
  int initial_epoch = 0;         // the epoch to start at (for resuming)
  // Resuming inside initial_epoch: the batches of it already done and the metric sums after them (a
  // TrainingState from load_checkpoint carries both). fit skips those batches of the epoch's order.
  std::int64_t initial_step = 0;
  EpochTotals initial_totals{};
  std::vector<Callback*> callbacks;
  std::FILE* out = stdout;       // where progress goes
};

struct History {
  std::vector<int> epoch;
  std::map<std::string, std::vector<double>> history;  // "loss", "accuracy" (the metric's name), "val_loss", ...
  // FNV-1a 64 of each epoch's training-row order, the index sequence the batches were cut from (as
  // little-endian int64s), one per epoch of this fit call. Two runs with equal hashes saw the same batches
  // in the same order: what a paired comparison of two runs rests on. Not part of checkpoints.
  std::vector<std::uint64_t> order_fnv1a;
};

struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;  // the metric's value when it is an accuracy, else 0
  // "loss" and the compiled metric under its name (as keras' evaluate(return_dict=True)).
  Logs metrics;
};

struct PredictOptions {
  int batch_size = 32;
  // Keep dropout active (Monte Carlo dropout). Each call then draws fresh masks.
  bool dropout = false;
};

class DROPNET_EXPORT Sequential {
 public:
  // `input_shape` excludes the batch dimension, e.g. {32, 32, 3}. Throws InvalidArgument for an empty
  // shape or a dimension <= 0. A Sequential is movable, not copyable.
  explicit Sequential(Shape input_shape, std::string name = "sequential");
  ~Sequential();
  Sequential(Sequential&&) noexcept;
  Sequential& operator=(Sequential&&) noexcept;

  // Appends a layer, naming it as Keras does (conv2d, conv2d_1, ...) unless it has a name, and returns
  // it (owned by the model from now on). Throws InvalidArgument for a null layer, a compiled model, or a
  // name already in the model. The template moves a layer object in: model.add(Dense(10)).
  Layer& add(std::unique_ptr<Layer> layer);
  template <typename L, typename = std::enable_if_t<std::is_base_of_v<Layer, std::decay_t<L>>>>
  std::decay_t<L>& add(L&& layer) {
    return static_cast<std::decay_t<L>&>(add(std::make_unique<std::decay_t<L>>(std::move(layer))));
  }

  // Builds every layer (weights drawn from the seed), moves the weights to the device and sets up Adam.
  // Without a loss the model is for inference only (predict). Throws InvalidArgument for an unknown loss or
  // metric, more than one metric, a metric that does not fit the loss's targets (sparse_categorical_accuracy
  // without the sparse loss, categorical_accuracy with it), Adam values out of range (learning_rate <= 0,
  // beta_1 or beta_2 outside [0, 1), epsilon < 0), a model without layers, or layers whose shapes do not
  // chain; DeviceUnavailable when options.device is CUDA and cuda_available() is false.
  void compile(const CompileOptions& options = {});

  // Trains on x (N, input_shape...) and y (the loss's targets, see Loss: one-hot (N, classes) for
  // categorical_crossentropy, class indices (N,) for the sparse form), host or device tensors (copied batch
  // by batch to the model's device). Returns the per-epoch metrics ("loss", the metric under its name, and
  // "val_loss", "val_<metric>" with a validation split). Every fit, evaluate, predict and train_on_batch
  // throws InvalidArgument before compile() or when x or y does not have these shapes; fit, evaluate and
  // train_on_batch also for a model compiled without a loss; fit also for a
  // batch_size <= 0, epochs < 0, verbose outside 0..2, validation_split outside [0, 1) or leaving no
  // training or no validation sample, and initial_epoch/initial_step out of range.
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  // Loss and metric on x, y in inference mode (dropout off), means over all N samples. Throws
  // InvalidArgument for batch_size <= 0 or N == 0.
  Evaluation evaluate(const Tensor& x, const Tensor& y, int batch_size = 32, int verbose = 1,
                      std::FILE* out = stdout);
  // The model's outputs (N, output shape...) as a host tensor; works without a loss. Throws InvalidArgument
  // for batch_size <= 0.
  Tensor predict(const Tensor& x, const PredictOptions& options = {});
  // One optimizer step on one batch; returns that batch's loss and metric (dropout active). Throws
  // InvalidArgument for an empty batch.
  Logs train_on_batch(const Tensor& x, const Tensor& y);

  // The Keras-style table: layer (type), output shape, parameter count, totals.
  std::string summary() const;

  const std::string& name() const noexcept;
  const Shape& input_shape() const noexcept;
  std::size_t layer_count() const noexcept;
  // The i-th layer (from 0, in the order added); throws InvalidArgument when i >= layer_count().
  Layer& layer(std::size_t i);
  const Layer& layer(std::size_t i) const;
  std::int64_t count_params() const;

  bool compiled() const noexcept;
  Device device() const;                 // after compile (InvalidArgument before)
  std::uint64_t seed() const;            // after compile (InvalidArgument before)
  std::int64_t iterations() const;       // optimizer steps taken
  // How fit ran its last training steps: "cuda graph" (recorded once, replayed), "eager" (op by op), or
  // "eager (capture failed: <reason>)" when recording the step on the GPU failed and fit fell back.
  const std::string& step_mode() const noexcept;
  const Adam& optimizer() const;

  // A callback sets this to end fit after the current epoch (keras: model.stop_training).
  bool stop_training = false;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend struct CheckpointAccess;  // checkpoint.cpp: optimizer state and fit progress
  friend class StepRecorder;       // step_recorder.cpp: runs (and on the GPU records) fit's training steps
  friend struct ModelInternals;    // model/impl.hpp: the model's backend context, for tests and benchmarks
};

}  // namespace dropnet
