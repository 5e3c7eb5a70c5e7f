// study_records.cpp: runs.jsonl, the study's durable record. Line 1 is the header
//   {"type": "header", "format": "dropnet-study/1", "settings": {...}, "provenance": {...}}
// (a shard's header adds "shard": {"index": I, "count": N}) and every further line one finished run {"type": "run", "id": ..., "status": "ok"|"failed", ...}.
// With a variants axis the settings add "variants", "baseline_variant" and "block_size", and each run "variant",
// "dropout_type", "schedule_epochs" and "schedule_steps"; without one both are exactly as before it existed.
// Numbers are written in the shortest form that reads back to the same double, so a report built from
// the parsed records equals one built from the records in memory.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <tuple>

#include <fmt/format.h>

#include "bench_util.hpp"
#include "programs/args.hpp"
#include "dropnet/errors.hpp"
#include "io/atomic_file.hpp"
#include "io/json.hpp"
#include "sweep.hpp"

namespace dropnet::bench {
namespace {

namespace json = io::json;

std::string num(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }
std::string str(const std::string& s) { return json::quote(s); }

template <typename T, typename F>
std::string list(const std::vector<T>& v, F f) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + f(v[i]);
  return s + "]";
}
std::string nums(const std::vector<double>& v) { return list(v, num); }

std::string prediction_json(const PredictionRecord& p) {
  return fmt::format(R"({{"passes":{},"accuracy":{},"nll":{},"brier":{},"ece":{},"entropy":{},)"
                     R"("mutual_information":{},"auroc_entropy":{},"bin_count":{},"bin_confidence":{},"bin_accuracy":{}}})",
                     p.passes, num(p.accuracy), num(p.nll), num(p.brier), num(p.ece), num(p.entropy),
                     num(p.mutual_information), num(p.auroc_entropy),
                     list(p.bin_count, [](std::int64_t c) { return std::to_string(c); }), nums(p.bin_confidence),
                     nums(p.bin_accuracy));
}

// ---- reading ----

struct Reader {
  const std::filesystem::path& path;
  std::size_t line;
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(fmt::format("{} line {}: {}", path.string(), line, what));
  }
  const json::Value& at(const json::Value& v, const char* key) const {
    const json::Value* m = v.find(key);
    if (m == nullptr) fail(fmt::format("missing \"{}\"", key));
    return *m;
  }
  double number(const json::Value& v) const {
    if (v.kind == json::Value::Kind::Null) return kNaN;
    if (v.kind != json::Value::Kind::Number) fail("expected a number");
    return std::strtod(v.text.c_str(), nullptr);
  }
  double number(const json::Value& v, const char* key) const { return number(at(v, key)); }
  std::string text(const json::Value& v, const char* key) const {
    const json::Value& m = at(v, key);
    if (m.kind != json::Value::Kind::String) fail(fmt::format("\"{}\" is not a string", key));
    return m.text;
  }
  std::vector<double> numbers(const json::Value& v, const char* key) const {
    std::vector<double> out;
    for (const json::Value& x : at(v, key).items) out.push_back(number(x));
    return out;
  }
  PredictionRecord prediction(const json::Value& v) const {
    PredictionRecord p;
    p.passes = int(number(v, "passes"));
    p.accuracy = number(v, "accuracy"), p.nll = number(v, "nll"), p.brier = number(v, "brier");
    p.ece = number(v, "ece"), p.entropy = number(v, "entropy");
    p.mutual_information = number(v, "mutual_information"), p.auroc_entropy = number(v, "auroc_entropy");
    for (double c : numbers(v, "bin_count")) p.bin_count.push_back(std::int64_t(c));
    p.bin_confidence = numbers(v, "bin_confidence");
    p.bin_accuracy = numbers(v, "bin_accuracy");
    return p;
  }
};

}  // namespace

std::string run_id(double rate, double max_norm, std::uint64_t seed) {
  return fmt::format("rate={},max_norm={},seed={}", rate, max_norm, seed);
}

