// op_checks.cpp: see op_checks.hpp.
#include "backend/op_checks.hpp"

#include <cmath>
#include <string>

#include "dropnet/errors.hpp"
#include "kernels/dropout_math.hpp"
#include "kernels/maxnorm_math.hpp"

namespace dropnet::backend::checks {
namespace {

const char* backend_name(Device device) { return device == Device::CUDA ? "the CUDA backend" : "the CPU backend"; }

[[noreturn]] void fail(const std::string& message) { throw InvalidArgument(message); }

}  // namespace

void on_device(Device device, const Tensor& t, const char* what) {
  if (t.device() != device && !t.empty())
    fail(std::string(backend_name(device)) + " got a " + (t.device() == Device::CUDA ? "CUDA" : "host") +
         " tensor as " + what + "; copy it with to(Device::" + (device == Device::CUDA ? "CUDA" : "CPU") + ")");
}

void tensor_of(Device device, const Tensor& t, std::int64_t count, const char* what) {
  on_device(device, t, what);
  if (t.size() != count)
    fail(std::string(backend_name(device)) + " expected " + what + " of " + std::to_string(count) +
         " elements, got shape " + to_string(t.shape()));
}

RowsCols rows_cols(const Tensor& t) {
  if (t.rank() == 0 || t.dim(-1) == 0) return RowsCols{0, 0};
  return RowsCols{t.size() / t.dim(-1), t.dim(-1)};
}

void conv2d_forward(Device device, const Tensor& x, const Tensor& w, const Tensor* b, const Tensor& y,
                    const ConvGeometry& g) {
  tensor_of(device, x, g.n * g.h * g.w * g.c, "Conv2D input");
  tensor_of(device, w, g.kh * g.kw * g.c * g.k, "Conv2D kernel");
  if (b != nullptr) tensor_of(device, *b, g.k, "Conv2D bias");
  tensor_of(device, y, g.n * g.oh * g.ow * g.k, "Conv2D output");
}

void conv2d_backward(Device device, const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor* dx,
                     const Tensor& dw, const Tensor* db, const ConvGeometry& g) {
  tensor_of(device, x, g.n * g.h * g.w * g.c, "Conv2D input");
  tensor_of(device, w, g.kh * g.kw * g.c * g.k, "Conv2D kernel");
  tensor_of(device, dy, g.n * g.oh * g.ow * g.k, "Conv2D output gradient");
  if (dx != nullptr) tensor_of(device, *dx, g.n * g.h * g.w * g.c, "Conv2D input gradient");
  tensor_of(device, dw, g.kh * g.kw * g.c * g.k, "Conv2D kernel gradient");
  if (db != nullptr) tensor_of(device, *db, g.k, "Conv2D bias gradient");
}

void maxpool2d_forward(Device device, const Tensor& x, const Tensor& y, const PoolGeometry& g) {
  tensor_of(device, x, g.n * g.h * g.w * g.c, "MaxPooling2D input");
  tensor_of(device, y, g.n * g.oh * g.ow * g.c, "MaxPooling2D output");
}

void maxpool2d_backward(Device device, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& dx,
                        const PoolGeometry& g) {
  maxpool2d_forward(device, x, y, g);
  tensor_of(device, dy, g.n * g.oh * g.ow * g.c, "MaxPooling2D output gradient");
  tensor_of(device, dx, g.n * g.h * g.w * g.c, "MaxPooling2D input gradient");
}

void relu_pool(Device device, const Tensor& z, const Tensor& y, const PoolGeometry& g, const DropoutCall* dropout) {
  tensor_of(device, z, g.n * g.h * g.w * g.c, "relu-pool pre-activation (gradient)");
  tensor_of(device, y, g.n * g.oh * g.ow * g.c, "relu-pool output (gradient)");
  if (g.ph * g.pw > kReluPoolMaxWindow)
    fail("the fused relu-pool op takes windows of up to " + std::to_string(kReluPoolMaxWindow) + " positions, got " +
         std::to_string(g.ph) + "x" + std::to_string(g.pw));
  if (dropout != nullptr) dropout_call(*dropout, y.size());
}

void relu_pool_route(const std::uint8_t* route) {
  if (route == nullptr) fail("the fused relu-pool backward needs the forward's route bytes");
}

namespace {
DenseDims dense_dims(Device device, const Tensor& x, const Tensor& w) {
  on_device(device, x, "Dense input");
  on_device(device, w, "Dense kernel");
  if (w.rank() != 2 || x.rank() < 1)
    fail("Dense expects a kernel (IN, OUT) and an input (N, IN), got kernel " + to_string(w.shape()) + " and input " +
         to_string(x.shape()));
  const DenseDims d{x.dim(0), w.dim(0), w.dim(1)};
  if (x.size() != d.n * d.in) fail("Dense input " + to_string(x.shape()) + " does not match kernel " + to_string(w.shape()));
  return d;
}
}  // namespace

DenseDims dense_forward(Device device, const Tensor& x, const Tensor& w, const Tensor* b, const Tensor& y) {
  const DenseDims d = dense_dims(device, x, w);
  if (b != nullptr) tensor_of(device, *b, d.out, "Dense bias");
  tensor_of(device, y, d.n * d.out, "Dense output");
  return d;
}

DenseDims dense_backward(Device device, const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor* dx,
                         const Tensor& dw, const Tensor* db) {
  const DenseDims d = dense_dims(device, x, w);
  tensor_of(device, dy, d.n * d.out, "Dense output gradient");
  if (dx != nullptr) tensor_of(device, *dx, d.n * d.in, "Dense input gradient");
  tensor_of(device, dw, d.in * d.out, "Dense kernel gradient");
  if (db != nullptr) tensor_of(device, *db, d.out, "Dense bias gradient");
  return d;
}

void activation_forward(Device device, const Tensor& z, const Tensor& y) {
  tensor_of(device, z, y.size(), "activation input");
  on_device(device, y, "activation output");
}

void activation_backward(Device device, const Tensor& y, const Tensor& dy, const Tensor& dz) {
  tensor_of(device, y, dz.size(), "activation output");
  tensor_of(device, dy, dz.size(), "activation output gradient");
  on_device(device, dz, "activation input gradient");
}

void dropout(Device device, const Tensor& in, const Tensor& out, const DropoutCall& call, bool backward) {
  tensor_of(device, in, out.size(), backward ? "dropout output gradient" : "dropout input");
  on_device(device, out, backward ? "dropout input gradient" : "dropout output");
  dropout_call(call, in.size());
}

void dropout_call(const DropoutCall& call, std::int64_t size) {
  const Shape& shape = call.input_shape;
  const Shape& mask = call.mask_shape;
  if (shape.size() > static_cast<std::size_t>(kernels::kDropoutMaxRank))
    fail("dropout supports inputs of rank up to 8, got " + to_string(shape));
  if (mask.size() != shape.size())
    fail("dropout mask shape " + to_string(mask) + " does not have the rank of the input " + to_string(shape));
  if (element_count(shape) != size)
    fail("dropout input shape " + to_string(shape) + " does not match the tensor's " + std::to_string(size) +
         " elements");
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (mask[d] != shape[d] && mask[d] != 1)
      fail("dropout mask shape " + to_string(mask) + " does not broadcast to the input " + to_string(shape));
  // 0 and 1 are allowed: under a schedule the rate the op reads may be either (late or early dropout), and
  // the kernels handle both (dropout_rate_edge: the identity, zeros).
  if (!(call.rate >= 0.0f && call.rate <= 1.0f))
    fail("the dropout op needs a rate in [0, 1], got " + std::to_string(call.rate));
}

void noise(Device device, const Tensor& in, const Tensor& out, const NoiseCall& call, bool backward) {
  const bool additive = call.kind == NoiseCall::Kind::GaussianNoise;
  const char* layer = additive ? "GaussianNoise"
                      : call.kind == NoiseCall::Kind::GaussianDropout ? "GaussianDropout" : "AlphaDropout";
  tensor_of(device, in, out.size(), backward ? "noise output gradient" : "noise input");
  on_device(device, out, backward ? "noise input gradient" : "noise output");
  const Shape& shape = call.input_shape;
  const Shape& mask = call.mask_shape.empty() ? shape : call.mask_shape;
  if (shape.size() > static_cast<std::size_t>(kernels::kDropoutMaxRank))
    fail(std::string(layer) + " supports inputs of rank up to 8, got " + to_string(shape));
  if (element_count(shape) != in.size())
    fail(std::string(layer) + " input shape " + to_string(shape) + " does not match the tensor's " +
         std::to_string(in.size()) + " elements");
  if (mask != shape && call.kind != NoiseCall::Kind::AlphaDropout)
    fail(std::string(layer) + " draws one value per element; it takes no mask shape, got " + to_string(mask));
  if (mask.size() != shape.size())
    fail(std::string(layer) + " mask shape " + to_string(mask) + " does not have the rank of the input " +
         to_string(shape));
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (mask[d] != shape[d] && mask[d] != 1)
      fail(std::string(layer) + " mask shape " + to_string(mask) + " does not broadcast to the input " +
           to_string(shape));
  if (call.slot == nullptr && !(call.rate >= 0.0f && (additive ? std::isfinite(call.rate) : call.rate <= 1.0f)))
    fail(std::string(layer) + " op needs " + (additive ? "a finite stddev >= 0" : "a rate in [0, 1]") + ", got " +
         std::to_string(call.rate));
}

kernels::DropBlockGeometry dropblock(Device device, const Tensor& in, const Tensor& out, const DropBlockCall& call,
                                     bool backward) {
  tensor_of(device, in, out.size(), backward ? "DropBlock2D output gradient" : "DropBlock2D input");
  on_device(device, out, backward ? "DropBlock2D input gradient" : "DropBlock2D output");
  const Shape& shape = call.input_shape;
  if (shape.size() != 4) fail("DropBlock2D expects an input (N, H, W, C), got " + to_string(shape));
  if (element_count(shape) != in.size())
    fail("DropBlock2D input shape " + to_string(shape) + " does not match the tensor's " + std::to_string(in.size()) +
         " elements");
  const kernels::DropBlockGeometry g{shape[0], shape[1], shape[2], shape[3], call.block_size};
  if (g.block < 1 || g.block > g.h || g.block > g.w)
    fail("DropBlock2D block_size " + std::to_string(g.block) + " does not fit the input " + to_string(shape));
  if (!(call.rate >= 0.0f && call.rate <= 1.0f))
    fail("the DropBlock2D op needs a rate in [0, 1], got " + std::to_string(call.rate));
  return g;
}

void softmax_cross_entropy(Device device, const Tensor& z, const Tensor& t, const Tensor* dz, const Tensor& stats) {
  on_device(device, z, "logits");
  tensor_of(device, t, z.size(), "targets");
  if (dz != nullptr) tensor_of(device, *dz, z.size(), "logit gradient");
  tensor_of(device, stats, 2, "loss statistics");
}

void loss(Device device, const Tensor& y, const Tensor& t, const Tensor* dy, const LossCall& call,
          const Tensor& stats) {
  on_device(device, y, "loss prediction");
  if (y.rank() == 0 || y.dim(-1) <= 0) fail("the loss op needs a prediction with a non-empty last axis, got " +
                                            to_string(y.shape()));
  const std::int64_t rows = y.size() / y.dim(-1);
  tensor_of(device, t, call.sparse ? rows : y.size(), call.sparse ? "sparse targets (one per row)" : "targets");
  if (dy != nullptr) tensor_of(device, *dy, y.size(), "loss gradient");
  tensor_of(device, stats, 2, "loss statistics");
  if (!std::isfinite(call.grad_scale) || !std::isfinite(call.stat_scale))
    fail("the loss op needs finite grad_scale and stat_scale");
}

void maxnorm(const MaxNormCall& call) {
  const int rank = static_cast<int>(call.shape.size());
  if (rank > kernels::kMaxNormMaxRank) fail("max-norm supports kernels of rank up to 8, got " + to_string(call.shape));
  for (int a : call.axes)
    if (a < 0 || a >= rank)
      fail("max-norm axis " + std::to_string(a) + " is out of range for a kernel of shape " + to_string(call.shape));
}

void gather_rows(Device device, const Tensor& src, std::span<const std::int64_t> index, const Tensor& dst) {
  on_device(device, dst, "gather destination");
  if (index.empty()) return;
  const std::int64_t rows = src.rank() == 0 ? 0 : src.dim(0);
  const std::int64_t row_size = rows == 0 ? 0 : src.size() / rows;
  for (std::size_t r = 0; r < index.size(); ++r)
    if (index[r] < 0 || index[r] >= rows)
      fail("gather index " + std::to_string(index[r]) + " at position " + std::to_string(r) + " is outside [0, " +
           std::to_string(rows) + ")");
  const auto count = static_cast<std::int64_t>(index.size());
  if (dst.size() < count * row_size)
    fail("gather destination " + to_string(dst.shape()) + " cannot hold " + std::to_string(count) + " rows of " +
         std::to_string(row_size));
}

void gather_batch(Device device, const DatasetView& data, const std::int64_t* order, const StepHeader* state,
                  std::int64_t batch_size, const Tensor& bx, const Tensor& by) {
  on_device(device, bx, "batch images");
  on_device(device, by, "batch targets");
  if (bx.rank() == 0) fail("gather_batch: the batch images need a batch dimension");
  const std::int64_t rows = bx.dim(0);
  if (bx.size() != rows * data.x_row)
    fail("gather_batch: batch images " + to_string(bx.shape()) + " are not " + std::to_string(rows) + " rows of " +
         std::to_string(data.x_row) + " values");
  if (by.size() != rows * data.classes)
    fail("gather_batch: batch targets " + to_string(by.shape()) + " are not " + std::to_string(rows) + " rows of " +
         std::to_string(data.classes) + " values");
  if (rows == 0) return;
  if (batch_size < rows)
    fail("gather_batch: a batch of " + std::to_string(rows) + " rows is larger than the batch size " +
         std::to_string(batch_size));
  if (order == nullptr || state == nullptr) fail("gather_batch: order and the step state are required");
  if ((data.x_float == nullptr) == (data.x_bytes == nullptr) || (data.y_float == nullptr) == (data.y_class == nullptr))
    fail("gather_batch: the dataset needs exactly one of x_float/x_bytes and of y_float/y_class");
}

}  // namespace dropnet::backend::checks
