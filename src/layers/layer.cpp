// layer.cpp: what all layers share: naming, shapes, parameter bookkeeping, argument checks.
#include "layers/layer_util.hpp"

#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "dropnet/initializers.hpp"
#include "kernels/philox.hpp"

namespace dropnet {

ActivationKind parse_activation(const std::string& name) {
  if (name.empty() || name == "linear") return ActivationKind::Linear;
  if (name == "relu") return ActivationKind::ReLU;
  if (name == "softmax") return ActivationKind::Softmax;
  throw InvalidArgument(fmt::format("Could not interpret activation function identifier: '{}'; "
                                    "expected linear, relu or softmax", name));
}

Layer::~Layer() = default;

std::int64_t Layer::count_params() const {
  std::int64_t n = 0;
  for (const Param& p : params_) n += element_count(p.shape);
  return n;
}

void Layer::allocate(std::int64_t, Device) {}

const Tensor& Layer::logits() const {
  throw InvalidArgument(fmt::format("layer '{}' ({}) has no softmax output", name_, type()));
}

void Layer::backward_from_logits(const Tensor&, const Tensor&, Tensor*, RunContext&) {
  throw InvalidArgument(fmt::format("layer '{}' ({}) has no softmax output", name_, type()));
}

Shape Layer::finish_build(const Shape& input_shape, Shape output_shape) {
  input_shape_ = input_shape;
  output_shape_ = std::move(output_shape);
  built_ = true;
  return output_shape_;
}

namespace layer_util {

void check_positive_pair(const std::array<std::int64_t, 2>& v, const char* what) {
  if (v[0] <= 0 || v[1] <= 0)
    throw InvalidArgument(fmt::format("Invalid value for argument `{}`. Expected a strictly positive value. "
                                      "Received {}=({}, {}).", what, what, v[0], v[1]));
}

bool parse_padding(const std::string& padding) {
  if (padding == "valid") return false;
  if (padding == "same") return true;
  throw InvalidArgument(fmt::format("The `padding` argument must be one of \"valid\", \"same\". Received: '{}'",
                                    padding));
}

void check_initializer(const std::string& name, const char* what) {
  if (!is_initializer(name))
    throw InvalidArgument(fmt::format("Could not interpret initializer identifier for `{}`: '{}'; expected "
                                      "glorot_uniform, glorot_normal, he_uniform, he_normal, zeros or ones",
                                      what, name));
}

void check_constraint(const std::optional<MaxNorm>& c) {
  if (c && !(c->max_value > 0.0 && c->max_value < 1e30))
    throw InvalidArgument(fmt::format("MaxNorm: max_value must be positive and finite; received {}", c->max_value));
}

std::vector<int> normalize_axes(const MaxNorm& c, const Shape& shape, const std::string& layer) {
  std::vector<int> axes;
  const int rank = static_cast<int>(shape.size());
  for (int a : c.axis) {
    const int n = a < 0 ? a + rank : a;
    if (n < 0 || n >= rank)
      throw InvalidArgument(fmt::format("layer '{}': MaxNorm axis {} is out of range for a kernel of shape {}",
                                        layer, a, to_string(shape)));
    if (std::find(axes.begin(), axes.end(), n) == axes.end()) axes.push_back(n);
  }
  if (axes.empty()) throw InvalidArgument(fmt::format("layer '{}': MaxNorm needs at least one axis", layer));
  std::sort(axes.begin(), axes.end());
  return axes;
}

Param make_param(std::string name, Shape shape, const std::string& initializer, std::uint64_t seed,
                 std::optional<MaxNorm> constraint) {
  // The gradient gets its own host buffer so that a layer also works outside a model (compile() then
  // moves both into the model's flat buffers).
  Param p{std::move(name), shape, Tensor(shape, Device::CPU), Tensor(shape, Device::CPU), std::move(constraint)};
  initialize(initializer, p.value, seed);
  return p;
}

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) {
  return kernels::splitmix64(seed ^ kernels::splitmix64(stream));
}

Tensor batch_view(Tensor& buffer, std::int64_t batch) { return buffer.rows(0, batch); }

namespace {
void check_on_backend(const RunContext& ctx, const Tensor& t, const char* what) {
  if (!t.empty() && t.device() != ctx.backend.device())
    throw InvalidArgument(fmt::format("{}: a {} tensor for the model's {} backend", what, to_string(t.device()),
                                      to_string(ctx.backend.device())));
}
}  // namespace

void copy(RunContext& ctx, Tensor& dst, const Tensor& src) {
  if (src.size() != dst.size())
    throw InvalidArgument(fmt::format("copy: source {} has {} elements, destination {} has {}",
                                      to_string(src.shape()), src.size(), to_string(dst.shape()), dst.size()));
  check_on_backend(ctx, src, "copy");
  check_on_backend(ctx, dst, "copy");
  ctx.backend.copy(dst.data(), src.data(), static_cast<std::size_t>(dst.size()));
}

void fill(RunContext& ctx, Tensor& dst, float value) {
  check_on_backend(ctx, dst, "fill");
  ctx.backend.fill(dst.data(), static_cast<std::size_t>(dst.size()), value);
}

bool pass_without_draws(RunContext& ctx, double rate, const DropoutSchedule& s, const Tensor& in, Tensor& out) {
  switch (draw_case(ctx, rate, s)) {
    case DrawCase::Identity: copy(ctx, out, in); return true;
    case DrawCase::Zeros: fill(ctx, out, 0.0f); return true;
    case DrawCase::Draw: return false;
  }
  return false;
}

void check_noise_shape(const std::vector<std::optional<std::int64_t>>& noise_shape) {
  for (const auto& d : noise_shape) {
    if (d && *d <= 0)
      throw InvalidArgument(fmt::format("Invalid value received for argument `noise_shape`. Expected a tuple "
                                        "of positive integers or None. Received an entry {}", *d));
  }
}

Shape noise_mask_shape(const std::vector<std::optional<std::int64_t>>& noise_shape, const Shape& input_shape,
                       const std::string& layer) {
  if (noise_shape.empty()) return input_shape;
  if (noise_shape.size() != input_shape.size())
    throw InvalidArgument(fmt::format("layer '{}': noise_shape has {} entries but the input {} (batch included) "
                                      "has rank {}", layer, noise_shape.size(), to_string(input_shape),
                                      input_shape.size()));
  Shape mask(input_shape.size());
  for (std::size_t i = 0; i < mask.size(); ++i) {
    mask[i] = noise_shape[i].value_or(input_shape[i]);
    // The batch entry is checked against real batches only (build uses a batch of 1).
    if (mask[i] != 1 && mask[i] != input_shape[i] && !(i == 0 && input_shape[0] == 1))
      throw InvalidArgument(fmt::format("layer '{}': noise_shape entry {} is {}; it must be 1 or the input's "
                                        "dimension {} to broadcast", layer, i, mask[i], input_shape[i]));
  }
  return mask;
}

void allocate_activation(ActivationKind kind, const Shape& out, Device device, Tensor& z, Tensor& dz) {
  z = kind == ActivationKind::Softmax ? Tensor(out, device) : Tensor();
  dz = kind != ActivationKind::Linear ? Tensor(out, device) : Tensor();
}

Tensor activation_gradient(ActivationKind kind, Tensor& dz_buffer, const Tensor& y, const Tensor& dy,
                           RunContext& ctx) {
  if (kind == ActivationKind::Linear) return dy;
  Tensor dz = batch_view(dz_buffer, y.dim(0));
  ctx.backend.activation_backward(kind, y, dy, dz);
  return dz;
}

}  // namespace layer_util
}  // namespace dropnet
