// launchers.hpp: the host-side entry points of the CUDA kernels in kernels/*.cu.
//
// Plain C++ (no CUDA types), so the backend's .cpp files and the tests can call them without nvcc: a
// stream travels as `void*` (a cudaStream_t) and every pointer is device memory unless it says otherwise.
// Each launcher queues its kernel(s) on `stream` and returns at once; it throws dropnet::DeviceError when
// the launch fails (it checks cudaGetLastError after every launch). n == 0 launches nothing.
//
// The per-element math lives in the shared headers (kernels/*_math.hpp, docs/design.md "One definition of
// each op's math"), so the CPU backend and these kernels compute the same expressions. The launchers do
// not check their arguments: the backends do, first (src/backend/op_checks.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/adam_math.hpp"
#include "kernels/dropblock_math.hpp"
#include "kernels/dropout_math.hpp"
#include "kernels/loss_math.hpp"
#include "kernels/maxnorm_math.hpp"
#include "kernels/step_state.hpp"

namespace dropnet::kernels {

// ---- elementwise.cu ------------------------------------------------------------------------------

// p[i] = value for i < n.
void launch_fill(float* p, std::size_t n, float value, void* stream);
// y[r, c] += b[c] for a (rows, cols) row-major y.
void launch_add_bias(float* y, const float* b, std::size_t rows, std::size_t cols, void* stream);
// y = max(z, 0) (y may equal z).
void launch_relu_forward(const float* z, float* y, std::size_t n, void* stream);
// dz = dy where y > 0, else 0 (dz may equal dy).
void launch_relu_backward(const float* y, const float* dy, float* dz, std::size_t n, void* stream);
// Row-wise softmax of a (rows, cols) matrix, max-subtracted (y may equal z).
void launch_softmax_forward(const float* z, float* y, std::size_t rows, std::size_t cols, void* stream);
// dz = y * (dy - sum_j dy_j y_j) per row (dz may equal dy).
void launch_softmax_backward(const float* y, const float* dy, float* dz, std::size_t rows, std::size_t cols,
                             void* stream);
// dst (cols, rows) = transpose of src (rows, cols), both row-major. The Conv2D kernel (KH*KW*C, K) <->
// cuDNN's NHWC filter (K, KH*KW*C).
void launch_transpose(const float* src, float* dst, std::size_t rows, std::size_t cols, void* stream);

// An NHWC image batch and a window into a larger (padded) one.
struct PadGeometry {
  std::int64_t n, h, w, c;     // the unpadded image
  std::int64_t ph, pw;         // the padded image (n, ph, pw, c)
  std::int64_t top, left;      // where the unpadded image starts inside the padded one
};
// dst (n, ph, pw, c) = src placed at (top, left), `fill` elsewhere (src rows or columns that fall past
// the padded extent are left out).
void launch_pad_nhwc(const float* src, float* dst, const PadGeometry& g, float fill, void* stream);
// dst (n, h, w, c) = the window of src (n, ph, pw, c) at (top, left); 0 where the window runs past src
// (the padded image may end before the unpadded one when no output reads the last rows).
void launch_crop_nhwc(const float* src, float* dst, const PadGeometry& g, void* stream);

// ---- dropout.cu ----------------------------------------------------------------------------------

// One dropout pass (forward x -> y or backward dy -> dx: the same expression, see dropout_math.hpp).
// The broadcast of the mask over the input (noise_shape) is the DropoutBroadcast base (dropout_math.hpp).
// With `slot` (device memory: the layer's StepSlot), the mask's step and the rate are read there by the
// kernel when it runs, so a recorded launch draws the mask of whichever step it replays at that step's rate.
struct DropoutLaunch : DropoutBroadcast {
  std::uint64_t seed;
  std::uint64_t step;          // without a slot
  float rate;                  // without a slot
  const StepSlot* slot = nullptr;
  std::int64_t count;          // input elements
};
void launch_dropout(const float* in, float* out, const DropoutLaunch& call, void* stream);

// ---- noise.cu ------------------------------------------------------------------------------------

// One GaussianDropout, GaussianNoise or AlphaDropout pass (kernels/noise_math.hpp): forward x -> y, or
// backward dy -> dx (`backward`). `kind` is a kernels::NoiseKind; the broadcast base is AlphaDropout's mask
// (noise_shape), `broadcast` false for the other kinds. With `slot` (device memory: the layer's StepSlot) the
// step and the rate (GaussianNoise: the stddev) are read there by the kernel when it runs.
struct NoiseLaunch : DropoutBroadcast {
  int kind;
  bool backward;
  std::uint64_t seed;
  std::uint64_t step;          // without a slot
  float rate;                  // without a slot
  const StepSlot* slot = nullptr;
  std::int64_t count;          // input elements
};
void launch_noise(const float* in, float* out, const NoiseLaunch& call, void* stream);

// ---- dropblock.cu --------------------------------------------------------------------------------

// One DropBlock2D pass (forward x -> y or backward dy -> dx, the same expression: dropblock_math.hpp) over
// the geometry's (N, H, W, C). With `slot` (device memory) the step and the rate are read there when the
// kernels run. `kept` (device memory, one counter) is zeroed, counted and read on the stream.
struct DropBlockLaunch : DropBlockGeometry {
  std::uint64_t seed;
  std::uint64_t step;          // without a slot
  float rate;                  // without a slot
  const StepSlot* slot = nullptr;
};
void launch_dropblock(const float* in, float* out, const DropBlockLaunch& call, unsigned long long* kept,
                      void* stream);

// ---- adam.cu -------------------------------------------------------------------------------------

// Keras' Adam over `count` contiguous parameters in one launch.
void launch_adam(float* params, const float* grads, float* m, float* v, std::size_t count, const AdamStep& step,
                 void* stream);
// The same, with alpha read by the kernel when it runs: alpha_by_batch[*batch] (both device memory, e.g. fit's
// per-epoch alpha table and &StepHeader::batch) replaces step.alpha. Null pointers: step.alpha.
void launch_adam(float* params, const float* grads, float* m, float* v, std::size_t count, const AdamStep& step,
                 const float* alpha_by_batch, const std::int64_t* batch, void* stream);

// ---- maxnorm.cu ----------------------------------------------------------------------------------

// Keras' MaxNorm on one kernel, grouped as maxnorm_math.hpp's maxnorm_grouping says.
struct MaxNormLaunch : MaxNormGrouping {
  float max_value;
};
// `scratch` holds maxnorm_scratch_floats(call) floats (partial sums and one factor per group).
std::size_t maxnorm_scratch_floats(const MaxNormLaunch& call);
void launch_maxnorm(float* w, const MaxNormLaunch& call, float* scratch, void* stream);

// ---- softmax_xent.cu -----------------------------------------------------------------------------

// Softmax cross-entropy from logits (rows, cols); see Backend::softmax_cross_entropy. dz may be null.
// stats[0] += sum of row losses, stats[1] += number of rows whose argmax z equals argmax t (first maximum
// wins ties). The sums are reduced in a fixed order (partial sums per block in `partials`, then one
// block adds them up), so the result does not depend on timing. `partials` holds
// softmax_xent_partials(rows) floats.
std::size_t softmax_xent_partials(std::size_t rows);
void launch_softmax_xent(const float* z, const float* t, float* dz, float grad_scale, float* stats,
                         std::size_t rows, std::size_t cols, float* partials, void* stream);

// ---- loss.cu -------------------------------------------------------------------------------------

// Backend::loss's call (backend::LossCall, without the backend's types).
struct LossLaunch {
  LossKind kind;
  MetricKind metric;
  bool sparse;
  float grad_scale;
  float stat_scale;
};
// Keras' losses and metrics on (rows, cols) predictions y against targets t ((rows, cols), or one class index
// per row when call.sparse); see Backend::loss. dy may be null. stats[0] += stat_scale * sum of row losses,
// stats[1] += stat_scale * sum of row metric values, reduced in softmax_xent's fixed order. `partials` holds
// loss_partials(rows) floats.
std::size_t loss_partials(std::size_t rows);
void launch_loss(const float* y, const float* t, float* dy, const LossLaunch& call, float* stats, std::size_t rows,
                 std::size_t cols, float* partials, void* stream);

// ---- gather.cu -----------------------------------------------------------------------------------

// dst row r = src row index[r] for r < rows (rows of `row_size` floats; index on the device).
void launch_gather_rows(const float* src, const std::int64_t* index, float* dst, std::size_t rows,
                        std::size_t row_size, void* stream);

// fit's batch, with the batch number read on the device (Backend::gather_batch): for r < rows,
// i = order[*batch * batch_size + r]; bx row r = x row i (bytes b become float(b) / 255.0f, a division, as the CPU
// loader's table), by row r = y row i (a class c becomes the one-hot row of `classes` floats with 1 at c).
// Exactly one of x_float/x_bytes and one of y_float/y_class is set; every pointer is device memory and no
// index is checked.
struct GatherBatchLaunch {
  const float* x_float;
  const std::uint8_t* x_bytes;
  const float* y_float;
  const std::uint8_t* y_class;
  std::int64_t x_row;          // values per x row
  std::int64_t classes;        // values per y row
  const std::int64_t* order;   // a permutation of the dataset's rows
  const std::int64_t* batch;   // the batch within the epoch (&StepHeader::batch)
  std::int64_t batch_size;     // the epoch's full batch size: batch b starts at order[b * batch_size]
  std::int64_t rows;           // rows of this batch (batch_size, or fewer for the epoch's last)
  float* bx;                   // (rows, x_row)
  float* by;                   // (rows, classes)
};
void launch_gather_batch(const GatherBatchLaunch& call, void* stream);

// ---- step.cu -------------------------------------------------------------------------------------

// kernels::advance_step_state on one thread (kernels/step_state.hpp): the last op of a training step, so
// that the next replay of a recorded step reads the next step's values. `state`, `slots` and
// advance.batch_stats are device memory.
void launch_advance_step(StepHeader* state, StepSlot* slots, const StepAdvance& advance, void* stream);

}  // namespace dropnet::kernels
