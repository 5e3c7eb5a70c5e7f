// sweep.cpp: `dropnet-bench sweep`: flag parsing, up-front checks and the training loop.
//
// Every check that can fail (flags, the output directory, the data, the model configuration) runs before
// the first run trains, so a typo never costs a half-finished sweep.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <mutex>
#include <optional>
#include <cstdlib>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "bench_util.hpp"
#include "programs/args.hpp"
#include "programs/seed_model.hpp"
#include "dropnet/dropnet.hpp"
#include "backend/cpu/parallel.hpp"
#include "dropnet/checkpoint.hpp"
#include "git_commit.hpp"  // generated at build time (cmake/git_commit.cmake)
#include "dropnet/version.hpp"
#include "metrics/calibration.hpp"
#include "sweep.hpp"

namespace dropnet::bench {

const std::vector<cli::FlagSpec>& sweep_flags() {
  static const std::vector<cli::FlagSpec> specs = {
      {"rates", "R1,R2,...", "0,0.1,0.25,0.5,0.7", "Dropout rates to compare, each in [0, 1]."},
      {"variants", "V1,V2,...", "",
       fmt::format("Also vary the dropout type and schedule: the study becomes variants x rates, paired by seed like "
                   "the rates. A variant is TYPE, TYPE+bn, TYPE@SCHEDULE or TYPE+bn@SCHEDULE; TYPE is {} (the layer "
                   "in the seed model's Dropout positions); +bn adds BatchNormalization after each Conv2D (Conv2D "
                   "without activation and bias -> BatchNormalization -> ReLU; dropnet train --batch-norm), a model "
                   "with other initial weights, paired with the others by seed and batch order; SCHEDULE, in epochs, is constant (the default), early:E (the rate for the first E "
                   "epochs, then 0), late:E (0 for the first E epochs, then the rate) or linear:START:E (from START "
                   "to the rate over the first E epochs), E from 1 to --epochs. The sweep turns epochs into optimizer "
                   "steps: E x the batches of an epoch, ceil(training records after the validation split / "
                   "--batch-size). E.g. dropout,spatial,gaussian,dropblock,dropout@early:3,dropout@late:3. "
                   "Rate 0 is no dropout whatever the variant (but for linear:START:E with START > 0), so it is "
                   "trained once per seed (and per architecture: with or without +bn), under the first such "
                   "variant, and stands for every such variant's rate 0. "
                   "Default: no variants axis (plain Dropout, constant rate).", cli::kDropoutTypeNames)},
      {"baseline-variant", "V", "", "With --variants: the variant the others are compared with (with --baseline's "
                                    "rate). Default: the first of --variants."},
      {"block-size", "N", "3", "DropBlock's block size (with a dropblock variant; the second block's maps are 6x6)."},
      {"dropout-layers", "all|I,J", "all",
       fmt::format("Which Dropout layers of the seed model take the rate, counted from 1 (the model has {}); "
                   "the others get rate 0.", cli::kSeedDropoutLayers)},
      {"max-norms", "M1,M2,...", "",
       "Also vary the max-norm: the sweep becomes rates x max-norms (0 means no constraint). "
       "Overrides --max-norm."},
      {"seeds", "N", "5", "Runs per rate with model seeds seed, seed+1, ...; for one seed every rate starts from "
                          "the same weights and sees the same batches, so rates are compared paired by seed."},
      {"repeats", "N", "", "The same as --seeds (its old name)."},
      {"baseline", "RATE", "", "The rate the others are compared with (paired t-test, Wilcoxon; with --variants, "
                               "every other variant and rate is compared with --baseline-variant at this rate). "
                               "Default: the first of --rates."},
      {"alpha", "A", "0.05", "Significance level of the tests; confidence intervals are 1 - A."},
      {"mc-samples", "T", "30", "Monte Carlo dropout passes on the test set per run (0: none)."},
      {"out", "DIR", "sweep-out", "Where runs.jsonl and the reports go."},
      {"resume", "DIR", "", "Continue the study in DIR (its runs.jsonl): finished runs are skipped. Give the same "
                            "flags as the first time, or none but --resume and --verbose."},
      {"retry-failed", "yes|no", "no", "With --resume: run again the runs recorded as failed (else they are kept "
                                       "as failed)."},
      {"shard", "I/N", "", "Run only the I-th of N slices of the study's runs (seed by seed, then variant and rate; contiguous, "
                           "sizes differ by at most one) and write them to --out's runs.jsonl without a report; "
                           "exits 1 if one of them failed. 'dropnet-bench merge' puts the shards together."},
      {"epochs", "N", "55", "Training epochs of each run."},
      {"batch-size", "N", "250", "Batch size."},
      {"limit", "N", "", "Use the first N training records (default: all)."},
      {"test-limit", "N", "", "Use the first N test records (default: all)."},
      {"device", "auto|cpu|cuda", "auto", "Where to train."},
      {"seed", "N", "1", "Model seed of seed index 0: initial weights, dropout masks and shuffling."},
      {"max-norm", "M", "2.0", "MaxNorm max_value on the hidden kernels (0: no constraint)."},
      {"validation-split", "F", "0.2", "Fraction of the training records held out for validation, in [0, 1)."},
      {"data", "DIR|ARCHIVE", "",
       "CIFAR-10 in the official binary layout (default: data/cifar-10-batches-bin, else the bundled sample)."},
      {"learning-rate", "LR", "0.001", "Adam learning rate."},
      {"verbose", "0|1|2", "0",
       "0: one progress line per epoch; 1 and 2 add Keras' progress bar or epoch line (on stderr; with "
       "--concurrent 1 only)."},
      {"concurrent", "N", "1",
       "Train N runs at once in this process, each its own model on its own thread (on a GPU each on its own "
       "stream, with its own recorded CUDA graph; on the CPU each with --threads-per-run threads). The results "
       "do not depend on N (on the CPU the same bits; on a GPU as far as its algorithms are deterministic); a "
       "failing run is recorded and the others go on. The sweep first checks that the runs fit in the free "
       "memory (a probe step). docs/scaling.md says when it pays."},
      {"threads-per-run", "T", "",
       "On the CPU: the threads of each run's ops. Default: the CPU threads (DROPNET_CPU_THREADS or the "
       "hardware threads, at most 16) divided by --concurrent, at least 1."},
  };
  return specs;
}

namespace {

std::vector<std::size_t> parse_dropout_layers(const std::string& text) {
  std::vector<std::size_t> layers;
  if (text == "all") {
    layers.resize(cli::kSeedDropoutLayers);
    std::iota(layers.begin(), layers.end(), std::size_t(0));
    return layers;
  }
  for (double v : parse_number_list("dropout-layers", text)) {
    if (v != std::floor(v) || v < 1 || v > double(cli::kSeedDropoutLayers))
      throw cli::UsageError(fmt::format("--dropout-layers {}: expected 'all' or Dropout layer numbers from 1 to {} "
                                        "(the seed model has {} Dropout layers)", text, cli::kSeedDropoutLayers,
                                        cli::kSeedDropoutLayers));
    const auto index = static_cast<std::size_t>(v) - 1;
    if (std::find(layers.begin(), layers.end(), index) != layers.end())
      throw cli::UsageError(fmt::format("--dropout-layers {}: layer {} is listed twice", text, index + 1));
    layers.push_back(index);
  }
  return layers;
}

// Creates `dir` and writes then removes a probe file, so an unwritable --out fails before training.
void check_writable(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw cli::UsageError(fmt::format("--out {}: cannot create the directory ({})", dir.string(),
                                      ec ? ec.message() : "a file of that name exists"));
  const std::filesystem::path probe = dir / ".dropnet-bench-probe";
  {
    std::ofstream f(probe);
    f << "probe\n";
    f.close();
    if (!f) throw cli::UsageError(fmt::format("--out {}: the directory is not writable", dir.string()));
  }
  std::filesystem::remove(probe, ec);
}

}  // namespace

// The sweep's configuration, or nothing when --help was asked for. `only_resume`: no flag but --resume and
// --verbose (and --retry-failed) was given (the settings then come from the study's header).
std::optional<SweepConfig> parse_sweep_args(std::span<const std::string> given_args, std::filesystem::path& resume,
                                            bool& only_resume) {
  // --retry-failed alone is the switch form of --retry-failed yes.
  std::vector<std::string> args(given_args.begin(), given_args.end());
  for (std::string& a : args)
    if (a == "--retry-failed") a = "--retry-failed=yes";

  const cli::Flags flags = cli::parse_flags(args, sweep_flags());
  if (flags.help) return std::nullopt;
  SweepConfig c;
  c.rates = parse_number_list("rates", flags.get_string("rates"));
  for (double r : c.rates)
    if (!(r >= 0.0 && r <= 1.0))
      throw cli::UsageError(fmt::format("--rates {}: every dropout rate must lie in [0, 1]; {} does not",
                                        flags.get_string("rates"), r));
  for (std::size_t i = 0; i < c.rates.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (c.rates[i] == c.rates[j])
        throw cli::UsageError(fmt::format("--rates {}: rate {} is listed twice", flags.get_string("rates"), c.rates[i]));
  c.dropout_layers_text = flags.get_string("dropout-layers");
  c.dropout_layers = parse_dropout_layers(c.dropout_layers_text);
  if (flags.given("seeds") && flags.given("repeats"))
    throw cli::UsageError("--seeds and --repeats are the same flag; give one");
  c.seeds = int(flags.get_int(flags.given("repeats") ? "repeats" : "seeds", 1, 1000));
  c.baseline = c.rates.front();
  if (flags.given("baseline")) {
    c.baseline = flags.get_double("baseline");
    if (std::find(c.rates.begin(), c.rates.end(), c.baseline) == c.rates.end())
      throw cli::UsageError(fmt::format("--baseline {}: not one of --rates {}", flags.get_string("baseline"),
                                        flags.get_string("rates")));
  }
  c.epochs = int(flags.get_int("epochs", 1, 1000000));
  if (flags.given("variants")) {
    c.variants = parse_variants(flags.get_string("variants"), c.epochs);
    c.baseline_variant = c.variants.front().text();
    if (flags.given("baseline-variant")) {
      const Variant b = parse_variant(flags.get_string("baseline-variant"), c.epochs, "--baseline-variant");
      if (std::find(c.variants.begin(), c.variants.end(), b) == c.variants.end())
        throw cli::UsageError(fmt::format("--baseline-variant {}: not one of --variants {}",
                                          flags.get_string("baseline-variant"), flags.get_string("variants")));
      c.baseline_variant = b.text();
    }
  } else if (flags.given("baseline-variant")) {
    throw cli::UsageError("--baseline-variant: only with --variants (without them every run is plain Dropout)");
  }
  c.block_size = flags.get_int("block-size", 1, 1 << 20);
  if (flags.given("block-size") &&
      std::none_of(c.variants.begin(), c.variants.end(), [](const Variant& v) { return v.type == cli::DropoutType::DropBlock; }))
    throw cli::UsageError("--block-size: only DropBlock uses it; add a dropblock variant to --variants");
  // A shared rate 0 (see rate0_owner) is compared as the condition that stands for it.
  if (shares_rate0(c, c.baseline_variant, c.baseline)) c.baseline_variant = rate0_owner_of(c, c.baseline_variant);
  c.alpha = flags.get_double("alpha");
  flags.require(c.alpha > 0 && c.alpha < 1, "alpha", "a significance level in (0, 1)");
  c.mc_samples = int(flags.get_int("mc-samples", 0, 100000));
  c.batch_size = int(flags.get_int("batch-size", 1, 1 << 20));
  if (flags.value("limit")) c.limit = flags.get_int("limit", 1, INT64_MAX);
  if (flags.value("test-limit")) c.test_limit = flags.get_int("test-limit", 1, INT64_MAX);
  c.device = device_from_flag(flags.get_string("device"));
  c.seed = std::uint64_t(flags.get_int("seed", 0, INT64_MAX));
  const double max_norm = flags.get_double("max-norm");
  flags.require(max_norm >= 0, "max-norm", "a number >= 0 (0: no constraint)");
  c.vary_max_norm = flags.given("max-norms");
  c.max_norms = c.vary_max_norm ? parse_number_list("max-norms", flags.get_string("max-norms"))
                                : std::vector<double>{max_norm};
  for (double m : c.max_norms)
    if (!(m >= 0))
      throw cli::UsageError(fmt::format("--max-norms {}: every max-norm must be >= 0 (0: no constraint); {} is not",
                                        flags.get_string("max-norms"), m));
  c.validation_split = flags.get_double("validation-split");
  flags.require(c.validation_split >= 0 && c.validation_split < 1, "validation-split", "a fraction in [0, 1)");
  c.learning_rate = flags.get_double("learning-rate");
  flags.require(c.learning_rate > 0, "learning-rate", "a number > 0");
  c.verbose = int(flags.get_int("verbose", 0, 2));
  c.concurrent = int(flags.get_int("concurrent", 1, 256));
  if (c.concurrent > 1 && c.verbose > 0)
    throw cli::UsageError(fmt::format("--verbose {} draws the progress of one run at a time; with --concurrent {} "
                                      "use --verbose 0, whose progress lines each name their run", c.verbose,
                                      c.concurrent));
  c.threads_per_run = flags.given("threads-per-run") ? unsigned(flags.get_int("threads-per-run", 1, 16))
                      : c.concurrent > 1 ? std::max(1u, backend::cpu::default_cpu_threads() / unsigned(c.concurrent))
                                         : 0u;
  c.data = flags.value("data") ? std::filesystem::path(flags.get_string("data")) : default_data_dir();
  c.out = flags.get_string("out");
  resume.clear();
  only_resume = false;
  if (flags.given("resume")) {
    resume = flags.get_string("resume");
    if (flags.given("out") && std::filesystem::path(flags.get_string("out")) != resume)
      throw cli::UsageError("--resume DIR writes to DIR: give no --out, or the same directory");
    c.out = resume;
    only_resume = true;
    for (const cli::FlagSpec& spec : sweep_flags())
      if (flags.given(spec.name) && spec.name != "resume" && spec.name != "verbose" && spec.name != "out" &&
          spec.name != "retry-failed" && spec.name != "shard" && spec.name != "concurrent" &&
          spec.name != "threads-per-run")
        only_resume = false;
  }
  const std::string retry = flags.get_string("retry-failed");
  if (retry != "yes" && retry != "no")
    throw cli::UsageError(fmt::format("--retry-failed {}: expected yes or no", retry));
  c.retry_failed = retry == "yes";
  if (c.retry_failed && !flags.given("resume"))
    throw cli::UsageError("--retry-failed yes: only with --resume DIR (a new study has no failed runs)");
  // With --resume alone the study's size is known only from its header: run_sweep checks the shard then.
  if (flags.given("shard"))
    c.shard = parse_shard(flags.get_string("shard"), only_resume ? std::size_t(-1)
                                                                 : planned_runs(c).size());
  return c;
}

namespace {

// FNV-1a 64 over bytes as they lie in memory (x86-64: little-endian), written as 16 hex digits: the hashes
// runs.jsonl records.
struct Fnv1a {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* p, std::size_t n) {
    const auto* bytes = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
  }
  std::string hex() const { return fmt::format("{:016x}", h); }
};

// Over the bytes of every weight, in layer order.
std::string hash_initial_weights(const Sequential& model) {
  Fnv1a h;
  for (std::size_t i = 0; i < model.layer_count(); ++i)
    for (const Param& p : model.layer(i).params()) {
      const std::vector<float> v = p.value.to_vector();
      h.add(v.data(), v.size() * sizeof(float));
    }
  return h.hex();
}

// Of the data the study trains and tests on (images and labels, after --limit/--test-limit).
std::string hash_data(const cifar10::Dataset& data) {
  Fnv1a h;
  for (const cifar10::Split* s : {&data.train, &data.test}) {
    const std::vector<float> images = s->images.to_vector();
    h.add(images.data(), images.size() * sizeof(float));
    h.add(s->classes.data(), s->classes.size());
  }
  return h.hex();
}

// Of the epochs' batch-order hashes (History::order_fnv1a), in epoch order.
std::string hash_batch_order(const History& history) {
  Fnv1a h;
  h.add(history.order_fnv1a.data(), history.order_fnv1a.size() * sizeof(std::uint64_t));
  return h.hex();
}

// The seed model of one run. `batches`: the batches of an epoch, which turn a variant's schedule from epochs
// into optimizer steps.
cli::SeedModelConfig model_config(const SweepConfig& c, const std::string& variant, double rate, double max_norm,
                                  std::uint64_t batches) {
  cli::SeedModelConfig m{.dropout = 0.0, .max_norm = max_norm};
  if (!variant.empty()) {
    const Variant v = variant_from_text(variant);
    m.type = v.type;
    m.batch_norm = v.batch_norm;
    m.schedule = v.in_steps(batches);
    m.block_size = c.block_size;
  }
  for (std::size_t i = 0; i < cli::kSeedDropoutLayers; ++i) m.layer_dropout[i] = 0.0;
  for (std::size_t i : c.dropout_layers) m.layer_dropout[i] = rate;
  return m;
}

// This process's resident memory in bytes (/proc/self/statm), 0 if it cannot be read.
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return pages_resident * std::size_t(sysconf(_SC_PAGESIZE));
}

// --concurrent N: the runs at once (N, or fewer when fewer are left) must fit in the device's free memory
// (on a GPU its memory, on the CPU the host's available memory). One run's need is measured on a probe, the
// seed model compiled and stepped once (train_on_batch, then a predict batch); a run's later needs (a CUDA
// graph, the best-weights checkpoint) are small beside it, and a margin of a quarter covers them.
void check_concurrent_memory(const SweepConfig& config, int runs, const Tensor& x, const Tensor& y) {
  if (runs < 2) return;
  const std::int64_t b = std::min<std::int64_t>(config.batch_size, x.dim(0));
  // On the CPU a run's memory is the growth of this process's resident set (finer than the host's free
  // memory, which other processes move); on a GPU the fall of its free memory.
  const bool cpu = config.device == Device::CPU;
  const char* memory = cpu ? "host" : "GPU";
  constexpr double kMargin = 1.25;
  const std::size_t free_before = device_memory(config.device).free_bytes;
  const std::size_t resident_before = cpu ? resident_bytes() : 0;
  std::size_t need = 0;
  {
    // The largest model of the study: with BatchNormalization if a variant has it.
    std::string variant = variant_axis(config).front();
    for (const Variant& v : config.variants)
      if (v.batch_norm) variant = v.text();
    Sequential probe =
        cli::build_seed_model(model_config(config, variant, config.rates.back(), config.max_norms.front(), 1));
    probe.compile({.loss = "categorical_crossentropy", .device = config.device, .seed = config.seed,
                   .cpu_threads = config.threads_per_run});
    (void)probe.train_on_batch(x.rows(0, b), y.rows(0, b));
    (void)probe.predict(x.rows(0, b), {.batch_size = int(b)});
    if (cpu) {
      const std::size_t resident = resident_bytes();
      need = resident > resident_before ? resident - resident_before : 0;
    } else {
      const std::size_t free_during = device_memory(config.device).free_bytes;
      need = free_before > free_during ? free_before - free_during : 0;
    }
  }
  const double mib = 1024.0 * 1024.0;
  const std::size_t want = std::size_t(double(need) * kMargin) * std::size_t(runs);
  fmt::print(stderr, "[sweep] memory: a run takes about {:.0f} MiB of {} memory (measured on a probe step); "
                     "{} at once want {:.0f} MiB, {:.0f} MiB free\n", double(need) / mib,
             memory, runs, double(want) / mib,
             double(free_before) / mib);
  if (want > free_before) {
    const std::size_t fit = need == 0 ? 0 : std::size_t(double(free_before) / (double(need) * kMargin));
    throw cli::UsageError(fmt::format(
        "--concurrent {}: {} runs need about {:.0f} MiB of {} memory ({:.0f} MiB each, measured on a probe run, "
        "plus a quarter), but {:.0f} MiB are free; at most {} fit: give --concurrent {} or less",
        config.concurrent, runs, double(want) / mib, memory,
        double(need) / mib, double(free_before) / mib, fit, std::max<std::size_t>(fit, 1)));
  }
}

// Records each epoch of one run and prints one progress line per epoch with the sweep's ETA.
class SweepProgress : public Callback {
 public:
  SweepProgress(RunRecord& run, std::string label, int epochs, std::atomic<int>& epochs_done, int epochs_total,
                std::chrono::steady_clock::time_point sweep_start, double& train_seconds)
      : run_(run), label_(std::move(label)), epochs_(epochs), epochs_done_(epochs_done),
        epochs_total_(epochs_total), sweep_start_(sweep_start), train_seconds_(train_seconds) {}

