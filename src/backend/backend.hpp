// backend.hpp: the op contract. Every op a layer, the loss or the optimizer needs is one virtual function
// here; the CPU backend (backend/cpu/) and the CUDA backend (backend/cuda/) implement the same signatures,
// and layers never ask which one runs them. All tensors passed to a backend live on its device.
//
// A backend is a context, not a global: each compiled model owns one (Sequential::Impl::backend), made by
// make_backend() for its device with its settings (BackendSettings, from CompileOptions). On the GPU it is
// a stream with its cuDNN/cuBLAS handles, scratch and algorithm choices; it also owns the model's step state
// (step_state()). Two models never share one unless a caller passes the same object to both. Memory itself is not the backend's: tensors allocate, copy and
// fill through the memory layer (backend/memory.hpp), which knows nothing of ops.
//
// Conventions: images NHWC; Conv2D kernels (KH, KW, C, K) and Dense kernels (IN, OUT), Keras layouts,
// row-major. Backward functions overwrite (never accumulate into) their outputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "backend/device_array.hpp"
#include "dropnet/device.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/tensor.hpp"
#include "kernels/adam_math.hpp"
#include "kernels/loss_math.hpp"
#include "kernels/step_state.hpp"

namespace dropnet::backend {

// The fused relu-pool op's route byte of a pooled element whose gradient goes nowhere, and the largest
// window it routes within (Backend::relu_pool_forward).
constexpr std::uint8_t kReluPoolNoRoute = 255;
constexpr std::int64_t kReluPoolMaxWindow = 64;

// A Conv2D problem. Padding is given as the top/left pad; bottom/right follow from the output size.
struct ConvGeometry {
  std::int64_t n, h, w, c;        // input (N, H, W, C)
  std::int64_t kh, kw, k;         // kernel (KH, KW, C, K)
  std::int64_t sh, sw;            // strides
  std::int64_t pad_top, pad_left;
  std::int64_t oh, ow;            // output (N, OH, OW, K)
};

// A MaxPooling2D problem (windows that run past the edge take the max of what is inside).
struct PoolGeometry {
  std::int64_t n, h, w, c;
  std::int64_t ph, pw;            // pool size
  std::int64_t sh, sw;
  std::int64_t pad_top, pad_left;
  std::int64_t oh, ow;
};

// Output size and leading pad for one spatial axis, Keras' rules: "valid" (in - k) / s + 1 with no pad;
// "same" ceil(in / s) with the total pad max((out - 1) * s + k - in, 0) split with the smaller half first.
struct AxisGeometry {
  std::int64_t out, pad_before;
};
AxisGeometry axis_geometry(std::int64_t in, std::int64_t k, std::int64_t s, bool same_padding);

// The model's step state (kernels/step_state.hpp): where training is, in this backend's memory, read by
// the ops when they run and moved on by advance_step(), the step's last op. StepState (below) holds it.
using kernels::StepAdvance;
using kernels::StepHeader;
using kernels::StepSlot;
using kernels::RateSchedule;

// What the model lays out for one stochastic layer: how far its step moves per training forward (0 or 1)
// and the schedule of its rate.
struct SlotLayout {
  std::uint32_t advances;
  RateSchedule schedule;
};

// The host's copy of a step state, taken at a progress tick, an epoch's end or a checkpoint.
struct StepSnapshot {
  StepHeader header{};
  std::vector<StepSlot> slots;
};

// One dropout call. The mask has `mask_shape` (rank of the input, each entry the input's or 1) and is
// broadcast over the input; see kernels/dropout_math.hpp for how each mask element is drawn.
struct DropoutCall {
  std::uint64_t seed;
  std::uint64_t step;              // the mask's step, unless `slot` is given
  float rate;                      // in [0, 1], unless `slot` is given: 0 is the identity, 1 gives zeros
  Shape input_shape;               // batch included
  Shape mask_shape;
  // The layer's slot of the step state (this backend's memory): the op reads the step and the rate there
  // when it runs (the rate may be 0 or 1 under a schedule).
  const StepSlot* slot = nullptr;
};

// One call of the Gaussian-noise family (GaussianDropout, GaussianNoise, AlphaDropout); see
// kernels/noise_math.hpp for each kind's formula and kernels/normal_math.hpp for the normal draws. `rate` is
// GaussianNoise's stddev. Only AlphaDropout takes a mask shape (its noise_shape, broadcast as Dropout's);
// the others draw one normal per input element (mask_shape empty or the input's shape).
struct NoiseCall {
  enum class Kind { GaussianDropout, GaussianNoise, AlphaDropout };
  Kind kind;
  std::uint64_t seed;
  std::uint64_t step;              // the draws' step, unless `slot` is given
  float rate;                      // unless `slot` is given; 0 (and for the dropouts 1) need no draw
  Shape input_shape;               // batch included
  Shape mask_shape;                // AlphaDropout's; empty: the input's shape
  // The layer's slot of the step state (this backend's memory): the op reads the step and the rate there
  // when it runs.
  const StepSlot* slot = nullptr;
};

// One DropBlock2D call (kernels/dropblock_math.hpp): input (N, H, W, C), block_size in [1, min(H, W)].
// As for DropoutCall, with `slot` the op reads the step and the rate there when it runs (0 or 1 possible).
struct DropBlockCall {
  std::uint64_t seed;
  std::uint64_t step;              // unless `slot` is given
  float rate;                      // in [0, 1], unless `slot` is given
  std::int64_t block_size;
  Shape input_shape;               // (N, H, W, C)
  const StepSlot* slot = nullptr;
};

// One Adam call: the step's constants, and optionally where its alpha (the only value that changes from
// step to step) is read instead: alpha_by_batch[state->batch], a table fit fills once per epoch with
// kernels::adam_step() of each of the epoch's steps, so both ways give the same bits.
struct AdamCall {
  kernels::AdamStep step;
  const float* alpha_by_batch = nullptr;  // with state: overrides step.alpha
  const StepHeader* state = nullptr;
  AdamCall(const kernels::AdamStep& s) : step(s) {}  // NOLINT: a plain step is a complete call
  AdamCall(const kernels::AdamStep& s, const float* alpha, const StepHeader* h)
      : step(s), alpha_by_batch(alpha), state(h) {}
};

// A training set in a backend's memory for the length of a fit: images as bytes when every value is
// exactly byte / 255.0f (CIFAR-10), else as floats; labels as class bytes when every row is one-hot, else as
// floats (model/fit_plan.hpp builds it). Exactly one pointer of each pair is set.
struct DatasetView {
  const float* x_float = nullptr;        // (rows, x_row) floats
  const std::uint8_t* x_bytes = nullptr; // (rows, x_row) bytes b, standing for float(b) / 255.0f
  const float* y_float = nullptr;        // (rows, classes) floats
  const std::uint8_t* y_class = nullptr; // (rows) class indices, standing for one-hot rows
  std::int64_t rows = 0, x_row = 0, classes = 0;
};

// A recorded sequence of ops that can be run again (a CUDA graph on the GPU).
class Recording {
 public:
  virtual ~Recording() = default;
  // Queues the recorded ops again, with the arguments they were recorded with (pointers included).
  virtual void replay() = 0;
};

// A max-norm projection of one kernel: `shape` is its Keras shape and `axes` the (non-negative, sorted)
// axes summed over for each norm.
// One call of Backend::loss (kernels/loss_math.hpp has the math).
struct LossCall {
  kernels::LossKind kind = kernels::LossKind::CategoricalLogits;
  // Targets are class indices, one per row of the output (sparse_categorical_crossentropy).
  bool sparse = false;
  kernels::MetricKind metric = kernels::MetricKind::None;
  // dy = grad_scale * d(row loss) / dy: 1 / rows for Keras' mean over the batch's rows.
  float grad_scale = 1.0f;
  // What stats gets per row: its loss and metric times stat_scale (1 / rows per sample, so that stats hold
  // per-sample sums when a sample's output has several rows, e.g. (H, W, C) with the loss over C).
  float stat_scale = 1.0f;
};

struct MaxNormCall {
  Shape shape;
  std::vector<int> axes;
  float max_value;
};

// What a backend is created with (make_backend); fixed for its life, so that two models' backends never
// change each other's numerics. CompileOptions carries them.
struct BackendSettings {
  // Only reproducible algorithms: on the GPU cuDNN's deterministic convolution algorithms (chosen by
  // heuristics rather than timing) and deterministic max-pooling backward. The CPU backend always is.
  bool deterministic = false;
  // TF32 tensor cores for float32 convolutions and GEMMs on the GPU (about 10 mantissa bits per product).
  // Off by default, for reproducibility: float32 results then stay within 1e-5 relative of the CPU's.
  bool allow_tf32 = false;
  // The most device memory one cuDNN algorithm may use as workspace (it counts in the peak memory).
  std::size_t workspace_limit = std::size_t{64} << 20;
  // On the CPU, the threads this context's ops split their loops over (0: the process default,
  // DROPNET_CPU_THREADS or the hardware threads; at most 16). Results do not depend on it.
  unsigned cpu_threads = 0;
};

// One BatchNormalization call over the last axis (kernels/batch_norm_math.hpp): x viewed as (rows, channels)
// row-major, every pointer below `channels` floats on the backend's device. gamma and beta are always given
// (the layer passes ones and zeros where Keras' scale or center is off).
struct BatchNormCall {
  std::int64_t rows = 0, channels = 0;
  float epsilon = 1e-3f;
  float momentum = 0.99f;              // Keras' moving = moving * momentum + batch * momentum_complement
  float momentum_complement = 0.01f;   // float(1 - momentum), rounded from the double as Python does
};
struct BatchNormWeights {
  const float* gamma;
  const float* beta;
  float* moving_mean;
  float* moving_variance;
  // Training: the batch mean and 1 / sqrt(biased variance + epsilon), written by forward, read by backward.
  float* batch_mean;
  float* batch_inv_std;
};

class StepState;

class Backend {
 public:
  Backend();
  virtual ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  virtual Device device() const noexcept = 0;
  // The settings it was created with.
  virtual const BackendSettings& settings() const noexcept = 0;

