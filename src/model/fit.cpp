// fit.cpp: keras.Model.fit, evaluate and predict for Sequential.
//
// What fit reports follows Keras: loss and the metric are batch-size-weighted running means over the epoch
// (dropout active, weights changing between batches); validation uses inference mode on the last
// validation_split of the arrays, split off before any shuffling.
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "kernels/philox.hpp"
#include "model/impl.hpp"
#include "model/progress.hpp"
#include "model/step_recorder.hpp"

namespace dropnet {
namespace {

// The order of the training rows in `epoch`: Fisher-Yates driven by Philox keyed by the model seed, so it
// depends on (seed, epoch) only, like Keras 3.16's default_rng(epoch), and a resumed run sees the same order.
std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, int epoch, bool shuffle) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t(0));
  if (!shuffle) return order;
  const std::uint64_t key = kernels::splitmix64(seed ^ 0x53485546464C45ull);  // "SHUFFLE"
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto b = kernels::philox_block(key, std::uint64_t(epoch), std::uint64_t(i));
    const std::uint64_t r = (std::uint64_t(b.w[1]) << 32) | b.w[0];
    std::swap(order[std::size_t(i)], order[std::size_t(r % std::uint64_t(i + 1))]);
  }
  return order;
}

// FNV-1a 64 over the little-endian bytes of the order's indices.
std::uint64_t order_hash(const std::vector<std::int64_t>& order) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const std::int64_t i : order)
    for (int b = 0; b < 8; ++b) h = (h ^ ((std::uint64_t(i) >> (8 * b)) & 0xffu)) * 0x100000001b3ull;
  return h;
}

}  // namespace

