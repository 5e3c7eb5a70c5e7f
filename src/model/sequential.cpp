// sequential.cpp: building, compiling and the training step of keras.Sequential.
#include <algorithm>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "kernels/philox.hpp"
#include "layers/layer_util.hpp"
#include "core/nvtx.hpp"
#include "backend/memory.hpp"
#include "model/impl.hpp"

namespace dropnet {

Callback::~Callback() = default;
void Callback::on_train_begin(Sequential&) {}
void Callback::on_epoch_begin(int) {}
void Callback::on_batch_end(int, const Logs&) {}
bool Callback::wants_batch_logs() const { return false; }
void Callback::on_epoch_end(int, const Logs&) {}
void Callback::on_train_end(const Logs&) {}

Sequential::Sequential(Shape input_shape, std::string name) : impl_(std::make_unique<Impl>()) {
  for (std::int64_t d : input_shape)
    if (d <= 0) throw InvalidArgument(fmt::format("input shape {} must have positive dimensions",
                                                  to_string(input_shape)));
  if (input_shape.empty()) throw InvalidArgument("input shape must have at least one dimension");
  impl_->name = std::move(name);
  impl_->input_shape = std::move(input_shape);
}
Sequential::~Sequential() = default;
Sequential::Sequential(Sequential&&) noexcept = default;
Sequential& Sequential::operator=(Sequential&&) noexcept = default;

Layer& Sequential::add(std::unique_ptr<Layer> layer) {
  if (!layer) throw InvalidArgument("add(): null layer");
  if (impl_->compiled) throw InvalidArgument("add(): the model is already compiled");
  if (layer->name().empty()) {
    const int n = impl_->names_used[layer->name_stem()]++;
    layer->set_name(n == 0 ? layer->name_stem() : fmt::format("{}_{}", layer->name_stem(), n));
  }
  for (const auto& l : impl_->layers)
    if (l->name() == layer->name())
      throw InvalidArgument(fmt::format("add(): a layer named '{}' is already in the model", layer->name()));
  impl_->layers.push_back(std::move(layer));
  return *impl_->layers.back();
}

void Sequential::compile(const CompileOptions& options) {
  Impl& m = *impl_;
  check_loss_names(options);
  const Adam& a = options.optimizer;
  if (!(a.learning_rate > 0) || !(a.beta_1 >= 0 && a.beta_1 < 1) || !(a.beta_2 >= 0 && a.beta_2 < 1) ||
      !(a.epsilon >= 0))
    throw InvalidArgument(fmt::format("Adam: expected learning_rate > 0, 0 <= beta_1, beta_2 < 1 and "
                                      "epsilon >= 0; got {}, {}, {}, {}", a.learning_rate, a.beta_1, a.beta_2,
                                      a.epsilon));
  if (m.layers.empty()) throw InvalidArgument("compile(): the model has no layers");

  m.options = options;
  m.device = options.device.value_or(cuda_available() ? Device::CUDA : Device::CPU);
  // The model's own backend context; it replaces the old one (of an earlier compile) with the step state below.
  std::unique_ptr<backend::Backend> context = backend::make_backend(
      m.device, {.deterministic = options.deterministic, .allow_tf32 = options.allow_tf32,
                 .workspace_limit = options.workspace_limit, .cpu_threads = options.cpu_threads});
  m.seed = options.seed ? *options.seed : std::random_device{}() | (std::uint64_t(std::random_device{}()) << 32);

  // Build: each layer's seed depends on the model seed and the layer's position only, so the same
  // architecture and seed give the same weights whatever the dropout rates.
  Shape shape = m.input_shape;
  for (std::size_t i = 0; i < m.layers.size(); ++i)
    shape = m.layers[i]->build(shape, kernels::splitmix64(m.seed + 0x632BE59BD9B4E019ull * (i + 1)));
  m.loss = resolve_loss(options, shape, m.layers.back()->softmax_output());

  // Place every parameter in the flat buffers, each aligned to 64 floats for vector loads: the trainable
  // ones in `weights` (with their gradients and Adam moments), the non-trainable ones (Param::trainable) in
  // `non_trainable`, which no optimizer or constraint op sees.
  constexpr std::int64_t kAlign = 64;
  std::int64_t total = 0, fixed_total = 0;
  for (auto& l : m.layers)
    for (Param& p : l->params())
      (p.trainable ? total : fixed_total) += (element_count(p.shape) + kAlign - 1) / kAlign * kAlign;
  m.weights = Tensor({total}, m.device);
  m.grads = Tensor({total}, m.device);
  m.adam_m = Tensor({total}, m.device);
  m.adam_v = Tensor({total}, m.device);
  m.non_trainable = Tensor({fixed_total}, m.device);
  std::int64_t offset = 0, fixed_offset = 0;
  m.constraints.clear();
  for (auto& l : m.layers) {
    for (Param& p : l->params()) {
      const std::int64_t n = element_count(p.shape);
      if (!p.trainable) {
        Tensor value = m.non_trainable.rows(fixed_offset, fixed_offset + n).reshaped(p.shape);
        value.copy_from(p.value);
        p.value = value;
        p.grad = Tensor();
        fixed_offset += (n + kAlign - 1) / kAlign * kAlign;
        continue;
      }
      Tensor value = m.weights.rows(offset, offset + n).reshaped(p.shape);
      value.copy_from(p.value);
      p.value = value;
      p.grad = m.grads.rows(offset, offset + n).reshaped(p.shape);
      offset += (n + kAlign - 1) / kAlign * kAlign;
      if (p.constraint)
        m.constraints.push_back({&p, {p.shape, layer_util::normalize_axes(*p.constraint, p.shape, l->name()),
                                      float(p.constraint->max_value)}});
    }
  }
  // The step state: one slot per layer with a seed generator, moving one step per training forward if it
  // draws, with its rate's schedule. Laid out fresh (iteration 0, every step 0), in the backend's memory.
  std::vector<backend::SlotLayout> layout;
  m.slot_of.assign(m.layers.size(), -1);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    if (const auto gen = m.layers[i]->seed_generator()) {
      m.slot_of[i] = static_cast<std::int64_t>(layout.size());
      layout.push_back({gen->draws ? 1u : 0u, layer_util::rate_schedule(gen->rate, gen->schedule)});
    }
  }
  // The fused blocks, where the backend fuses and nothing says not to.
  m.blocks.clear();
  m.block_from.assign(m.layers.size(), -1);
  m.block_to.assign(m.layers.size(), -1);
  if (options.fuse_layers && fusion_allowed_by_environment() && context->fuses_relu_pool())
    m.blocks = find_fused_blocks(m.layers);
  for (std::size_t b = 0; b < m.blocks.size(); ++b) {
    m.block_from[m.blocks[b].conv] = static_cast<std::int64_t>(b);
    m.block_to[m.blocks[b].last] = static_cast<std::int64_t>(b);
  }
  m.backend = std::move(context);
  m.backend->set_step_state(backend::StepState(*m.backend, layout));
  m.progress = {};
  m.capacity = 0;
  m.stats = Tensor({2}, m.device);
  m.compiled = true;
}

