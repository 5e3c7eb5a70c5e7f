// checkpoint.cpp: weights and resumable checkpoints as safetensors (see dropnet/checkpoint.hpp), and the
// ModelCheckpoint, CSVLogger and TerminateOnNaN callbacks.
//
// Every load works in two phases: first every tensor the model needs is found and checked (name, dtype,
// shape, seeds), collecting every problem into one DataError; only then is anything copied, so a bad file
// never leaves a half-loaded model.
#include "dropnet/checkpoint.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "dropnet/version.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint_detail.hpp"
#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "layers/layer_util.hpp"
#include "model/impl.hpp"

namespace dropnet {

// The friend of Sequential that reaches its private state (model.hpp).
struct CheckpointAccess {
  using Impl = Sequential::Impl;
  static Impl& impl(Sequential& s) { return *s.impl_; }
  static const Impl& impl(const Sequential& s) { return *s.impl_; }
};
using ModelImpl = CheckpointAccess::Impl;

namespace json = io::json;

namespace {

namespace fs = std::filesystem;
using io::DType;
using io::SafetensorsFile;
using io::SafetensorsWriter;

constexpr const char* kFormatKey = "dropnet.format";
constexpr const char* kVersionKey = "dropnet.format_version";
constexpr const char* kFormatVersion = "1";
constexpr const char* kSeedGeneratorSuffix = "/seed_generator_state";
// A stochastic layer's rate schedule as the step state holds it (kernels/rate_schedule.hpp): F64
// [from, to, begin, end] (steps are exact in a double up to 2^53).
constexpr const char* kRateScheduleSuffix = "/rate_schedule";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One weight of the model: its Keras name, the Param, and (trainable weights only) its offset in the flat
// buffers of the weights, gradients and Adam moments. Non-trainable weights (BatchNormalization's moving
// statistics) are saved and loaded as weights under their Keras names, with no Adam moments.
struct Weight {
  std::string name;
  const Param* param;
  std::int64_t offset;  // -1 for a non-trainable weight
  std::int64_t size;
};

std::vector<Weight> model_weights(const ModelImpl& m) {
  std::vector<Weight> out;
  for (const auto& layer : m.layers)
    for (const Param& p : layer->params())
      out.push_back({layer->name() + "/" + p.name, &p,
                     p.trainable ? static_cast<std::int64_t>(p.value.data() - m.weights.data()) : -1,
                     p.value.size()});
  return out;
}

// A layer with a seed generator (the dropout family), its slot of the step state and its rate schedule.
struct Generator {
  const Layer* layer;
  std::uint64_t seed;
  std::size_t slot;
  std::array<double, 4> schedule;  // from, to, begin, end
};

std::vector<Generator> generators(const ModelImpl& m) {
  std::vector<Generator> out;
  for (std::size_t i = 0; i < m.layers.size(); ++i)
    if (const auto gen = m.layers[i]->seed_generator()) {
      const kernels::RateSchedule r = layer_util::rate_schedule(gen->rate, gen->schedule);
      out.push_back({m.layers[i].get(), gen->seed, static_cast<std::size_t>(m.slot_of[i]),
                     {double(r.from), double(r.to), double(r.begin), double(r.end)}});
    }
  return out;
}

std::string schedule_text(const std::array<double, 4>& s) {
  return s[0] == s[1] ? fmt::format("constant {}", s[0])
                      : fmt::format("{} until step {}, {} from step {}", s[0], s[2], s[1], s[3]);
}

const ModelImpl& compiled(const Sequential& model, const char* what) {
  const ModelImpl& m = CheckpointAccess::impl(model);
  m.require_compiled(what);
  return m;
}

std::string layer_list(const ModelImpl& m) {
  std::string s;
  for (const auto& l : m.layers) s += (s.empty() ? "" : ",") + l->name() + ":" + l->type();
  return s;
}

void check_user_metadata(const std::map<std::string, std::string>& metadata) {
  for (const auto& [k, v] : metadata)
    if (k.rfind("dropnet.", 0) == 0)
      throw InvalidArgument(fmt::format("checkpoint metadata key '{}': keys starting with 'dropnet.' are reserved", k));
}

// The model's stream is idle: on a GPU the memory layer's copies below do not wait for it (backend/memory.hpp),
// and a callback may save or load in the middle of fit, with steps still queued.
void wait_for_device(const ModelImpl& m) { m.backend->synchronize(); }

void add_weights(SafetensorsWriter& w, const ModelImpl& m) {
  for (const Weight& wt : model_weights(m)) {
    const std::vector<float> v = wt.param->value.to_vector();
    w.add_f32(wt.name, wt.param->shape, v);
  }
}

void add_i64_scalar(SafetensorsWriter& w, const std::string& name, std::int64_t v) { w.add_i64(name, {}, std::span(&v, 1)); }

void set_common_metadata(SafetensorsWriter& w, const ModelImpl& m, const char* format,
                         const std::map<std::string, std::string>& user) {
  check_user_metadata(user);
  for (const auto& [k, v] : user) w.set_metadata(k, v);
  w.set_metadata(kFormatKey, format);
  w.set_metadata(kVersionKey, kFormatVersion);
  w.set_metadata("dropnet.version", DROPNET_VERSION_STRING);
  w.set_metadata("dropnet.model", m.name);
  w.set_metadata("dropnet.layers", layer_list(m));
  w.set_metadata("dropnet.seed", std::to_string(m.seed));
}

// Collects the problems of one load, then throws them together.
class Problems {
 public:
  explicit Problems(const SafetensorsFile& f) : file_(f) {}
  void add(std::string p) { list_.push_back(std::move(p)); }
  void throw_if_any(const char* what) const {
    if (list_.empty()) return;
    std::string msg = fmt::format("{}: cannot {}: ", file_.what(), what);
    const std::size_t shown = std::min<std::size_t>(list_.size(), 12);
    for (std::size_t i = 0; i < shown; ++i) msg += (i ? "; " : "") + list_[i];
    if (shown < list_.size()) msg += fmt::format("; and {} more", list_.size() - shown);
    throw DataError(msg);
  }
  // Checks that `name` exists with `dtype` and `shape`; returns it or nullptr (with a problem recorded).
  const io::TensorInfo* expect(const std::string& name, DType dtype, const Shape& shape, const char* role) {
    const io::TensorInfo* t = file_.find(name);
    if (t == nullptr) {
      add(fmt::format("{} '{}' {} is missing", role, name, to_string(shape)));
      return nullptr;
    }
    if (t->dtype != dtype) {
      add(fmt::format("{} '{}' has dtype {}, expected {}", role, name, io::dtype_name(t->dtype), io::dtype_name(dtype)));
      return nullptr;
    }
    if (t->shape != shape) {
      add(fmt::format("{} '{}' has shape {} in the file but {} in the model", role, name, to_string(t->shape),
                      to_string(shape)));
      return nullptr;
    }
    return t;
  }