  // Fills and device-to-device copies of this backend's memory, queued in order with its ops (on the GPU:
  // on its stream, so that a recorded step records them). Tensors' own fill()/copy_from() go through the
  // memory layer instead, outside of any step. copy: `count` floats, both pointers on this device, not
  // overlapping (unless equal).
  virtual void fill(float* ptr, std::size_t count, float value) = 0;
  virtual void copy(float* dst, const float* src, std::size_t count) = 0;
  // Waits until every op issued so far has finished (a no-op on the CPU). Every host read of the step
  // state goes through here, and the waits are counted: fit waits only at progress ticks, epoch ends and
  // checkpoints (tests/cpu/test_fit_step.cpp counts them over an epoch).
  void synchronize() {
    ++host_waits_;
    wait();
  }
  std::uint64_t host_waits() const noexcept { return host_waits_; }

  // The step state of the model this context runs (StepState, below), in this backend's memory: one per
  // backend context, owned by it, laid out by the model at compile (set_step_state). Until then it has no
  // slots and reads as zeros.
  StepState& step_state() noexcept { return *step_state_; }
  void set_step_state(StepState state);

  // y = conv(x, w) + b; b may be null (the activation is a separate op).
  virtual void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                              const ConvGeometry& g) = 0;
  // From dy (N, OH, OW, K): dx (may be null), dw, db (may be null).
  virtual void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                               Tensor* db, const ConvGeometry& g) = 0;

  virtual void maxpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) = 0;
  virtual void maxpool2d_backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx,
                                  const PoolGeometry& g) = 0;

  // ---- Conv2D(relu) -> MaxPooling2D [-> Dropout] as one block (model/fused_blocks.hpp) ---------------------
  // Whether this backend implements relu_pool_forward/backward. The model fuses a block only where it does
  // and runs the layers one by one elsewhere (the CUDA backend); the defaults throw DeviceError.
  virtual bool fuses_relu_pool() const noexcept { return false; }
  // From the convolution's pre-activation z (N, H, W, C): y (N, OH, OW, C) = dropout(maxpool(relu(z))), the
  // bits that activation_forward(ReLU), maxpool2d_forward and dropout_forward (when `dropout` is not null;
  // its input shape is y's) give one after the other. With `route` (y.size() bytes) also what backward
  // needs: per pooled element the row-major index in the ph x pw window of the position its gradient goes
  // to (the first holding the max, as maxpool2d_backward routes it), or kReluPoolNoRoute where relu's gate
  // (max > 0) or the mask stops it. Windows of at most kReluPoolMaxWindow positions.
  virtual void relu_pool_forward(const Tensor& z, Tensor& y, std::uint8_t* route, const PoolGeometry& g,
                                 const DropoutCall* dropout);
  // dz (N, H, W, C) from dy (N, OH, OW, C) and the route of the forward with the same geometry and call (the
  // same step and rate): the bits of dropout_backward, maxpool2d_backward and activation_backward(ReLU).
  virtual void relu_pool_backward(const Tensor& dy, const std::uint8_t* route, Tensor& dz, const PoolGeometry& g,
                                  const DropoutCall* dropout);

  // y = x @ w + b for x (N, IN), w (IN, OUT); b may be null.
  virtual void dense_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) = 0;
  virtual void dense_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                              Tensor* db) = 0;

  // Elementwise relu/linear, or softmax over the last axis. In place (y == z) is allowed.
  virtual void activation_forward(ActivationKind kind, const Tensor& z, Tensor& y) = 0;
  // dz from dy and the forward output y. In place (dz == dy) is allowed.
  virtual void activation_backward(ActivationKind kind, const Tensor& y, const Tensor& dy, Tensor& dz) = 0;

  virtual void dropout_forward(const Tensor& x, Tensor& y, const DropoutCall& call) = 0;
  // Regenerates the mask of the forward with the same call: dx = dy * mask / (1 - rate).
  virtual void dropout_backward(const Tensor& dy, Tensor& dx, const DropoutCall& call) = 0;
  // DropBlock2D: y = x * mask * (total / kept), the mask and the kept count regenerated from (seed, step) by
  // each call, so backward (dx = dy * mask * (total / kept)) stores nothing between the two.
  virtual void dropblock_forward(const Tensor& x, Tensor& y, const DropBlockCall& call) = 0;
  virtual void dropblock_backward(const Tensor& dy, Tensor& dx, const DropBlockCall& call) = 0;

  // The Gaussian-noise family: forward x -> y; backward dy -> dx from the same draws, regenerated
  // (GaussianDropout dx = dy * g, GaussianNoise dx = dy, AlphaDropout dx = dy * a * kept).
  virtual void noise_forward(const Tensor& x, Tensor& y, const NoiseCall& call) = 0;
  virtual void noise_backward(const Tensor& dy, Tensor& dx, const NoiseCall& call) = 0;

  // Softmax cross-entropy from logits z (N, C) and targets t (N, C), rows of t summing to 1:
  //   loss_i = logsumexp(z_i) - sum_j t_ij z_ij,   correct_i = argmax z_i == argmax t_i
  // Adds sum_i loss_i to stats[0] and sum_i correct_i to stats[1] (stats: 2 floats on this device), and,
  // when dz is not null, writes dz = (softmax(z) - t) * grad_scale.
  virtual void softmax_cross_entropy(const Tensor& z, const Tensor& t, Tensor* dz, float grad_scale,
                                     Tensor& stats) = 0;

  // Keras' losses and metrics (LossCall, kernels/loss_math.hpp) on y, any shape, as rows of its last axis,
  // against targets t: y's shape (dense) or one value per row (call.sparse). Adds stat_scale times the sum
  // of the row losses to stats[0] and of the row metric values to stats[1] (2 floats on this device), and,
  // when dy is not null, writes dy = grad_scale * d(sum of row losses) / dy.
  virtual void loss(const Tensor& y, const Tensor& t, Tensor* dy, const LossCall& call, Tensor& stats) = 0;

  // Keras' Adam over `count` contiguous parameters (kernels/adam_math.hpp).
  virtual void adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                           const AdamCall& call) = 0;
  // Keras' MaxNorm on one kernel in place (kernels/maxnorm_math.hpp).
  virtual void maxnorm(float* w, const MaxNormCall& call) = 0;

  // dst row r = src row index[r] for r < index.size(); src may live on the host or on this device.
  virtual void gather_rows(const Tensor& src, std::span<const std::int64_t> index, Tensor& dst) = 0;

  // ---- BatchNormalization (axis -1) and average pooling (issue 24) ------------------------------------
  // Training forward: y = (x - mean) * inv_std * gamma + beta with the batch's per-channel mean and biased
  // variance; writes batch_mean and batch_inv_std and moves moving_mean and moving_variance as Keras 3 does
  // (BatchNormCall). On the CPU every per-channel sum runs over the rows in order, in double, whatever the
  // thread count.
  virtual void batch_norm_forward_training(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                           const BatchNormCall& call) = 0;
  // Inference: the same with moving_mean and moving_variance; nothing is written but y.
  virtual void batch_norm_forward_inference(const Tensor& x, Tensor& y, const BatchNormWeights& w,
                                            const BatchNormCall& call) = 0;
  // From dy and the last training forward's batch_mean and batch_inv_std: dgamma = sum dy * xhat,
  // dbeta = sum dy, and (unless dx is null) dx = gamma * inv_std * (dy - dbeta / rows - xhat * dgamma / rows).
  virtual void batch_norm_backward(const Tensor& x, const Tensor& dy, Tensor* dx, const BatchNormWeights& w,
                                   float* dgamma, float* dbeta, const BatchNormCall& call) = 0;
  // AveragePooling2D (and GlobalAveragePooling2D, one window over the whole map): y = the mean of the
  // positions of each window that lie inside the input (Keras' count excludes padding); dx from dy, each
  // input position gathering dy / count from the windows that hold it (kernels/avg_pool_math.hpp: the same
  // expressions on the CPU and the GPU, so the same bits).
  virtual void avgpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) = 0;
  virtual void avgpool2d_backward(const Tensor& dy, Tensor& dx, const PoolGeometry& g) = 0;

  // ---- the training step of fit, replayable (see StepHeader) --------------------------------------

  // The batch of step state->batch: for r < bx.dim(0), rows r of bx and by are dataset row
  // order[state->batch * batch_size + r] (bytes become float(b) / 255.0f, a class c the one-hot row
  // with 1 at c); batch_size is the epoch's full batch size (a last, smaller batch has fewer rows).
  // `data`, `order` and `state` are in this backend's memory; indices are not checked here (fit
  // builds `order` as a permutation of the dataset's rows).
  virtual void gather_batch(const DatasetView& data, const std::int64_t* order, const StepHeader* state,
                            std::int64_t batch_size, Tensor& bx, Tensor& by) = 0;
  // The step's last op: moves the state on as `advance` says (kernels::advance_step_state); `slots`
  // are the header's state->slots slots. batch_stats, when set, is in this backend's memory.
  virtual void advance_step(StepHeader* state, StepSlot* slots, const StepAdvance& advance) = 0;
  // Records the ops that `enqueue` issues, without running them, for replay; null when the backend runs
  // every op as it is issued (the CPU). Throws DeviceError when recording fails (the caller then runs the
  // ops directly); the backend is usable afterwards either way.
  virtual std::unique_ptr<Recording> capture(const std::function<void()>& enqueue) {
    (void)enqueue;
    return nullptr;
  }

 protected:
  // The wait itself (synchronize() counts it).
  virtual void wait() = 0;

 private:
  std::uint64_t host_waits_ = 0;
  std::unique_ptr<StepState> step_state_;  // never null
};

