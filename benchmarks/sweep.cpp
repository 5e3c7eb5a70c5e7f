// sweep.cpp: `dropnet-bench sweep`: flag parsing, up-front checks and the training loop.
//
// Every check that can fail (flags, the output directory, the data, the model configuration) runs before
// the first run trains, so a typo never costs a half-finished sweep.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "bench_util.hpp"
#include "cli/args.hpp"
#include "cli/seed_model.hpp"
#include "dropnet/dropnet.hpp"
#include "sweep.hpp"

namespace dropnet::bench {
namespace {

const std::vector<cli::FlagSpec>& sweep_flags() {
  static const std::vector<cli::FlagSpec> specs = {
      {"rates", "R1,R2,...", "0,0.1,0.25,0.5,0.7", "Dropout rates to compare, each in [0, 1]."},
      {"dropout-layers", "all|I,J", "all",
       fmt::format("Which Dropout layers of the seed model take the rate, counted from 1 (the model has {}); "
                   "the others get rate 0.", cli::kSeedDropoutLayers)},
      {"max-norms", "M1,M2,...", "",
       "Also vary the max-norm: the sweep becomes rates x max-norms (0 means no constraint). "
       "Overrides --max-norm."},
      {"repeats", "N", "1", "Runs per rate with seeds seed, seed+1, ...; the table shows mean +- sample std."},
      {"out", "DIR", "sweep-out", "Where sweep.csv, sweep.json, the SVG plots and report.html go."},
      {"epochs", "N", "55", "Training epochs of each run."},
      {"batch-size", "N", "250", "Batch size."},
      {"limit", "N", "", "Use the first N training records (default: all)."},
      {"test-limit", "N", "", "Use the first N test records (default: all)."},
      {"device", "auto|cpu|cuda", "auto", "Where to train."},
      {"seed", "N", "1", "Model seed of repeat 0: initial weights, dropout masks and shuffling."},
      {"max-norm", "M", "2.0", "MaxNorm max_value on the hidden kernels (0: no constraint)."},
      {"validation-split", "F", "0.2", "Fraction of the training records held out for validation, in [0, 1)."},
      {"data", "DIR|ARCHIVE", "",
       "CIFAR-10 in the official binary layout (default: data/cifar-10-batches-bin, else the bundled sample)."},
      {"learning-rate", "LR", "0.001", "Adam learning rate."},
      {"verbose", "0|1|2", "0",
       "0: one progress line per epoch; 1 and 2 add Keras' progress bar or epoch line (on stderr)."},
  };
  return specs;
}

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

// The sweep's configuration, or nothing when --help was asked for.
std::optional<SweepConfig> parse_config(std::span<const std::string> args) {
  // --concurrent is a switch without a value, which the flag parser does not have; it is refused here.
  for (const std::string& a : args)
    if (a == "--concurrent" || a.rfind("--concurrent=", 0) == 0)
      throw cli::UsageError("--concurrent: training all rates at once on separate CUDA streams is not "
                            "implemented yet; run without it (the rates then train one after another)");

  const cli::Flags flags = cli::parse_flags(args, sweep_flags());
  if (flags.help) return std::nullopt;
  SweepConfig c;
  c.rates = parse_number_list("rates", flags.get_string("rates"));
  for (double r : c.rates)
    if (!(r >= 0.0 && r <= 1.0))
      throw cli::UsageError(fmt::format("--rates {}: every dropout rate must lie in [0, 1]; {} does not",
                                        flags.get_string("rates"), r));
  c.dropout_layers_text = flags.get_string("dropout-layers");
  c.dropout_layers = parse_dropout_layers(c.dropout_layers_text);
  c.repeats = int(flags.get_int("repeats", 1, 1000));
  c.epochs = int(flags.get_int("epochs", 1, 1000000));
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
  c.data = flags.value("data") ? std::filesystem::path(flags.get_string("data")) : default_data_dir();
  c.out = flags.get_string("out");
  return c;
}

std::uint64_t hash_initial_weights(const Sequential& model) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the bytes of every weight, in layer order
  for (std::size_t i = 0; i < model.layer_count(); ++i) {
    for (const Param& p : model.layer(i).params()) {
      for (float v : p.value.to_vector()) {
        const auto* bytes = reinterpret_cast<const unsigned char*>(&v);
        for (std::size_t b = 0; b < sizeof v; ++b) h = (h ^ bytes[b]) * 0x100000001b3ull;
      }
    }
  }
  return h;
}

cli::SeedModelConfig model_config(const SweepConfig& c, double rate, double max_norm) {
  cli::SeedModelConfig m{.dropout = 0.0, .max_norm = max_norm};
  for (std::size_t i = 0; i < cli::kSeedDropoutLayers; ++i) m.layer_dropout[i] = 0.0;
  for (std::size_t i : c.dropout_layers) m.layer_dropout[i] = rate;
  return m;
}

// Records each epoch of one run and prints one progress line per epoch with the sweep's ETA.
class SweepProgress : public Callback {
 public:
  SweepProgress(RunRecord& run, std::string label, int epochs, int& epochs_done, int epochs_total,
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
    ++epochs_done_;
    const double elapsed = seconds_since(sweep_start_);
    const double eta = elapsed / epochs_done_ * (epochs_total_ - epochs_done_);
    const EpochRecord& e = run_.epochs.back();
    std::string val = std::isnan(e.val_loss) ? std::string()
                                             : fmt::format(" val_loss {:.4f} val_acc {:.4f}", e.val_loss, e.val_accuracy);
    fmt::print(stderr, "[sweep] {} epoch {}/{}: loss {:.4f} acc {:.4f}{} ({}) | {}/{} epochs, ETA {}\n", label_,
               epoch + 1, epochs_, e.loss, e.accuracy, val, format_duration(e.seconds), epochs_done_, epochs_total_,
               format_duration(eta));
    std::fflush(stderr);
  }