 private:
  const SafetensorsFile& file_;
  std::vector<std::string> list_;
};

bool is_weight_name(const std::string& name) {
  if (name.rfind("optimizer/", 0) == 0 || name.rfind("training/", 0) == 0 || name.rfind("history/", 0) == 0)
    return false;
  return !ends_with(name, kSeedGeneratorSuffix) && !ends_with(name, kRateScheduleSuffix);
}

// Phase 1 of a weights load: every model weight present and matching, no stray weight in the file.
std::vector<std::pair<const Weight*, const io::TensorInfo*>> check_weights(const std::vector<Weight>& weights,
                                                                           const SafetensorsFile& f, Problems& problems) {
  std::vector<std::pair<const Weight*, const io::TensorInfo*>> found;
  std::set<std::string> names;
  for (const Weight& w : weights) {
    names.insert(w.name);
    if (const io::TensorInfo* t = problems.expect(w.name, DType::F32, w.param->shape, "weight")) found.push_back({&w, t});
  }
  for (const io::TensorInfo& t : f.tensors())
    if (is_weight_name(t.name) && !names.count(t.name))
      problems.add(fmt::format("the file has a weight '{}' {} that the model lacks", t.name, to_string(t.shape)));
  return found;
}

std::vector<float> floats(const SafetensorsFile& f, const io::TensorInfo& t) {
  const auto bytes = f.bytes(t);
  std::vector<float> v(bytes.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

void copy_into(Tensor dst, const Shape& shape, std::vector<float> values) {
  dst.copy_from(Tensor::from_vector(shape, std::move(values)));
}

std::string format_of(const SafetensorsFile& f) {
  const auto it = f.metadata().find(kFormatKey);
  return it == f.metadata().end() ? std::string() : it->second;
}

void require_checkpoint(const SafetensorsFile& f) {
  const std::string format = format_of(f);
  if (format == "weights")
    throw DataError(fmt::format("{}: is a weights file (dropnet.format \"weights\"), not a resumable checkpoint: it has "
                                "no optimizer state; load it with load_weights (dropnet evaluate/predict --weights)",
                                f.what()));
  if (format != "checkpoint")
    throw DataError(fmt::format("{}: is not a dropnet checkpoint (its metadata has no dropnet.format \"checkpoint\")",
                                f.what()));
  const auto v = f.metadata().find(kVersionKey);
  if (v == f.metadata().end() || v->second != kFormatVersion)
    throw DataError(fmt::format("{}: checkpoint format version {} is not supported; this dropnet reads version {}",
                                f.what(), v == f.metadata().end() ? "(none)" : json::quote(v->second), kFormatVersion));
}

std::int64_t scalar_i64(const SafetensorsFile& f, const char* name) {
  const Shape scalar{};
  return f.i64(name, &scalar)[0];
}

}  // namespace

// --- reading the state ---------------------------------------------------------------------------------

TrainingState detail::training_state_from(const SafetensorsFile& f) {
  require_checkpoint(f);
  TrainingState s;
  const std::int64_t epoch = scalar_i64(f, "training/epoch");
  if (epoch < 0 || epoch > 1'000'000'000) throw DataError(fmt::format("{}: training/epoch is {}, out of range", f.what(), epoch));
  s.epoch = static_cast<int>(epoch);
  s.step = scalar_i64(f, "training/step");
  if (s.step < 0) throw DataError(fmt::format("{}: training/step is {}, expected >= 0", f.what(), s.step));
  const Shape two{2};
  const std::vector<double> totals = f.f64("training/totals", &two);
  s.totals.loss_sum = totals[0];
  s.totals.correct = totals[1];
  s.totals.seen = scalar_i64(f, "training/seen");
  if (s.totals.seen < 0) throw DataError(fmt::format("{}: training/seen is {}, expected >= 0", f.what(), s.totals.seen));
  s.seed = std::bit_cast<std::uint64_t>(scalar_i64(f, "training/seed"));
  s.iterations = scalar_i64(f, "optimizer/iterations");
  if (s.iterations < 0) throw DataError(fmt::format("{}: optimizer/iterations is {}, expected >= 0", f.what(), s.iterations));

  const io::TensorInfo& epochs = f.require("history/epoch", DType::I64, nullptr);
  if (epochs.shape.size() != 1)
    throw DataError(fmt::format("{}: history/epoch has shape {}, expected one dimension", f.what(), to_string(epochs.shape)));
  for (std::int64_t e : f.i64("history/epoch")) {
    if (e < 0 || e >= s.epoch)
      throw DataError(fmt::format("{}: history/epoch holds epoch {}, outside [0, {})", f.what(), e, s.epoch));
    s.history.epoch.push_back(static_cast<int>(e));
  }
  for (const io::TensorInfo& t : f.tensors()) {
    if (t.name.rfind("history/", 0) != 0 || t.name == "history/epoch") continue;
    s.history.history[t.name.substr(8)] = f.f64(t.name, &epochs.shape);
  }
  for (const auto& [k, v] : f.metadata())
    if (k.rfind("dropnet.", 0) != 0) s.metadata[k] = v;
  return s;
}

TrainingState read_training_state(const fs::path& path) {
  return detail::training_state_from(SafetensorsFile::read(path));
}

std::map<std::string, std::string> read_metadata(const fs::path& path) { return SafetensorsFile::read(path).metadata(); }

TrainingState training_state(const Sequential& model) {
  const ModelImpl& m = CheckpointAccess::impl(model);
  TrainingState s;
  s.epoch = m.progress.epoch;
  s.history = m.progress.history;
  s.seed = m.seed;
  if (m.compiled) {  // one read of the step state
    const backend::StepHeader h = m.state().read().header;
    s.iterations = static_cast<std::int64_t>(h.iteration);
    if (m.progress.mid_epoch) {
      s.step = h.batch;
      s.totals = {h.loss_sum, h.correct, h.seen};
    }
  }
  return s;
}

void resume_from(FitOptions& options, const TrainingState& state) {
  options.initial_epoch = state.epoch;
  options.initial_step = state.step;
  options.initial_totals = state.totals;
}

// --- weights -------------------------------------------------------------------------------------------

void save_weights(const Sequential& model, const fs::path& path, const std::map<std::string, std::string>& metadata) {
  const ModelImpl& m = compiled(model, "save_weights");
  SafetensorsWriter w;
  set_common_metadata(w, m, "weights", metadata);
  wait_for_device(m);
  add_weights(w, m);
  w.write(path);
}

void detail::load_weights_from(Sequential& model, const SafetensorsFile& f) {
  ModelImpl& m = CheckpointAccess::impl(model);
  m.require_compiled("load_weights");
  const std::vector<Weight> weights = model_weights(m);
  Problems problems(f);
  const auto found = check_weights(weights, f, problems);
  problems.throw_if_any("load its weights into the model");
  wait_for_device(m);
  for (const auto& [w, t] : found) copy_into(w->param->value, w->param->shape, floats(f, *t));
}

void load_weights(Sequential& model, const fs::path& path) {
  CheckpointAccess::impl(model).require_compiled("load_weights");
  detail::load_weights_from(model, SafetensorsFile::read(path));
}

// --- checkpoints ---------------------------------------------------------------------------------------

void save_checkpoint(const Sequential& model, const fs::path& path, const TrainingState& state) {
  const ModelImpl& m = compiled(model, "save_checkpoint");
  if (state.epoch < 0 || state.step < 0 || state.totals.seen < 0)
    throw InvalidArgument(fmt::format("save_checkpoint: epoch {}, step {} and seen {} must be >= 0", state.epoch,
                                      state.step, state.totals.seen));
  SafetensorsWriter w;
  set_common_metadata(w, m, "checkpoint", state.metadata);
  wait_for_device(m);
  add_weights(w, m);
  for (const Weight& wt : model_weights(m)) {
    if (!wt.param->trainable) continue;
    const std::vector<float> mv = m.adam_m.rows(wt.offset, wt.offset + wt.size).to_vector();
    const std::vector<float> vv = m.adam_v.rows(wt.offset, wt.offset + wt.size).to_vector();
    w.add_f32("optimizer/" + wt.name + "/m", wt.param->shape, mv);
    w.add_f32("optimizer/" + wt.name + "/v", wt.param->shape, vv);
  }
  const backend::StepSnapshot steps = m.state().read();
  add_i64_scalar(w, "optimizer/iterations", static_cast<std::int64_t>(steps.header.iteration));
  for (const Generator& g : generators(m)) {
    const std::int64_t gen[2] = {std::bit_cast<std::int64_t>(g.seed), static_cast<std::int64_t>(steps.slots[g.slot].step)};
    w.add_i64(g.layer->name() + kSeedGeneratorSuffix, {2}, gen);
    w.add_f64(g.layer->name() + kRateScheduleSuffix, {4}, std::span<const double>(g.schedule));
  }
  add_i64_scalar(w, "training/epoch", state.epoch);
  add_i64_scalar(w, "training/step", state.step);
  const double totals[2] = {state.totals.loss_sum, state.totals.correct};
  w.add_f64("training/totals", {2}, totals);
  add_i64_scalar(w, "training/seen", state.totals.seen);
  add_i64_scalar(w, "training/seed", std::bit_cast<std::int64_t>(m.seed));
  const std::int64_t n = static_cast<std::int64_t>(state.history.epoch.size());
  const std::vector<std::int64_t> epochs(state.history.epoch.begin(), state.history.epoch.end());
  w.add_i64("history/epoch", {n}, epochs);
  for (const auto& [key, values] : state.history.history) {
    if (static_cast<std::int64_t>(values.size()) != n)
      throw InvalidArgument(fmt::format("save_checkpoint: history '{}' has {} values for {} epochs", key,
                                        values.size(), n));
    w.add_f64("history/" + key, {n}, values);
  }
  w.write(path);
}

void save_checkpoint(const Sequential& model, const fs::path& path) {
  compiled(model, "save_checkpoint");
  save_checkpoint(model, path, training_state(model));
}

TrainingState detail::load_checkpoint_from(Sequential& model, const SafetensorsFile& f) {
  ModelImpl& m = CheckpointAccess::impl(model);
  m.require_compiled("load_checkpoint");
  TrainingState state = training_state_from(f);
  Problems problems(f);
  if (state.seed != m.seed)
    problems.add(fmt::format("it was trained with seed {} but the model was compiled with seed {} (compile with "
                             "that seed to resume: the seed drives the dropout masks and the shuffling)",
                             state.seed, m.seed));
  const std::vector<Weight> weights = model_weights(m);
  const auto found = check_weights(weights, f, problems);
  std::vector<std::pair<const Weight*, std::pair<const io::TensorInfo*, const io::TensorInfo*>>> moments;
  for (const Weight& w : weights) {
    if (!w.param->trainable) continue;
    const auto* mt = problems.expect("optimizer/" + w.name + "/m", DType::F32, w.param->shape, "Adam moment");
    const auto* vt = problems.expect("optimizer/" + w.name + "/v", DType::F32, w.param->shape, "Adam moment");
    if (mt && vt) moments.push_back({&w, {mt, vt}});
  }
  std::vector<std::pair<std::size_t, std::int64_t>> steps;  // slot, step
  std::set<std::string> dropout_names;
  for (const Generator& g : generators(m)) {
    const std::string name = g.layer->name() + kSeedGeneratorSuffix;
    dropout_names.insert(name);
    if (const auto* t = problems.expect(name, DType::I64, {2}, "dropout state")) {
      std::int64_t gen[2];
      std::memcpy(gen, f.bytes(*t).data(), sizeof gen);
      if (std::bit_cast<std::uint64_t>(gen[0]) != g.seed)
        problems.add(fmt::format("dropout layer '{}' has seed {} in the file but {} in the model", g.layer->name(),
                                 std::bit_cast<std::uint64_t>(gen[0]), g.seed));
      else if (gen[1] < 0)
        problems.add(fmt::format("dropout layer '{}' has a negative step {}", g.layer->name(), gen[1]));
      else
        steps.push_back({g.slot, gen[1]});
    }
    // The schedule must be the model's: a resumed run continues it. Files from before schedules existed
    // have none, which is right for a constant rate only.
    const std::string schedule_name = g.layer->name() + kRateScheduleSuffix;
    dropout_names.insert(schedule_name);
    if (f.find(schedule_name) == nullptr) {
      if (g.schedule[0] != g.schedule[1])
        problems.add(fmt::format("dropout layer '{}' has a rate schedule ({}) but the file has none",
                                 g.layer->name(), schedule_text(g.schedule)));
    } else if (const auto* t = problems.expect(schedule_name, DType::F64, {4}, "rate schedule")) {
      std::array<double, 4> saved;
      std::memcpy(saved.data(), f.bytes(*t).data(), sizeof saved);
      if (saved != g.schedule)
        problems.add(fmt::format("dropout layer '{}' was trained with the rate schedule {} but the model has {}",
                                 g.layer->name(), schedule_text(saved), schedule_text(g.schedule)));
    }
  }
  for (const io::TensorInfo& t : f.tensors()) {
    const std::string& n = t.name;
    if (n.size() > std::strlen(kSeedGeneratorSuffix) && !is_weight_name(n) && n.rfind("optimizer/", 0) != 0 &&
        n.rfind("training/", 0) != 0 && n.rfind("history/", 0) != 0 && !dropout_names.count(n))
      problems.add(fmt::format("the file has a dropout state '{}' for a layer the model lacks", n));
  }
  problems.throw_if_any("resume the model from it");

  // Phase 2: nothing can fail from here on but a device copy.
  wait_for_device(m);
  for (const auto& [w, t] : found) copy_into(w->param->value, w->param->shape, floats(f, *t));
  for (const auto& [w, mv] : moments) {
    copy_into(m.adam_m.rows(w->offset, w->offset + w->size), {w->size}, floats(f, *mv.first));
    copy_into(m.adam_v.rows(w->offset, w->offset + w->size), {w->size}, floats(f, *mv.second));
  }
  backend::StepSnapshot restored = m.state().read();
  for (const auto& [slot, step] : steps) restored.slots[slot].step = static_cast<std::uint64_t>(step);
  restored.header.iteration = static_cast<std::uint64_t>(state.iterations);
  restored.header.batch = state.step;
  restored.header.loss_sum = state.totals.loss_sum;
  restored.header.correct = state.totals.correct;
  restored.header.seen = state.totals.seen;
  m.state().write(restored);
  m.progress.epoch = state.epoch;
  m.progress.mid_epoch = state.step > 0;
  m.progress.history = state.history;
  return state;
}

TrainingState load_checkpoint(Sequential& model, const fs::path& path) {
  CheckpointAccess::impl(model).require_compiled("load_checkpoint");
  return detail::load_checkpoint_from(model, SafetensorsFile::read(path));
}

// --- callbacks -----------------------------------------------------------------------------------------

void TerminateOnNaN::on_batch_end(int batch, const Logs& logs) {
  const auto it = logs.find("loss");
  if (it == logs.end() || std::isfinite(it->second)) return;
  throw TrainingDiverged(fmt::format("training diverged: the loss is {} at epoch {}, batch {} (counted from 1); "
                                     "stopped by TerminateOnNaN",
                                     std::isnan(it->second) ? "nan" : (it->second > 0 ? "inf" : "-inf"), epoch_ + 1,
                                     batch + 1),
                         epoch_, batch);
}

ModelCheckpoint::ModelCheckpoint(fs::path path, ModelCheckpointOptions options)
    : path_(std::move(path)), options_(std::move(options)), best_(options_.initial_value_threshold) {
  if (path_.empty()) throw InvalidArgument("ModelCheckpoint: empty path");
  check_user_metadata(options_.metadata);
}

void ModelCheckpoint::on_epoch_end(int epoch, const Logs& logs) {
  if (model_ == nullptr) throw InvalidArgument("ModelCheckpoint: on_epoch_end before on_train_begin");
  if (options_.save_best_only) {
    const auto it = logs.find(options_.monitor);
    if (it == logs.end()) {
      skipped_ = true;  // Keras: "Can save best model only with val_loss available, skipping."
      return;
    }
    if (!std::isfinite(it->second) || (best_ && !(it->second < *best_))) return;
    best_ = it->second;
  }
  if (options_.save_weights_only) {
    save_weights(*model_, path_, options_.metadata);
  } else {
    TrainingState s = training_state(*model_);
    s.metadata = options_.metadata;
    save_checkpoint(*model_, path_, s);
  }
  last_saved_ = epoch;
}

namespace {
std::string csv_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);  // shortest round-trip form, as Python's repr
}
}  // namespace

CSVLogger::CSVLogger(fs::path path, bool append, char separator)
    : path_(std::move(path)), append_(append), separator_(separator) {
  if (path_.empty()) throw InvalidArgument("CSVLogger: empty path");
}

CSVLogger::~CSVLogger() {
  if (file_ != nullptr) std::fclose(file_);
}

void CSVLogger::on_train_begin(Sequential& model) {
  if (file_ != nullptr) std::fclose(file_), file_ = nullptr;
  keys_.clear();
  if (append_) {
    // Rewrite the file to hold exactly the history the model resumes from.
    const History h = training_state(model).history;
    std::string text;
    if (!h.epoch.empty()) {
      for (const auto& [k, v] : h.history) keys_.push_back(k);
      text = "epoch";
      for (const auto& k : keys_) text += separator_ + k;
      text += '\n';
      for (std::size_t i = 0; i < h.epoch.size(); ++i) {
        text += std::to_string(h.epoch[i]);
        for (const auto& k : keys_) {
          const auto& v = h.history.at(k);
          text += separator_ + (i < v.size() ? csv_number(v[i]) : std::string("NA"));
        }
        text += '\n';
      }
    }
    io::write_file_atomic(path_, {std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())});
  }
  file_ = std::fopen(path_.c_str(), append_ ? "ab" : "wb");
  if (file_ == nullptr) throw IoError(fmt::format("{}: cannot open the CSV log: {}", path_.string(), std::strerror(errno)));
}

void CSVLogger::write_row(int epoch, const Logs& logs) {
  std::string text;
  if (keys_.empty()) {
    for (const auto& [k, v] : logs) keys_.push_back(k);  // std::map: sorted, as Keras sorts them
    text = "epoch";
    for (const auto& k : keys_) text += separator_ + k;
    text += '\n';
  }
  text += std::to_string(epoch);
  for (const auto& k : keys_) {
    const auto it = logs.find(k);
    text += separator_ + (it == logs.end() ? std::string("NA") : csv_number(it->second));
  }
  text += '\n';
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0)
    throw IoError(fmt::format("{}: writing the CSV log failed: {}", path_.string(), std::strerror(errno)));
}

void CSVLogger::on_epoch_end(int epoch, const Logs& logs) {
  if (file_ == nullptr) throw InvalidArgument("CSVLogger: on_epoch_end before on_train_begin");
  write_row(epoch, logs);
}

void CSVLogger::on_train_end(const Logs&) {
  if (file_ != nullptr) std::fclose(file_), file_ = nullptr;
}

}  // namespace dropnet