std::string run_id(const std::string& variant, double rate, double max_norm, std::uint64_t seed) {
  return variant.empty() ? run_id(rate, max_norm, seed) : "variant=" + variant + "," + run_id(rate, max_norm, seed);
}

std::string settings_json(const SweepConfig& c) {
  std::vector<double> layers;
  for (std::size_t i : c.dropout_layers) layers.push_back(double(i + 1));
  // The variants axis only when given, so that the settings of a study without it are as they were.
  const std::string variants =
      c.variants.empty() ? std::string()
                         : fmt::format(R"("variants":{},"baseline_variant":{},"block_size":{},)",
                                       list(c.variants, [](const Variant& v) { return str(v.text()); }),
                                       str(c.baseline_variant), c.block_size);
  return fmt::format(
      R"({{"model":"seed",{}"rates":{},"max_norms":{},"vary_max_norm":{},"dropout_layers":{},"seeds":{},"seed":{},)"
      R"("epochs":{},"batch_size":{},"limit":{},"test_limit":{},"validation_split":{},)"
      R"("optimizer":{{"name":"adam","learning_rate":{}}},"device":{},"mc_samples":{},"baseline":{},"alpha":{},)"
      R"("data":{}}})",
      variants, nums(c.rates), nums(c.max_norms), c.vary_max_norm, nums(layers), c.seeds, c.seed, c.epochs, c.batch_size,
      c.limit < 0 ? "null" : std::to_string(c.limit), c.test_limit < 0 ? "null" : std::to_string(c.test_limit),
      num(c.validation_split), num(c.learning_rate), str(std::string(to_string(c.device))), c.mc_samples,
      num(c.baseline), num(c.alpha), str(c.data.string()));
}

std::string provenance_json(const Provenance& p, bool with_command) {
  return fmt::format(
      R"({{"dropnet_version":{},"git_commit":{},"data_source":{},"data_fnv1a":{},"train_samples":{},)"
      R"("val_samples":{},"test_samples":{},"device_description":{},"threads":{}{}}})",
      str(p.dropnet_version), str(p.git_commit), str(p.data_source), str(p.data_fnv1a), p.train_samples,
      p.val_samples, p.test_samples, str(p.device_description), p.threads,
      with_command ? ",\"command\":" + str(p.command) : "");
}

std::string header_line(const SweepConfig& c, const Provenance& p) {
  const std::string shard =
      c.shard.active() ? fmt::format(R"(,"shard":{{"index":{},"count":{}}})", c.shard.index, c.shard.count) : "";
  return fmt::format(R"({{"type":"header","format":"{}","settings":{},"provenance":{}{}}})", kStudyFormat,
                     settings_json(c), provenance_json(p, true), shard);
}

std::string ShardSpec::text() const { return fmt::format("{}/{}", index, count); }

std::vector<RunRecord> planned_runs(const SweepConfig& c) {
  std::vector<RunRecord> runs;
  const std::vector<std::string> variants = variant_axis(c);
  for (int s = 0; s < c.seeds; ++s)
    for (double mn : c.max_norms)
      for (const std::string& v : variants)
        for (double rate : c.rates)
          if (!shares_rate0(c, v, rate))
            runs.push_back({.id = run_id(v, rate, mn, c.seed + std::uint64_t(s)), .variant = v, .rate = rate,
                            .max_norm = mn, .seed_index = s, .seed = c.seed + std::uint64_t(s)});
  return runs;
}

namespace {
std::size_t slice_begin(std::size_t total, int count, int index) {  // index from 0 .. count
  return total * std::size_t(index) / std::size_t(count);
}
}  // namespace

std::vector<RunRecord> shard_runs(const SweepConfig& c, const ShardSpec& shard) {
  std::vector<RunRecord> all = planned_runs(c);
  if (!shard.active()) return all;
  return {all.begin() + std::ptrdiff_t(slice_begin(all.size(), shard.count, shard.index - 1)),
          all.begin() + std::ptrdiff_t(slice_begin(all.size(), shard.count, shard.index))};
}

