// impl.hpp: Sequential's private state and the training step shared by fit, evaluate and predict.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "layers/run_context.hpp"
#include "model/fit_plan.hpp"
#include "model/fused_blocks.hpp"
#include "model/losses.hpp"
#include "dropnet/model.hpp"

namespace dropnet {

struct Sequential::Impl {
  std::string name;
  Shape input_shape;
  std::vector<std::unique_ptr<Layer>> layers;
  std::map<std::string, int> names_used;  // for Keras' automatic names conv2d, conv2d_1, ...

  bool compiled = false;
  CompileOptions options;
  LossSetup loss;  // the resolved loss and metric (model/losses.hpp); loss.defined is false without one
  Device device = Device::CPU;
  std::uint64_t seed = 0;
  // The model's own backend context, made by compile() for `device` with the options' settings
  // (backend::make_backend); every op of the model, its fills and device copies in a step included, is
  // issued on it. Declared before everything that its ops use, so that it is destroyed after them (on the GPU
  // its destructor waits for its stream).
  std::unique_ptr<backend::Backend> backend;
  // The step state (iteration, batch, metric sums, one slot per stochastic layer) in the backend's memory
  // only, owned by the backend context (Backend::step_state; laid out by compile): state().read() takes the
  // host's copy when it is needed (progress ticks, epoch ends, checkpoints). After compile only.
  backend::StepState& state() const { return backend->step_state(); }
  // slot_of[i] is layer i's slot, or -1 for a layer without a seed generator.
  std::vector<std::int64_t> slot_of;

  // Every weight, gradient and Adam moment lives in one flat buffer each, so that Adam is one call.
  Tensor weights, grads, adam_m, adam_v;
  // The non-trainable weights (Param::trainable false: BatchNormalization's moving statistics), which their
  // layers update in training forward passes; outside the optimizer's and the constraints' reach.
  Tensor non_trainable;
  // The MaxNorm projections to run after each step (pointers into the layers' params()).
  std::vector<std::pair<Param*, backend::MaxNormCall>> constraints;

  // Where training is, for checkpoints (checkpoint.cpp), besides the step state: `epoch` is the epoch in
  // progress (or the next one), `mid_epoch` whether batches of it are done (their count and metric sums
  // are then the step state's batch and sums), `history` every completed epoch (across fit calls and
  // resumes). fit updates it at epoch starts and ends; load_checkpoint restores it.
  struct Progress {
    int epoch = 0;
    bool mid_epoch = false;
    History history;
  } progress;

  // The layer runs executed as one block (model/fused_blocks.hpp), found at compile on a backend that
  // fuses and unless CompileOptions::fuse_layers or DROPNET_CPU_FUSE=0 says not to; block_from[i] is the
  // index of the block whose first layer is i, block_to[i] of the block whose last layer is i, else -1.
  std::vector<FusedBlock> blocks;
  std::vector<std::int64_t> block_from, block_to;
  void forward_block(FusedBlock& b, std::int64_t n, RunContext& ctx, bool backward);
  // From the block's output gradient: its Conv2D's input gradient (unless it is the first layer) and
  // weight gradients.
  void backward_block(FusedBlock& b, std::int64_t n, RunContext& ctx);

  // Per-batch buffers, sized for the largest batch seen so far. `buffers_generation` goes up whenever
  // they are allocated anew (a recorded step holds their addresses and must then be dropped).
  std::int64_t capacity = 0;
  std::uint64_t buffers_generation = 0;
  // Layer i's output (capacity, output_shape...). Inside a fused block only the block's last layer's is
  // written; its Conv2D's holds the pre-activation (fused_blocks.hpp).
  std::vector<Tensor> outputs;
  std::vector<Tensor> output_grads;  // dL/d(output of layer i)
  Tensor batch_x, batch_y;
  Tensor stats;                      // [sum of losses, sum of the metric] of the last issue_loss
  std::vector<std::int64_t> range_index;  // gather_range's row list, kept between calls

  // How fit ran its last training steps (Sequential::step_mode()).
  std::string step_mode = "eager";

  void ensure_capacity(std::int64_t batch);
  // Copies the rows `index` of x and y into the batch buffers (y may be empty for predict).
  void gather(const Tensor& x, const Tensor* y, std::span<const std::int64_t> index);
  // The same for the contiguous rows [begin, end).
  void gather_range(const Tensor& x, const Tensor* y, std::int64_t begin, std::int64_t end);
  // Runs the layers on the first n rows of batch_x (each layer with its step-state slot). `backward`: a
  // backward pass follows (training), so the fused blocks keep what it needs; inference passes, Monte
  // Carlo dropout included, skip it.
  void forward(std::int64_t n, RunContext& ctx, bool backward);
  // Layer i's slot of the step state, or null.
  const backend::StepSlot* slot(std::size_t i) const;
  // The NVTX range names of layer i ("conv2d_1 forward", "conv2d_1 backward"), made once (CUDA builds
  // name their ranges; src/core/nvtx.hpp).
  const char* range_name(std::size_t i, bool backward);
  std::vector<std::string> range_names;
  // Issues the loss (and metric) of the first n rows of the last forward against batch_y into `stats`; with an
  // `update` also the backward pass, Adam and the constraints. Nothing is read back (read_stats does).
  void issue_loss(std::int64_t n, RunContext& ctx, const backend::AdamCall* update);
  std::pair<double, double> read_stats() const;
  // Adam's constants for optimizer step t (= iteration + 1).
  kernels::AdamStep adam_step(std::int64_t t) const;
  // Adam's alpha for each batch index of an epoch whose batch `first_step` is optimizer step
  // iteration + 1; entries before first_step are not used.
  std::vector<float> epoch_alphas(std::int64_t steps, std::int64_t first_step, std::uint64_t iteration) const;
  // Issues one training step of fit on the n rows of batch state->batch (of batch_size rows, the last
  // maybe fewer), everything that changes between steps read from the step state and `plan` (gather,
  // forward, loss, backward, Adam, constraints, and last advance_step, which moves the state on and adds
  // the batch's metrics to its sums): the same ops every time, so the GPU can record it once. Reads
  // nothing back.
  void issue_fit_step(FitPlan& plan, std::int64_t batch_size, std::int64_t n);
  Tensor layer_input(std::size_t i, std::int64_t n);

  void require_compiled(const char* what) const;
  // x against the input shape; y (when given) against the loss (check_targets: InvalidArgument without one).
  void check_data(const Tensor& x, const Tensor* y, const char* what) const;
  // y as (N, label_width) (the view the batch gathers and the fit plan read).
  Tensor targets_2d(const Tensor& y) const;
  // The logs of loss and metric sums over `seen` records: "loss" and the metric's name, with a prefix.
  Logs logs_of(double loss_sum, double metric_sum, std::int64_t seen, const std::string& prefix = "") const;
};

// The model's internals that tests and benchmarks reach (a friend of Sequential; not public API).
struct ModelInternals {
  // The model's backend context (InvalidArgument before compile()).
  static backend::Backend& backend(const Sequential& model);
  // How many fused blocks the compiled model runs (model/fused_blocks.hpp; 0 before compile()).
  static std::size_t fused_blocks(const Sequential& model);
};

}  // namespace dropnet