  void on_epoch_begin(int) override { epoch_start_ = last_batch_ = std::chrono::steady_clock::now(); }
  void on_batch_end(int, const Logs&) override { last_batch_ = std::chrono::steady_clock::now(); }
  void on_epoch_end(int epoch, const Logs& logs) override {
    const auto now = std::chrono::steady_clock::now();
    train_seconds_ += std::chrono::duration<double>(last_batch_ - epoch_start_).count();
    auto get = [&](const char* key) { const auto it = logs.find(key); return it == logs.end() ? kNaN : it->second; };
    run_.epochs.push_back({epoch, get("loss"), get("accuracy"), get("val_loss"), get("val_accuracy"),
                           std::chrono::duration<double>(now - epoch_start_).count()});
    const int epochs_done = ++epochs_done_;
    const double elapsed = seconds_since(sweep_start_);
    const double eta = elapsed / epochs_done * (epochs_total_ - epochs_done);
    const EpochRecord& e = run_.epochs.back();
    std::string val = std::isnan(e.val_loss) ? std::string()
                                             : fmt::format(" val_loss {:.4f} val_acc {:.4f}", e.val_loss, e.val_accuracy);
    fmt::print(stderr, "[sweep] {} epoch {}/{}: loss {:.4f} acc {:.4f}{} ({}) | {}/{} epochs, ETA {}\n", label_,
               epoch + 1, epochs_, e.loss, e.accuracy, val, format_duration(e.seconds), epochs_done, epochs_total_,
               format_duration(eta));
    std::fflush(stderr);
  }