 private:
  RunRecord& run_;
  std::string label_;
  int epochs_;
  int& epochs_done_;
  int epochs_total_;
  std::chrono::steady_clock::time_point sweep_start_, epoch_start_, last_batch_;
  double& train_seconds_;
};

}  // namespace

int RunRecord::best_epoch() const {
  int best = -1;
  for (const EpochRecord& e : epochs)
    if (!std::isnan(e.val_loss) && (best < 0 || e.val_loss < epochs[std::size_t(best)].val_loss)) best = e.epoch;
  return best;
}

int run_sweep(std::span<const std::string> args) {
  const std::optional<SweepConfig> parsed = parse_config(args);
  if (!parsed) {
    fmt::print("usage: dropnet-bench sweep [flags]\n\nTrains the seed model once per dropout rate from the same "
               "initial weights and data order and compares them.\n\nflags:\n{}\n  --concurrent              "
               "(not implemented yet: train all rates at once on separate CUDA streams)\n",
               cli::format_flag_help(sweep_flags()));
    return kExitOk;
  }
  SweepConfig config = *parsed;
  config.command_line = "dropnet-bench sweep";
  for (const std::string& a : args) config.command_line += " " + a;

  // Everything that can fail, before any training.
  check_writable(config.out);
  for (double mn : config.max_norms)  // the builder checks rates and max-norms with the library's wording
    for (double rate : config.rates) (void)cli::build_seed_model(model_config(config, rate, mn));
  const auto load_start = std::chrono::steady_clock::now();
  cifar10::Dataset data = cifar10::load(config.data, {.train_limit = config.limit, .test_limit = config.test_limit});

  SweepResult result;
  result.device_description = describe(config.device);
  result.data_source = data.source;
  const std::int64_t n = data.train.size();
  result.val_samples = n - static_cast<std::int64_t>(std::floor(double(n) * (1.0 - config.validation_split)));
  result.train_samples = n - result.val_samples;
  result.test_samples = data.test.size();
  if (config.validation_split > 0 && (result.val_samples == 0 || result.train_samples == 0))
    throw cli::UsageError(fmt::format("--validation-split {}: {} training records cannot be split into a training "
                                      "and a validation part", config.validation_split, n));
  // On a GPU, move the data once rather than gathering batches from host memory every step.
  Tensor x = data.train.images, y = data.train.labels, xt = data.test.images, yt = data.test.labels;
  if (config.device != Device::CPU) x = x.to(config.device), y = y.to(config.device), xt = xt.to(config.device),
                                    yt = yt.to(config.device);
  fmt::print(stderr, "[sweep] device: {}\n[sweep] data: {} ({} train, {} validation, {} test records; loaded in {})\n",
             result.device_description, result.data_source, result.train_samples, result.val_samples,
             result.test_samples, format_duration(seconds_since(load_start)));

  const int total_runs = int(config.max_norms.size() * config.rates.size()) * config.repeats;
  const int epochs_total = total_runs * config.epochs;
  int epochs_done = 0, run_index = 0;
  const auto sweep_start = std::chrono::steady_clock::now();
  for (double mn : config.max_norms) {
    for (double rate : config.rates) {
      for (int r = 0; r < config.repeats; ++r) {
        ++run_index;
        RunRecord run{.rate = rate, .max_norm = mn, .repeat = r, .seed = config.seed + std::uint64_t(r)};
        const auto run_start = std::chrono::steady_clock::now();
        Sequential model = cli::build_seed_model(model_config(config, rate, mn));
        model.compile({.optimizer = Adam{.learning_rate = config.learning_rate}, .device = config.device,
                       .seed = run.seed});
        run.init_hash = hash_initial_weights(model);
        // Same seed => same initial weights, whatever the rate or max-norm: the premise of the comparison.
        for (const RunRecord& other : result.runs)
          if (other.seed == run.seed && other.init_hash != run.init_hash)
            throw Error(fmt::format("initial weights differ between rate {} and rate {} for seed {}: the library "
                                    "no longer derives layer seeds from the model seed and position alone",
                                    other.rate, rate, run.seed));

        std::string label = fmt::format("run {}/{} rate {}{}{}", run_index, total_runs, rate,
                                        config.vary_max_norm ? " max-norm " + max_norm_text(mn) : "",
                                        config.repeats > 1 ? fmt::format(" repeat {}/{}", r + 1, config.repeats) : "");
        SweepProgress progress(run, label, config.epochs, epochs_done, epochs_total, sweep_start, run.train_seconds);
        model.fit(x, y, {.batch_size = config.batch_size, .epochs = config.epochs, .verbose = config.verbose,
                         .validation_split = config.validation_split, .callbacks = {&progress}, .out = stderr});
        const Evaluation test = model.evaluate(xt, yt, config.batch_size, 0, nullptr);
        run.test_loss = test.loss;
        run.test_accuracy = test.accuracy;
        run.wall_seconds = seconds_since(run_start);
        run.images_per_second = double(result.train_samples) * config.epochs / run.train_seconds;
        run.peak_memory_mib = config.device == Device::CPU ? peak_rss_mib() : kNaN;
        fmt::print(stderr, "[sweep] {} done: test loss {:.4f} test acc {:.4f} in {} ({:.0f} images/s)\n", label,
                   run.test_loss, run.test_accuracy, format_duration(run.wall_seconds), run.images_per_second);
        result.runs.push_back(std::move(run));
      }
    }
  }
  result.total_seconds = seconds_since(sweep_start);
  result.config = config;

  fmt::print("{}", markdown_table(result));
  std::fflush(stdout);
  write_csv(result);
  write_json(result);
  write_plots(result);
  write_html(result);
  fmt::print(stderr, "[sweep] {} runs in {}; wrote sweep.csv, sweep.json, accuracy.svg, loss.svg, gap.svg, "
                     "test_accuracy.svg and report.html to {}\n", total_runs, format_duration(result.total_seconds),
             config.out.string());
  return kExitOk;
}

}  // namespace dropnet::bench