int shard_of(std::size_t i, std::size_t total, int count) {
  int s = 1;
  while (s < count && i >= slice_begin(total, count, s)) ++s;
  return s;
}

ShardSpec parse_shard(const std::string& text, std::size_t total_runs) {
  const std::size_t slash = text.find('/');
  auto whole = [](std::string_view t, int& v) {
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return ec == std::errc() && end == t.data() + t.size() && !t.empty();
  };
  ShardSpec s;
  if (slash == std::string::npos || !whole(std::string_view(text).substr(0, slash), s.index) ||
      !whole(std::string_view(text).substr(slash + 1), s.count) || s.count < 1 || s.index < 1 || s.index > s.count)
    throw cli::UsageError(fmt::format("--shard {}: expected I/N with 1 <= I <= N (the I-th of N slices of the "
                                      "study's runs, e.g. 2/4)", text));
  if (std::size_t(s.count) > total_runs)
    throw cli::UsageError(fmt::format("--shard {}: the study has {} runs, so at most {} shards", text, total_runs,
                                      total_runs));
  return s;
}

std::string run_line(const RunRecord& r) {
  std::string epochs = list(r.epochs, [](const EpochRecord& e) {
    return fmt::format(R"({{"epoch":{},"loss":{},"accuracy":{},"val_loss":{},"val_accuracy":{},"seconds":{}}})",
                       e.epoch, num(e.loss), num(e.accuracy), num(e.val_loss), num(e.val_accuracy), num(e.seconds));
  });
  // The variant's fields only with a variants axis, so that the records of a study without it are as they were.
  std::string variant;
  if (!r.variant.empty()) {
    const Variant v = variant_from_text(r.variant);
    variant = fmt::format(R"("variant":{},"dropout_type":{},"schedule_epochs":{},"schedule_steps":{},)", str(r.variant),
                          str(cli::to_string(v.type)), str(to_string(v.schedule)),
                          r.schedule_steps.empty() ? "null" : str(r.schedule_steps));
  }
  return fmt::format(
      R"({{"type":"run","id":{},"status":"{}","failure":{},{}"rate":{},"max_norm":{},"seed_index":{},"seed":{},)"
      R"("init_weights_fnv1a":{},{}"best_epoch":{},"test_loss":{},"test_accuracy":{},"best_test_loss":{},)"
      R"("best_test_accuracy":{},"standard":{},"mc":{},"wall_seconds":{},"train_seconds":{},)"
      R"("images_per_second":{},"peak_memory_mib":{},"epochs":{}}})",
      str(r.id), r.ok ? "ok" : "failed", r.ok ? "null" : str(r.failure), variant, num(r.rate), num(r.max_norm), r.seed_index,
      r.seed, str(r.init_hash),
      r.order_hash.empty() ? std::string() : fmt::format(R"("batch_order_fnv1a":{},)", str(r.order_hash)),
      r.best_epoch, num(r.test_loss), num(r.test_accuracy), num(r.best_test_loss),
      num(r.best_test_accuracy), prediction_json(r.standard), prediction_json(r.mc), num(r.wall_seconds),
      num(r.train_seconds), num(r.images_per_second), num(r.peak_memory_mib), epochs);
}