 private:
  RunRecord& run_;
  std::string label_;
  int epochs_;
  std::atomic<int>& epochs_done_;  // shared by the runs in flight
  int epochs_total_;
  std::chrono::steady_clock::time_point sweep_start_, epoch_start_, last_batch_;
  double& train_seconds_;
};

PredictionRecord prediction_record(const metrics::PredictionMetrics& m, int passes) {
  PredictionRecord p{.passes = passes, .accuracy = m.accuracy, .nll = m.nll, .brier = m.brier, .ece = m.ece,
                     .entropy = m.mean_entropy, .mutual_information = m.mean_mutual_information,
                     .auroc_entropy = m.auroc_entropy};
  for (const metrics::ReliabilityBin& b : m.bins) {
    p.bin_count.push_back(b.count);
    p.bin_confidence.push_back(b.confidence);
    p.bin_accuracy.push_back(b.accuracy);
  }
  return p;
}

// Trains and measures one run; throws on any failure (the caller records it).
void execute_run(const SweepConfig& config, RunRecord& run, const Tensor& x, const Tensor& y, const Tensor& xt,
                 const Tensor& yt, const std::vector<std::int32_t>& test_labels, SweepProgress& progress,
                 const std::filesystem::path& best_path, const std::vector<RunRecord>& done, std::uint64_t batches) {
  if (const char* fail = std::getenv("DROPNET_BENCH_FAIL_RUN"); fail != nullptr && run.id == fail)
    throw Error("injected failure (DROPNET_BENCH_FAIL_RUN, a test hook)");
  const cli::SeedModelConfig mc = model_config(config, run.variant, run.rate, run.max_norm, batches);
  Sequential model = cli::build_seed_model(mc);
  model.compile({.optimizer = Adam{.learning_rate = config.learning_rate}, .loss = "categorical_crossentropy",
                 .device = config.device, .seed = run.seed, .cpu_threads = config.threads_per_run});
  run.init_hash = hash_initial_weights(model);
  // Same seed => same initial weights, whatever the rate or max-norm: the premise of the paired comparison.
  // Checked before training, against the runs finished when this one started (its batch order, the other
  // half, is checked against every finished run when it is recorded; run_sweep).
  for (const RunRecord& other : done)
    if (const auto why = pairing_conflict(other, run))
      throw Error(fmt::format("{}: the library no longer derives layer seeds from the model seed and position "
                              "alone", *why));
  TerminateOnNaN nan_guard;
  ModelCheckpoint best(best_path, {.save_best_only = true, .save_weights_only = true});
  std::vector<Callback*> callbacks = {&progress, &nan_guard};
  const bool has_val = config.validation_split > 0;
  if (has_val) callbacks.push_back(&best);
  const History history = model.fit(x, y, {.batch_size = config.batch_size, .epochs = config.epochs,
                                            .verbose = config.verbose, .validation_split = config.validation_split,
                                            .callbacks = callbacks, .out = stderr});
  // Same seed => same batches in the same order, whatever the rate: the other half of the pairing.
  run.order_hash = hash_batch_order(history);
  const Evaluation test = model.evaluate(xt, yt, config.batch_size, 0, nullptr);
  run.test_loss = test.loss;
  run.test_accuracy = test.accuracy;
  if (!std::isfinite(test.loss)) throw Error(fmt::format("the test loss is {}", test.loss));

  // Weight-scaling inference, then Monte Carlo dropout (masks from the model's Philox stream, so a run's
  // passes are reproducible). Without dropout every pass is the same: one pass stands for all. The passes use
  // the rate the schedule gives after the last training step (early dropout: 0).
  constexpr std::size_t k = cifar10::kClasses;
  const std::vector<float> pf = model.predict(xt, {.batch_size = config.batch_size}).to_vector();
  const std::vector<double> p(pf.begin(), pf.end());
  run.standard = prediction_record(metrics::summarize(p, test_labels, k), 1);
  if (config.mc_samples > 0) {
    const std::uint64_t trained = batches * std::uint64_t(config.epochs);
    const bool rate_at_end = !(mc.schedule.kind == DropoutSchedule::Kind::Early && mc.schedule.steps <= trained) &&
                             !(mc.schedule.kind == DropoutSchedule::Kind::Late && mc.schedule.steps > trained);
    bool any_dropout = false;
    for (std::size_t i : config.dropout_layers) any_dropout |= run.rate > 0 && rate_at_end && i < cli::kSeedDropoutLayers;
    const int passes = any_dropout ? config.mc_samples : 1;
    metrics::McAccumulator acc(test_labels.size(), k);
    for (int t = 0; t < passes; ++t)
      acc.add(std::span<const float>(model.predict(xt, {.batch_size = config.batch_size, .dropout = true}).to_vector()));
    const std::vector<double> mean = acc.mean_probs(), mi = acc.mutual_information();
    run.mc = prediction_record(metrics::summarize(mean, test_labels, k, mi), passes);
  }

  // The test figures at the best-validation epoch: that epoch's weights, saved by ModelCheckpoint.
  for (const EpochRecord& e : run.epochs)
    if (!std::isnan(e.val_loss) && (run.best_epoch < 0 || e.val_loss < run.epochs[std::size_t(run.best_epoch)].val_loss))
      run.best_epoch = e.epoch;
  if (has_val && run.best_epoch >= 0) {
    if (run.best_epoch == int(run.epochs.size()) - 1) {
      run.best_test_loss = run.test_loss, run.best_test_accuracy = run.test_accuracy;
    } else {
      load_weights(model, best_path);
      const Evaluation b = model.evaluate(xt, yt, config.batch_size, 0, nullptr);
      run.best_test_loss = b.loss, run.best_test_accuracy = b.accuracy;
    }
  }
}

}  // namespace