void Sequential::Impl::require_compiled(const char* what) const {
  if (!compiled) throw InvalidArgument(fmt::format("{}: call compile() first", what));
}

void Sequential::Impl::check_data(const Tensor& x, const Tensor* y, const char* what) const {
  Shape want{x.rank() ? x.dim(0) : 0};
  want.insert(want.end(), input_shape.begin(), input_shape.end());
  if (x.shape() != want)
    throw InvalidArgument(fmt::format("{}: x has shape {}; expected (N, {} for this model", what,
                                      to_string(x.shape()), to_string(input_shape).substr(1)));
  if (y == nullptr) return;
  check_targets(loss, layers.back()->output_shape(), *y, x.dim(0), what);
}

Tensor Sequential::Impl::targets_2d(const Tensor& y) const {
  return y.reshaped({y.rank() ? y.dim(0) : 0, loss.label_width});
}

Logs Sequential::Impl::logs_of(double loss_sum, double metric_sum, std::int64_t seen, const std::string& prefix) const {
  Logs logs{{prefix + "loss", seen ? loss_sum / double(seen) : 0.0}};
  if (!loss.metric_name.empty()) logs[prefix + loss.metric_name] = seen ? metric_sum / double(seen) : 0.0;
  return logs;
}

void Sequential::Impl::ensure_capacity(std::int64_t batch) {
  if (batch <= capacity) return;
  outputs.clear();
  output_grads.clear();
  for (auto& l : layers) {
    Shape s{batch};
    s.insert(s.end(), l->output_shape().begin(), l->output_shape().end());
    outputs.emplace_back(s, device);
    output_grads.emplace_back(s, device);
    l->allocate(batch, device);
  }
  for (FusedBlock& b : blocks)
    b.route = backend::DeviceArray<std::uint8_t>(static_cast<std::size_t>(outputs[b.pool].size()), device);
  Shape xs{batch};
  xs.insert(xs.end(), input_shape.begin(), input_shape.end());
  batch_x = Tensor(xs, device);
  batch_y = Tensor({batch, loss.label_width}, device);
  capacity = batch;
  ++buffers_generation;
}