RunsFile read_runs_file(const std::filesystem::path& path, const SweepConfig& defaults) {
  const std::string text = io::read_file(path, std::uint64_t(1) << 30);
  RunsFile f;
  f.config = defaults;
  std::size_t pos = 0, line = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    ++line;
    Reader rd{path, line};
    if (end == std::string::npos) rd.fail("the last line is incomplete (runs.jsonl is written atomically: not "
                                          "written by dropnet-bench?)");
    const std::string_view row(text.data() + pos, end - pos);
    pos = end + 1;
    json::Value v;
    try {
      v = json::parse(row);
    } catch (const json::ParseError& e) {
      rd.fail(e.what());
    }
    const std::string type = rd.text(v, "type");
    if (line == 1) {
      if (type != "header") rd.fail("the first line is not the study header");
      if (rd.text(v, "format") != kStudyFormat)
        rd.fail(fmt::format("format {} is not {}", rd.text(v, "format"), kStudyFormat));
      const json::Value& s = rd.at(v, "settings");
      SweepConfig& c = f.config;
      c.variants.clear();
      c.baseline_variant.clear();
      c.block_size = SweepConfig{}.block_size;
      if (const json::Value* vs = s.find("variants"); vs != nullptr) {
        for (const json::Value& item : vs->items) {
          if (item.kind != json::Value::Kind::String) rd.fail("\"variants\" holds a value that is not a string");
          try {
            c.variants.push_back(variant_from_text(item.text));
          } catch (const DataError& e) {
            rd.fail(e.what());
          }
        }
        if (c.variants.empty()) rd.fail("\"variants\" is empty");
        c.baseline_variant = rd.text(s, "baseline_variant");
        c.block_size = std::int64_t(rd.number(s, "block_size"));
      }
      c.rates = rd.numbers(s, "rates");
      c.max_norms = rd.numbers(s, "max_norms");
      c.vary_max_norm = rd.at(s, "vary_max_norm").boolean;
      c.dropout_layers.clear();
      std::string layers_text;
      for (double l : rd.numbers(s, "dropout_layers")) {
        c.dropout_layers.push_back(std::size_t(l) - 1);
        layers_text += (layers_text.empty() ? "" : ",") + fmt::format("{}", l);
      }
      c.dropout_layers_text = layers_text;
      c.seeds = int(rd.number(s, "seeds"));
      c.seed = std::uint64_t(rd.number(s, "seed"));
      c.epochs = int(rd.number(s, "epochs"));
      c.batch_size = int(rd.number(s, "batch_size"));
      const double limit = rd.number(s, "limit"), test_limit = rd.number(s, "test_limit");
      c.limit = std::isnan(limit) ? -1 : std::int64_t(limit);
      c.test_limit = std::isnan(test_limit) ? -1 : std::int64_t(test_limit);
      c.validation_split = rd.number(s, "validation_split");
      c.learning_rate = rd.number(rd.at(s, "optimizer"), "learning_rate");
      c.device = device_from_flag(rd.text(s, "device"));
      c.mc_samples = int(rd.number(s, "mc_samples"));
      c.baseline = rd.number(s, "baseline");
      c.alpha = rd.number(s, "alpha");
      c.data = rd.text(s, "data");
      f.settings = settings_json(c);
      const json::Value& p = rd.at(v, "provenance");
      Provenance& pr = f.provenance;
      pr.dropnet_version = rd.text(p, "dropnet_version"), pr.git_commit = rd.text(p, "git_commit");
      pr.data_source = rd.text(p, "data_source"), pr.data_fnv1a = rd.text(p, "data_fnv1a");
      pr.train_samples = std::int64_t(rd.number(p, "train_samples"));
      pr.val_samples = std::int64_t(rd.number(p, "val_samples"));
      pr.test_samples = std::int64_t(rd.number(p, "test_samples"));
      pr.device_description = rd.text(p, "device_description");
      pr.threads = int(rd.number(p, "threads"));
      if (const json::Value* cmd = p.find("command"); cmd != nullptr) pr.command = cmd->text;
      c.shard = {};
      if (const json::Value* sh = v.find("shard"); sh != nullptr) {
        c.shard = {int(rd.number(*sh, "index")), int(rd.number(*sh, "count"))};
        if (c.shard.count < 1 || c.shard.index < 1 || c.shard.index > c.shard.count)
          rd.fail(fmt::format("shard {} is not I/N with 1 <= I <= N", c.shard.text()));
      }
      continue;
    }
    if (type != "run") rd.fail(fmt::format("unknown record type \"{}\"", type));
    RunRecord r;
    r.id = rd.text(v, "id");
    r.ok = rd.text(v, "status") == "ok";
    if (!r.ok) r.failure = rd.text(v, "failure");
    if (v.find("variant") != nullptr) {
      r.variant = rd.text(v, "variant");
      if (const json::Value* st = v.find("schedule_steps"); st != nullptr && st->kind == json::Value::Kind::String)
        r.schedule_steps = st->text;
    }
    r.rate = rd.number(v, "rate"), r.max_norm = rd.number(v, "max_norm");
    r.seed_index = int(rd.number(v, "seed_index"));
    r.seed = std::uint64_t(rd.number(v, "seed"));
    r.init_hash = rd.text(v, "init_weights_fnv1a");
    if (v.find("batch_order_fnv1a") != nullptr) r.order_hash = rd.text(v, "batch_order_fnv1a");
    r.best_epoch = int(rd.number(v, "best_epoch"));
    r.test_loss = rd.number(v, "test_loss"), r.test_accuracy = rd.number(v, "test_accuracy");
    r.best_test_loss = rd.number(v, "best_test_loss"), r.best_test_accuracy = rd.number(v, "best_test_accuracy");
    r.standard = rd.prediction(rd.at(v, "standard"));
    r.mc = rd.prediction(rd.at(v, "mc"));
    r.wall_seconds = rd.number(v, "wall_seconds"), r.train_seconds = rd.number(v, "train_seconds");
    r.images_per_second = rd.number(v, "images_per_second"), r.peak_memory_mib = rd.number(v, "peak_memory_mib");
    for (const json::Value& e : rd.at(v, "epochs").items)
      r.epochs.push_back({int(rd.number(e, "epoch")), rd.number(e, "loss"), rd.number(e, "accuracy"),
                          rd.number(e, "val_loss"), rd.number(e, "val_accuracy"), rd.number(e, "seconds")});
    if (r.id != run_id(r.variant, r.rate, r.max_norm, r.seed)) rd.fail(fmt::format("run id {} does not match its fields", r.id));
    for (const RunRecord& other : f.runs)
      if (other.id == r.id) rd.fail(fmt::format("run {} is recorded twice", r.id));
    f.runs.push_back(std::move(r));
  }
  if (line == 0) throw DataError(fmt::format("{}: empty (no study header)", path.string()));
  sort_runs(f.config, f.runs);
  return f;
}