int run_sweep(std::span<const std::string> args) {
  std::filesystem::path resume;
  bool only_resume = false;
  const std::optional<SweepConfig> parsed = parse_sweep_args(args, resume, only_resume);
  if (!parsed) {
    fmt::print("usage: dropnet-bench sweep [flags]\n\nA dropout study: trains the seed model once per (dropout rate, "
               "seed), or per (variant, rate, seed) with --variants, from the same initial weights and data order for "
               "each seed, measures accuracy, loss and calibration (with and without Monte Carlo dropout), and "
               "reports means, confidence intervals and paired tests against a baseline rate (and variant). Every finished run is written at once to runs.jsonl; "
               "--resume continues an interrupted study.\n\nflags:\n{}",
               cli::format_flag_help(sweep_flags()));
    return kExitOk;
  }
  SweepConfig config = *parsed;
  std::string command = "dropnet-bench sweep";
  for (const std::string& a : args) command += " " + a;
  config.command_line = command;
  const std::filesystem::path runs_path = config.out / "runs.jsonl";

  // A resumed study: its settings and finished runs.
  std::vector<RunRecord> done;
  std::size_t retried = 0;  // runs recorded as failed that run again (--retry-failed)
  std::optional<Provenance> recorded;
  if (!resume.empty()) {
    if (!std::filesystem::exists(runs_path))
      throw cli::UsageError(fmt::format("--resume {}: no runs.jsonl there (nothing to resume)", resume.string()));
    RunsFile f = read_runs_file(runs_path, config);
    if (config.shard.active() && config.shard != f.config.shard)
      throw cli::UsageError(fmt::format("--resume {} --shard {}: the directory holds {}; give its shard or none",
                                        resume.string(), config.shard.text(),
                                        f.config.shard.active() ? "shard " + f.config.shard.text() : "a whole study"));
    if (only_resume) {
      f.config.verbose = config.verbose, f.config.out = config.out, f.config.command_line = config.command_line;
      f.config.retry_failed = config.retry_failed;
      f.config.concurrent = config.concurrent, f.config.threads_per_run = config.threads_per_run;
      config = f.config;
    } else if (settings_json(config) != f.settings) {
      throw cli::UsageError(fmt::format("--resume {}: the flags give other settings than the study there; give the "
                                        "same flags, or --resume alone (recorded: {})", resume.string(), f.settings));
    } else if (f.config.shard.active() && !config.shard.active()) {
      throw cli::UsageError(fmt::format("--resume {}: the directory holds shard {} of the study; add --shard {}",
                                        resume.string(), f.config.shard.text(), f.config.shard.text()));
    }
    done = std::move(f.runs);
    if (config.retry_failed) retried = std::erase_if(done, [](const RunRecord& r) { return !r.ok; });
    for (std::size_t i = 0; i < done.size(); ++i)
      for (std::size_t j = i + 1; j < done.size(); ++j)
        if (const auto why = pairing_conflict(done[i], done[j]))
          throw DataError(fmt::format("--resume {}: {}, so the study cannot be paired by seed", resume.string(), *why));
    recorded = f.provenance;
  }

  // Everything that can fail, before any training.
  check_writable(config.out);
  // The builder checks rates, max-norms and variants (a type this build lacks) with the library's wording.
  for (double mn : config.max_norms)
    for (const std::string& v : variant_axis(config))
      for (double rate : config.rates) (void)cli::build_seed_model(model_config(config, v, rate, mn, 1));
  const auto load_start = std::chrono::steady_clock::now();
  cifar10::Dataset data = cifar10::load(config.data, {.train_limit = config.limit, .test_limit = config.test_limit});

  Provenance prov;
  prov.dropnet_version = DROPNET_VERSION_STRING;
  prov.git_commit = DROPNET_GIT_COMMIT;
  prov.device_description = describe(config.device);
  prov.threads = int(backend::cpu::cpu_threads());
  prov.data_source = data.source;
  prov.data_fnv1a = hash_data(data);
  prov.command = command;
  const std::int64_t n = data.train.size();
  prov.val_samples = n - static_cast<std::int64_t>(std::floor(double(n) * (1.0 - config.validation_split)));
  prov.train_samples = n - prov.val_samples;
  prov.test_samples = data.test.size();
  if (config.validation_split > 0 && (prov.val_samples == 0 || prov.train_samples == 0))
    throw cli::UsageError(fmt::format("--validation-split {}: {} training records cannot be split into a training "
                                      "and a validation part", config.validation_split, n));
  if (recorded) {
    if (recorded->data_fnv1a != prov.data_fnv1a)
      throw cli::UsageError(fmt::format("--resume {}: the data differ from the study's (hash {} there, {} now)",
                                        resume.string(), recorded->data_fnv1a, prov.data_fnv1a));
    prov = *recorded;  // the study's provenance is the one recorded when it started
  }
  // The runs still to do, seed by seed (every rate of seed 1, then of seed 2, ...), so that a study stopped
  // early already holds complete paired comparisons.
  // A shard runs its slice of them (shard_runs; the whole study otherwise).
  std::vector<RunRecord> todo;
  const std::vector<RunRecord> mine = shard_runs(config, config.shard);
  for (const RunRecord& run : mine)
    if (std::none_of(done.begin(), done.end(), [&](const RunRecord& d) { return d.id == run.id; }))
      todo.push_back(run);
  const int workers = std::max(1, std::min(config.concurrent, int(todo.size())));
  check_concurrent_memory(config, workers, data.train.images, data.train.labels);
  write_runs_file(runs_path, config, prov, done);

  // On a GPU, move the data once rather than gathering batches from host memory every step.
  Tensor x = data.train.images, y = data.train.labels, xt = data.test.images, yt = data.test.labels;
  if (config.device != Device::CPU) x = x.to(config.device), y = y.to(config.device), xt = xt.to(config.device),
                                    yt = yt.to(config.device);
  const std::vector<std::int32_t> test_labels(data.test.classes.begin(), data.test.classes.end());
  fmt::print(stderr, "[sweep] device: {}\n[sweep] data: {} ({} train, {} validation, {} test records; loaded in {})\n",
             prov.device_description, prov.data_source, prov.train_samples, prov.val_samples, prov.test_samples,
             format_duration(seconds_since(load_start)));

  const int total_runs = int(mine.size());
  const std::string of_what = config.shard.active() ? fmt::format(" (shard {})", config.shard.text()) : "";
  if (!resume.empty())
    fmt::print(stderr, "[sweep] resuming {}: {} of {} runs{} already finished{}\n", config.out.string(), done.size(),
               total_runs, of_what, retried ? fmt::format(", {} failed run{} to retry", retried, retried == 1 ? "" : "s") : "");
  else if (config.shard.active())
    fmt::print(stderr, "[sweep] shard {}: {} of the study's {} runs: {}\n", config.shard.text(), total_runs,
               planned_runs(config).size(), [&] {
                 std::string ids;
                 for (const RunRecord& r : mine) ids += (ids.empty() ? "" : "; ") + r.id;
                 return ids;
               }());
  const std::uint64_t batches = batches_per_epoch(prov.train_samples, config.batch_size);
  if (!config.variants.empty())
    for (RunRecord& run : todo) run.schedule_steps = to_string(variant_from_text(run.variant).in_steps(batches));
  const int epochs_total = int(todo.size()) * config.epochs;
  const auto sweep_start = std::chrono::steady_clock::now();
  if (config.concurrent > 1)
    fmt::print(stderr, "[sweep] {} runs at once, each on its own thread{}\n", workers,
               config.device == Device::CPU ? fmt::format(" with {} CPU thread{}", config.threads_per_run,
                                                          config.threads_per_run == 1 ? "" : "s")
                                            : std::string(" and its own stream"));

  // The runs in flight share the list of finished runs (each new record is checked against it and written
  // with it), the count of started runs (for the labels) and the epoch count (for the ETA); nothing else.
  // Records go to runs.jsonl in canonical order, whatever order they finish in.
  std::mutex shared;
  std::atomic<int> epochs_done{0};
  std::size_t next = 0;
  int started = int(done.size());
  std::exception_ptr stopped;  // an error outside a run (writing runs.jsonl): the study stops
  auto work = [&](int worker) {
    // Each worker its own file for the best-validation weights (ModelCheckpoint), removed at the end.
    const std::filesystem::path best_path =
        config.out / (workers == 1 ? std::string(".best-weights.safetensors")
                                   : fmt::format(".best-weights-{}.safetensors", worker + 1));
    for (;;) {
      RunRecord run;
      std::vector<RunRecord> finished;
      int run_index = 0;
      {
        const std::lock_guard lock(shared);
        if (next == todo.size() || stopped) break;
        run = todo[next++];
        run_index = ++started;
        finished = done;
      }
      const auto run_start = std::chrono::steady_clock::now();
      const std::string label = fmt::format("run {}/{} {}rate {}{} seed {}", run_index, total_runs,
                                            run.variant.empty() ? "" : run.variant + " ", run.rate,
                                            config.vary_max_norm ? " max-norm " + max_norm_text(run.max_norm) : "",
                                            run.seed);
      double train_seconds = 0;
      SweepProgress progress(run, label, config.epochs, epochs_done, epochs_total, sweep_start, train_seconds);
      try {
        execute_run(config, run, x, y, xt, yt, test_labels, progress, best_path, finished, batches);
        run.train_seconds = train_seconds;
        run.images_per_second = double(prov.train_samples) * config.epochs / train_seconds;
        run.peak_memory_mib = config.device == Device::CPU ? peak_rss_mib() : kNaN;
      } catch (const std::exception& e) {
        run.ok = false;
        run.failure = e.what();
        // Keep the ETA honest: the run's unfinished epochs count as done.
        epochs_done += std::max(0, config.epochs - int(run.epochs.size()));
      }
      run.wall_seconds = seconds_since(run_start);
      try {
        const std::lock_guard lock(shared);
        // The pairing against every finished run, those that were in flight beside this one included.
        for (const RunRecord& other : done)
          if (const auto why = pairing_conflict(other, run)) {
            run.ok = false;
            run.failure = *why + ": the library no longer derives initial weights and batch order from the model "
                                 "seed alone";
            break;
          }
        if (run.ok)
          fmt::print(stderr, "[sweep] {} done: test loss {:.4f} test acc {:.4f}{} in {}\n", label, run.test_loss,
                     run.test_accuracy,
                     config.mc_samples > 0 ? fmt::format(" (MC dropout acc {:.4f}, ECE {:.4f})", run.mc.accuracy, run.mc.ece) : "",
                     format_duration(run.wall_seconds));
        else
          fmt::print(stderr, "[sweep] {} FAILED: {} (recorded; the study goes on)\n", label, run.failure);
        done.push_back(run);
        sort_runs(config, done);
        write_runs_file(runs_path, config, prov, done);  // at once: an interruption loses only the runs in flight
      } catch (...) {
        const std::lock_guard lock(shared);
        if (!stopped) stopped = std::current_exception();
      }
    }
    std::error_code ec;
    std::filesystem::remove(best_path, ec);
  };
  if (workers == 1) {
    work(0);
  } else {
    std::vector<std::jthread> threads;
    for (int w = 0; w < workers; ++w) threads.emplace_back(work, w);
  }
  if (stopped) std::rethrow_exception(stopped);

  // A shard writes no report (the merge does), and fails when one of its runs failed, so that its array
  // task fails and the merge waiting for it is cancelled; the failures stay recorded for the merge to list.
  if (config.shard.active()) {
    std::string failed;
    int n_failed = 0;
    for (const RunRecord& r : done)
      if (!r.ok) failed += fmt::format("{}{}: {}", n_failed++ ? "; " : "", r.id, r.failure);
    if (n_failed > 0)
      throw Error(fmt::format("shard {}: {} of its {} runs failed ({}); recorded in {}; rerun the shard with "
                              "--resume {} --retry-failed", config.shard.text(), n_failed, total_runs, failed,
                              runs_path.string(), config.out.string()));
    fmt::print(stderr, "[sweep] shard {}: {} runs ({} this time, in {}) in {}; put the shards together with "
                       "dropnet-bench merge OUT SHARD_DIR...\n", config.shard.text(), total_runs, todo.size(),
               format_duration(seconds_since(sweep_start)), runs_path.string());
    return kExitOk;
  }

  // The reports are built from the records as written, as a merge or a resume would read them.
  const RunsFile f = read_runs_file(runs_path, config);
  Study study{.config = config, .provenance = prov, .runs = f.runs};
  const std::string md = markdown_report(study);
  fmt::print("{}", md);
  std::fflush(stdout);
  write_reports(study, config.out);
  fmt::print(stderr, "[sweep] {} runs ({} this time, in {}); wrote runs.jsonl, report.md, sweep.csv, runs.csv, "
                     "sweep.json, the SVG plots and report.html to {}\n", total_runs, todo.size(),
             format_duration(seconds_since(sweep_start)), config.out.string());
  return kExitOk;
}

}  // namespace dropnet::bench