History Sequential::fit(const Tensor& x_in, const Tensor& y_in, const FitOptions& o) {
  Impl& m = *impl_;
  m.require_compiled("fit");
  m.check_data(x_in, &y_in, "fit");
  const Tensor y_2d = m.targets_2d(y_in);
  if (o.batch_size <= 0) throw InvalidArgument(fmt::format("fit: batch_size must be positive, got {}", o.batch_size));
  if (o.epochs < 0) throw InvalidArgument(fmt::format("fit: epochs must be >= 0, got {}", o.epochs));
  if (o.verbose < 0 || o.verbose > 2) throw InvalidArgument(fmt::format("fit: verbose must be 0, 1 or 2, got {}", o.verbose));
  if (!(o.validation_split >= 0.0 && o.validation_split < 1.0))
    throw InvalidArgument(fmt::format("fit: validation_split must be in [0, 1), got {}", o.validation_split));
  if (o.initial_epoch < 0 || o.initial_epoch > o.epochs)
    throw InvalidArgument(fmt::format("fit: initial_epoch {} must be in [0, epochs={}]", o.initial_epoch, o.epochs));

  const std::int64_t n = x_in.dim(0);
  const auto split_at = static_cast<std::int64_t>(std::floor(double(n) * (1.0 - o.validation_split)));
  if (o.validation_split > 0.0 && (split_at == 0 || split_at == n))
    throw InvalidArgument(fmt::format("Training data contains {} samples, which is not sufficient to split it "
                                      "into a validation and training set as specified by validation_split={}. "
                                      "Either provide more data, or a different value for validation_split.",
                                      n, o.validation_split));
  if (split_at == 0) throw InvalidArgument("fit: no training samples");
  // The training rows go to the model's device once (on a GPU as bytes and classes when that is exact),
  // so that every batch is gathered there; so do the validation rows, as floats. No copies on the CPU.
  const std::int64_t steps = (split_at + o.batch_size - 1) / o.batch_size;
  FitPlan plan(x_in, y_2d, split_at, steps, m.device);
  auto on_device = [&](const Tensor& t) { return t.device() == m.device ? t : t.to(m.device); };
  // The validation targets keep y's own shape (evaluate checks them as the caller's).
  const Tensor x_val = on_device(x_in.rows(split_at, n)), y_val = on_device(y_in.rows(split_at, n));
  m.ensure_capacity(std::min<std::int64_t>(o.batch_size, split_at));
  if (o.initial_step != 0) {  // resuming mid-epoch: the sums must be those of exactly initial_step batches
    const std::int64_t seen = std::min<std::int64_t>(o.initial_step * o.batch_size, split_at);
    if (o.initial_step < 0 || o.initial_step > steps || o.initial_epoch >= o.epochs)
      throw InvalidArgument(fmt::format("fit: initial_step {} must be in [0, {}] (the batches of an epoch) and "
                                        "initial_epoch {} below epochs {}", o.initial_step, steps,
                                        o.initial_epoch, o.epochs));
    if (o.initial_totals.seen != seen)
      throw InvalidArgument(fmt::format("fit: resuming after {} batches of {} records needs the totals of {} "
                                        "records, got {} (was the checkpoint written with another batch_size or "
                                        "another training set?)", o.initial_step, o.batch_size, seen,
                                        o.initial_totals.seen));
  }

  // Checkpoints read where training is from m.progress and the step state; epochs from initial_epoch on
  // are (re)done now.
  m.progress.epoch = o.initial_epoch;
  m.progress.mid_epoch = false;
  {
    History& h = m.progress.history;
    std::size_t keep = 0;
    while (keep < h.epoch.size() && h.epoch[keep] < o.initial_epoch) ++keep;
    h.epoch.resize(keep);
    for (auto& [k, v] : h.history) v.resize(std::min(v.size(), keep));
  }

  m.step_mode = "eager";
  StepRecorder recorder(m, std::min<std::int64_t>(o.batch_size, split_at),
                        m.device == Device::CUDA && m.options.cuda_graphs);
  History history;
  stop_training = false;
  for (Callback* cb : o.callbacks) cb->on_train_begin(*this);
  bool wants_batch_logs = false;
  for (Callback* cb : o.callbacks) wants_batch_logs = wants_batch_logs || cb->wants_batch_logs();
  Logs logs;
  for (int epoch = o.initial_epoch; epoch < o.epochs && !stop_training; ++epoch) {
    for (Callback* cb : o.callbacks) cb->on_epoch_begin(epoch);
    if (o.verbose && o.out) fmt::print(o.out, "Epoch {}/{}\n", epoch + 1, o.epochs);
    ProgressBar bar(o.out, o.verbose, steps);
    const std::vector<std::int64_t> order = epoch_order(split_at, m.seed, epoch, o.shuffle);
    // The epoch starts with the device idle: one read of the step state (the iteration, for Adam's alpha
    // table) and one write (the first batch and the sums carried in), both at the epoch's start.
    backend::StepSnapshot state = m.state().read();
    std::int64_t first_step = 0;
    state.header.batch = 0;
    state.header.loss_sum = state.header.correct = 0.0;
    state.header.seen = 0;
    if (epoch == o.initial_epoch && o.initial_step > 0) {
      first_step = o.initial_step;
      state.header.batch = first_step;
      state.header.loss_sum = o.initial_totals.loss_sum;
      state.header.correct = o.initial_totals.correct;
      state.header.seen = o.initial_totals.seen;
    }
    m.state().write(state);
    m.progress.mid_epoch = first_step > 0;
    auto running = [&m](const backend::StepHeader& h) { return m.logs_of(h.loss_sum, h.correct, h.seen); };
    logs = running(state.header);
    plan.start_epoch(order, m.epoch_alphas(steps, first_step, state.header.iteration));
    for (std::int64_t step = first_step; step < steps; ++step) {
      const std::int64_t begin = step * o.batch_size, end = std::min(split_at, begin + o.batch_size);
      recorder.run(plan, end - begin);
      m.progress.mid_epoch = true;
      // The host reads the running sums only at a progress tick: when the bar redraws, at the epoch's
      // last batch, or for a callback that asks for every batch's logs. Otherwise nothing waits for the
      // device, and callbacks get empty logs.
      Logs batch_logs;
      if (step + 1 == steps || bar.due(step + 1) || wants_batch_logs) {
        logs = running(m.state().read().header);
        batch_logs = logs;
        bar.update(step + 1, logs);
      }
      for (Callback* cb : o.callbacks) cb->on_batch_end(int(step), batch_logs);
    }
    if (split_at < n) {
      const Evaluation v = evaluate(x_val, y_val, o.batch_size, 0, nullptr);
      for (const auto& [k, value] : v.metrics) logs["val_" + k] = value;
    }
    bar.finish(logs);
    history.epoch.push_back(epoch);
    for (const auto& [k, v] : logs) history.history[k].push_back(v);
    history.order_fnv1a.push_back(order_hash(order));
    m.progress.epoch = epoch + 1;
    m.progress.mid_epoch = false;
    m.progress.history.epoch.push_back(epoch);
    for (const auto& [k, v] : logs) m.progress.history.history[k].push_back(v);
    for (Callback* cb : o.callbacks) cb->on_epoch_end(epoch, logs);
  }
  for (Callback* cb : o.callbacks) cb->on_train_end(logs);
  return history;
}