void write_runs_file(const std::filesystem::path& path, const SweepConfig& c, const Provenance& p,
                     const std::vector<RunRecord>& runs) {
  std::string text = header_line(c, p) + "\n";
  for (const RunRecord& r : runs) text += run_line(r) + "\n";
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(text.data());
  io::write_file_atomic(path, {std::span<const std::uint8_t>(bytes, text.size())});
}

std::optional<std::string> pairing_conflict(const RunRecord& a, const RunRecord& b) {
  if (a.seed != b.seed || !a.ok || !b.ok) return std::nullopt;
  if (same_architecture(a.variant, b.variant) && a.init_hash != b.init_hash)
    return fmt::format("runs {} and {} start from different initial weights (seed {}: {} against {})", a.id, b.id,
                       a.seed, a.init_hash, b.init_hash);
  if (!a.order_hash.empty() && !b.order_hash.empty() && a.order_hash != b.order_hash)
    return fmt::format("runs {} and {} trained on different batch orders (seed {}: {} against {})", a.id, b.id,
                       a.seed, a.order_hash, b.order_hash);
  return std::nullopt;
}

void sort_runs(const SweepConfig& c, std::vector<RunRecord>& runs) {
  auto index = [](const std::vector<double>& v, double x) {
    return std::size_t(std::find(v.begin(), v.end(), x) - v.begin());
  };
  const std::vector<std::string> variants = variant_axis(c);
  auto variant_index = [&](const std::string& v) {
    return std::size_t(std::find(variants.begin(), variants.end(), v) - variants.begin());
  };
  std::stable_sort(runs.begin(), runs.end(), [&](const RunRecord& a, const RunRecord& b) {
    const auto ka = std::tuple(index(c.max_norms, a.max_norm), variant_index(a.variant), index(c.rates, a.rate), a.seed);
    const auto kb = std::tuple(index(c.max_norms, b.max_norm), variant_index(b.variant), index(c.rates, b.rate), b.seed);
    return ka < kb;
  });
}

}  // namespace dropnet::bench