void Sequential::Impl::gather(const Tensor& x, const Tensor* y, std::span<const std::int64_t> index) {
  const auto n = static_cast<std::int64_t>(index.size());
  Tensor bx = batch_x.rows(0, n);
  backend->gather_rows(x, index, bx);
  if (y != nullptr) {
    Tensor by = batch_y.rows(0, n);
    backend->gather_rows(*y, index, by);
  }
}

void Sequential::Impl::gather_range(const Tensor& x, const Tensor* y, std::int64_t begin, std::int64_t end) {
  range_index.resize(static_cast<std::size_t>(end - begin));
  std::iota(range_index.begin(), range_index.end(), begin);
  gather(x, y, range_index);
}

Tensor Sequential::Impl::layer_input(std::size_t i, std::int64_t n) {
  return i == 0 ? batch_x.rows(0, n) : outputs[i - 1].rows(0, n);
}

const char* Sequential::Impl::range_name(std::size_t i, bool backward) {
  if (range_names.size() != 2 * layers.size()) {
    range_names.clear();
    for (const auto& layer : layers) {
      range_names.push_back(layer->name() + " forward");
      range_names.push_back(layer->name() + " backward");
    }
  }
  return range_names[2 * i + (backward ? 1 : 0)].c_str();
}

void Sequential::Impl::forward(std::int64_t n, RunContext& ctx, bool backward) {
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (block_from[i] >= 0) {
      FusedBlock& b = blocks[std::size_t(block_from[i])];
      forward_block(b, n, ctx, backward);
      i = b.last;
      continue;
    }
    DROPNET_NVTX_RANGE(range_name(i, false));
    Tensor in = layer_input(i, n);
    Tensor out = outputs[i].rows(0, n);
    ctx.slot = slot(i);
    layers[i]->forward(in, out, ctx);
  }
}

const backend::StepSlot* Sequential::Impl::slot(std::size_t i) const {
  return slot_of[i] < 0 ? nullptr : state().slots() + slot_of[i];
}

void Sequential::Impl::issue_loss(std::int64_t n, RunContext& ctx, const backend::AdamCall* update) {
  const std::size_t last = layers.size() - 1;
  // The loss's input: the softmax head's logits, or the output; its gradient goes to output_grads[last].
  Tensor pred = loss.from_softmax_logits ? layers[last]->logits().rows(0, n) : outputs[last].rows(0, n);
  Tensor labels = batch_y.rows(0, n);
  Tensor dpred = output_grads[last].rows(0, n);
  {
    DROPNET_NVTX_RANGE("loss");
    backend->fill(stats.data(), static_cast<std::size_t>(stats.size()), 0.0f);
    // Keras' loss is the mean over the batch's rows, so each row's gradient carries 1 / rows.
    const float grad_scale = 1.0f / float(n * loss.rows_per_sample);
    if (loss.softmax_xent_op) {
      backend->softmax_cross_entropy(pred, labels, update ? &dpred : nullptr, grad_scale, stats);
    } else {
      backend::LossCall call = loss.call;
      call.grad_scale = grad_scale;
      backend->loss(pred, labels, update ? &dpred : nullptr, call, stats);
    }
  }
  if (update == nullptr) return;
  for (std::size_t i = last + 1; i-- > 0;) {
    if (block_to[i] >= 0) {
      FusedBlock& b = blocks[std::size_t(block_to[i])];
      backward_block(b, n, ctx);
      i = b.conv;
      continue;
    }
    DROPNET_NVTX_RANGE(range_name(i, true));
    Tensor in = layer_input(i, n);
    Tensor dx = i > 0 ? output_grads[i - 1].rows(0, n) : Tensor();
    Tensor* dx_ptr = i > 0 ? &dx : nullptr;
    if (i == last && loss.from_softmax_logits) {
      ctx.slot = slot(i);
      layers[i]->backward_from_logits(in, dpred, dx_ptr, ctx);
    } else {
      ctx.slot = slot(i);
      Tensor out = outputs[i].rows(0, n);
      Tensor dy = output_grads[i].rows(0, n);
      layers[i]->backward(in, out, dy, dx_ptr, ctx);
    }
  }
  {
    DROPNET_NVTX_RANGE("adam");
    backend->adam_update(weights.data(), grads.data(), adam_m.data(), adam_v.data(),
                         static_cast<std::size_t>(weights.size()), *update);
  }
  // Keras applies constraints after the gradients, on every step.
  DROPNET_NVTX_RANGE("max-norm");
  for (auto& [param, call] : constraints) backend->maxnorm(param->value.data(), call);
}

std::pair<double, double> Sequential::Impl::read_stats() const {
  float s[2];  // read once per evaluated batch: no vector
  backend->synchronize();  // the memory layer's copy does not wait for the model's stream (memory.hpp)
  backend::memory::copy(s, Device::CPU, stats.data(), stats.device(), sizeof(s));
  return {double(s[0]), double(s[1])};
}