Evaluation Sequential::evaluate(const Tensor& x, const Tensor& y, int batch_size, int verbose, std::FILE* out) {
  Impl& m = *impl_;
  m.require_compiled("evaluate");
  m.check_data(x, &y, "evaluate");
  const Tensor y_2d = m.targets_2d(y);
  if (batch_size <= 0) throw InvalidArgument(fmt::format("evaluate: batch_size must be positive, got {}", batch_size));
  const std::int64_t n = x.dim(0);
  if (n == 0) throw InvalidArgument("evaluate: no samples");
  const std::int64_t steps = (n + batch_size - 1) / batch_size;
  m.ensure_capacity(std::min<std::int64_t>(batch_size, n));
  ProgressBar bar(out, verbose, steps);
  double loss_sum = 0, metric_sum = 0;
  std::int64_t seen = 0;
  for (std::int64_t step = 0; step < steps; ++step) {
    const std::int64_t begin = step * batch_size, end = std::min(n, begin + batch_size);
    m.gather_range(x, &y_2d, begin, end);
    RunContext ctx{*m.backend, false};
    m.forward(end - begin, ctx, /*backward=*/false);
    m.issue_loss(end - begin, ctx, nullptr);
    const auto [batch_loss, batch_metric] = m.read_stats();
    loss_sum += batch_loss;
    metric_sum += batch_metric;
    seen += end - begin;
    if (bar.due(step + 1)) bar.update(step + 1, m.logs_of(loss_sum, metric_sum, seen));  // only when shown
  }
  Evaluation result;
  result.metrics = m.logs_of(loss_sum, metric_sum, seen);
  bar.finish(result.metrics);
  result.loss = loss_sum / double(n);
  if (m.loss.metric_is_accuracy) result.accuracy = metric_sum / double(n);
  return result;
}

Tensor Sequential::predict(const Tensor& x, const PredictOptions& o) {
  Impl& m = *impl_;
  m.require_compiled("predict");
  m.check_data(x, nullptr, "predict");
  if (o.batch_size <= 0) throw InvalidArgument(fmt::format("predict: batch_size must be positive, got {}", o.batch_size));
  const std::int64_t n = x.dim(0);
  const Shape& out_shape = m.layers.back()->output_shape();
  Shape result_shape{n};
  result_shape.insert(result_shape.end(), out_shape.begin(), out_shape.end());
  Tensor result(result_shape, Device::CPU);
  m.ensure_capacity(std::max<std::int64_t>(1, std::min<std::int64_t>(o.batch_size, n)));
  for (std::int64_t begin = 0; begin < n; begin += o.batch_size) {
    const std::int64_t end = std::min(n, begin + o.batch_size);
    m.gather_range(x, nullptr, begin, end);
    RunContext ctx{*m.backend, o.dropout};
    ctx.monte_carlo = o.dropout;
    m.forward(end - begin, ctx, /*backward=*/false);
    // Monte Carlo dropout: every stochastic layer drew a mask, so their steps move on.
    if (o.dropout)
      m.backend->advance_step(m.state().header(), m.state().slots(), {.optimizer_step = false});
    Tensor dst = result.rows(begin, end);
    m.backend->synchronize();  // the copy does not wait for the model's stream (backend/memory.hpp)
    dst.copy_from(m.outputs.back().rows(0, end - begin));
  }
  return result;
}

}  // namespace dropnet