// A model's step state in its backend's memory (kernels/step_state.hpp), laid out when the model is
// compiled: the header and one slot per stochastic layer. The host reads it only through read(), which
// waits for the backend (Backend::synchronize(), counted).
class StepState {
 public:
  StepState() = default;
  // A fresh state (all zero) on `backend`'s device, slot i laid out as layout[i] (its rate the schedule's
  // value at iteration 0).
  StepState(Backend& backend, std::span<const SlotLayout> layout);
  StepHeader* header() noexcept { return header_.data(); }
  StepSlot* slots() noexcept { return slots_.data(); }
  std::size_t slot_count() const noexcept { return slots_.size(); }
  // Waits for the ops issued so far and copies the state to the host.
  StepSnapshot read() const;
  // Replaces the header and the slots' steps (their layout stays; the rates follow from the schedules at
  // the header's iteration). The backend must be idle (on a GPU nothing orders this copy after the ops
  // queued on the model's stream, memory.hpp): callers write right after a read(), which waited.
  void write(const StepSnapshot& state);

 private:
  Backend* backend_ = nullptr;
  DeviceArray<StepHeader> header_;
  DeviceArray<StepSlot> slots_;
  std::vector<SlotLayout> layout_;
};

// A new backend for `device` with `settings` (backend/factory.cpp, the only place that chooses between the
// CPU and CUDA backends). Throws DeviceUnavailable for CUDA when cuda_available() is false or the build has
// no CUDA, DeviceError when the GPU's stream or handles cannot be set up.
std::unique_ptr<Backend> make_backend(Device device, const BackendSettings& settings = {});

}  // namespace dropnet::backend