kernels::AdamStep Sequential::Impl::adam_step(std::int64_t t) const {
  const Adam& a = options.optimizer;
  return kernels::adam_step(a.learning_rate, a.beta_1, a.beta_2, a.epsilon, static_cast<long long>(t));
}

std::vector<float> Sequential::Impl::epoch_alphas(std::int64_t steps, std::int64_t first_step,
                                                  std::uint64_t iteration) const {
  std::vector<float> alpha(static_cast<std::size_t>(steps), 0.0f);
  for (std::int64_t b = first_step; b < steps; ++b)
    alpha[std::size_t(b)] = adam_step(static_cast<std::int64_t>(iteration) + 1 + (b - first_step)).alpha;
  return alpha;
}

void Sequential::Impl::issue_fit_step(FitPlan& plan, std::int64_t batch_size, std::int64_t n) {
  DROPNET_NVTX_RANGE("step");
  backend::StepHeader* header = state().header();
  Tensor bx = batch_x.rows(0, n), by = batch_y.rows(0, n);
  {
    DROPNET_NVTX_RANGE("gather batch");
    backend->gather_batch(plan.data(), plan.order(), header, batch_size, bx, by);
  }
  RunContext ctx{*backend, true};
  forward(n, ctx, /*backward=*/true);
  // Adam's constants do not depend on the step but alpha, which the op reads from the epoch's table.
  const backend::AdamCall update(adam_step(1), plan.alpha_by_batch(), header);
  issue_loss(n, ctx, &update);
  backend->advance_step(header, state().slots(), {.optimizer_step = true, .batch_stats = stats.data(), .rows = n});
}

Logs Sequential::train_on_batch(const Tensor& x, const Tensor& y) {
  Impl& m = *impl_;
  m.require_compiled("train_on_batch");
  m.check_data(x, &y, "train_on_batch");
  const std::int64_t n = x.dim(0);
  if (n == 0) throw InvalidArgument("train_on_batch: empty batch");
  m.ensure_capacity(n);
  DROPNET_NVTX_RANGE("step (train_on_batch)");
  // train_on_batch reads its result back anyway; it reads the iteration (Adam's t - 1) first.
  const std::uint64_t iteration = m.state().read().header.iteration;
  const Tensor y2 = m.targets_2d(y);
  m.gather_range(x, &y2, 0, n);
  RunContext ctx{*m.backend, true};
  m.forward(n, ctx, /*backward=*/true);
  const backend::AdamCall update(m.adam_step(static_cast<std::int64_t>(iteration) + 1));
  m.issue_loss(n, ctx, &update);
  m.backend->advance_step(m.state().header(), m.state().slots(), {.optimizer_step = true});
  const auto [loss_sum, metric_sum] = m.read_stats();
  return m.logs_of(loss_sum, metric_sum, n);
}

const std::string& Sequential::name() const noexcept { return impl_->name; }
const Shape& Sequential::input_shape() const noexcept { return impl_->input_shape; }
std::size_t Sequential::layer_count() const noexcept { return impl_->layers.size(); }
Layer& Sequential::layer(std::size_t i) {
  if (i >= impl_->layers.size()) throw InvalidArgument(fmt::format("layer({}): the model has {} layers", i, impl_->layers.size()));
  return *impl_->layers[i];
}
const Layer& Sequential::layer(std::size_t i) const {
  if (i >= impl_->layers.size()) throw InvalidArgument(fmt::format("layer({}): the model has {} layers", i, impl_->layers.size()));
  return *impl_->layers[i];
}
std::int64_t Sequential::count_params() const {
  std::int64_t n = 0;
  for (const auto& l : impl_->layers) n += l->count_params();
  return n;
}
bool Sequential::compiled() const noexcept { return impl_->compiled; }
Device Sequential::device() const { impl_->require_compiled("device()"); return impl_->device; }
backend::Backend& ModelInternals::backend(const Sequential& model) {
  model.impl_->require_compiled("backend()");
  return *model.impl_->backend;
}
std::size_t ModelInternals::fused_blocks(const Sequential& model) { return model.impl_->blocks.size(); }
std::uint64_t Sequential::seed() const { impl_->require_compiled("seed()"); return impl_->seed; }
std::int64_t Sequential::iterations() const {
  if (!impl_->compiled) return 0;
  return static_cast<std::int64_t>(impl_->state().read().header.iteration);
}
const Adam& Sequential::optimizer() const { return impl_->options.optimizer; }
const std::string& Sequential::step_mode() const noexcept { return impl_->step_mode; }

}  // namespace dropnet
