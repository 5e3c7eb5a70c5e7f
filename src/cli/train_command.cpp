// train_command.cpp: `dropnet train`, the seed program. Reads and checks every flag before any work,
// finds the data, prints the device and the model summary, fits, then evaluates on the test set.
#include "cli/train_command.hpp"
#include "programs/svg_plot.hpp"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <map>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "programs/args.hpp"
#include "programs/data_source.hpp"
#include "programs/seed_model.hpp"
#include "dropnet/checkpoint.hpp"
#include "dropnet/cifar10.hpp"
#include "dropnet/device.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/model.hpp"

namespace dropnet::cli {
namespace {

namespace fs = std::filesystem;

// The seed program's settings are the defaults.
const std::array<FlagSpec, 24> kTrainFlags = {{
    {"epochs", "N", "55", "Training epochs."},
    {"batch-size", "N", "250", "Records per optimizer step (the last step of an epoch may be smaller)."},
    {"dropout", "RATE[,RATE]", "0.5",
     "Rate of both dropout layers, from 0 to 1: the fraction of units zeroed during training (0: no dropout, "
     "1: all units dropped), or one rate per layer (0.25,0.5: 0.25 after the first conv block, 0.5 after the "
     "second)."},
    {"dropout-type", "TYPE", "dropout",
     "The layer in the dropout positions: dropout (Keras' Dropout), spatial (SpatialDropout2D: whole channels), "
     "gaussian (GaussianDropout: multiplicative N(1, rate/(1-rate)) noise), alpha (AlphaDropout) or dropblock "
     "(DropBlock2D: square blocks of --block-size)."},
    {"block-size", "N", "3", "DropBlock2D's block size (--dropout-type dropblock); at most 6, the second block's maps."},
    {"dropout-schedule", "SCHEDULE", "constant",
     "How the rate changes over training, in epochs: constant; linear:START:E (from START to the rate over the "
     "first E epochs, DropBlock's ramp); early:E (dropout for the first E epochs only, Liu et al. 2023); late:E "
     "(dropout from epoch E+1 on). Applied on the device at every optimizer step."},
    {"input-dropout", "RATE", "0",
     "Also put a layer of --dropout-type with this rate on the input image (0: none). It becomes the model's "
     "first layer, so the initial weights differ from a run without it."},
    {"batch-norm", "on|off", "off",
     "on: a BatchNormalization layer after each Conv2D, the seed model's BN variant: Conv2D(linear, no bias) > "
     "BatchNormalization > ReLU > MaxPooling2D > Dropout, so each block's dropout comes before the next "
     "block's BatchNormalization (Li et al. 2019's \"dropout before BN\" setting, whose variance shift they "
     "study). The layers after the first BatchNormalization sit at other positions, so their initial "
     "weights differ from a run without it."},
    {"max-norm", "VALUE", "2.0",
     "MaxNorm max_value on the kernels of both Conv2D layers and the hidden Dense layer (Keras' default "
     "axis 0). 0 means no constraint."},
    {"validation-split", "FRACTION", "0.2",
     "Fraction of the training records held out for validation, from 0 (none) up to but excluding 1; "
     "the last records, taken before shuffling, as in Keras."},
    {"learning-rate", "LR", "0.001", "Adam learning rate (beta_1 0.9, beta_2 0.999, epsilon 1e-7 as in Keras)."},
    {"seed", "N", "1", "Seeds the initial weights, the dropout masks and the shuffling: the same seed gives the "
                       "same run."},
    {"data", "DIR|ARCHIVE", "",
     "CIFAR-10 in the official binary layout: a directory holding data_batch_1..5.bin and test_batch.bin "
     "(or a cifar-10-batches-bin/ below it), or cifar-10-binary.tar.gz. Default: data/cifar-10-batches-bin "
     "if present, else the bundled sample data/cifar10-sample (each looked up in the current directory, "
     "then in the source tree)."},
    {"limit", "N", "", "Train on the first N training records only (counted across data_batch_1..5 in order; "
                       "the validation split comes out of these). Default: all."},
    {"test-limit", "N", "", "Evaluate on the first N test records only. Default: all."},
    {"device", "auto|cpu|cuda", "auto", "Where to train: auto picks CUDA when a GPU is usable, else the CPU."},
    {"deterministic", "on|off", "off",
     "on: only reproducible GPU algorithms (cuDNN's deterministic convolution and pooling), so a seed gives "
     "the same bits on every run, somewhat slower. The CPU backend is always deterministic."},
    {"cuda-graphs", "on|off", "on",
     "on: on the GPU, record the training step once as a CUDA graph after the first step and replay it "
     "(same results, less launch overhead); off: launch every op of every step. No effect on the CPU."},
    {"verbose", "0|1|2", "1",
     "Progress of fit and evaluate, as Keras: 0 silent, 1 a progress bar, 2 one line per epoch."},
    {"save", "PATH", "",
     "Write a resumable checkpoint (safetensors) to PATH at the end of every epoch, and the weights with the "
     "best val_loss so far to PATH with .best before the extension (run.safetensors -> run.best.safetensors), "
     "as Keras' ModelCheckpoint(save_best_only=True). Writes are atomic."},
    {"resume", "PATH", "",
     "Continue the run saved in checkpoint PATH up to --epochs, exactly as if it had not stopped. The "
     "checkpoint's settings (batch size, dropout rates, type, block size, schedule and input dropout, batch norm, max-norm, "
     "validation split, learning rate, seed, limit) are "
     "used; giving one of those flags with another value is an error."},
    {"log", "FILE", "",
     "Append one CSV row per epoch (Keras' CSVLogger: epoch,accuracy,loss,val_accuracy,val_loss), flushed as "
     "training goes. With --resume the file is first rewritten to the checkpoint's history."},
    {"log-steps", "FILE", "",
     "Write one CSV row per training step (epoch,batch,loss,accuracy: the epoch's running means after that "
     "batch, as the progress bar shows them), flushed as training goes."},
    {"plot", "FILE.svg", "",
     "When training ends, draw the accuracy and loss curves (training and validation, per epoch) as a "
     "self-contained SVG."},
}};

// The settings a checkpoint records and a resume must reuse: metadata key, flag.
constexpr std::array<std::pair<const char*, const char*>, 12> kResumeSettings = {{
    {"train.batch_size", "batch-size"},
    {"train.dropout", "dropout"},
    {"train.dropout_type", "dropout-type"},
    {"train.block_size", "block-size"},
    {"train.dropout_schedule", "dropout-schedule"},
    {"train.input_dropout", "input-dropout"},
    {"train.batch_norm", "batch-norm"},
    {"train.max_norm", "max-norm"},
    {"train.validation_split", "validation-split"},
    {"train.learning_rate", "learning-rate"},
    {"train.seed", "seed"},
    {"train.limit", "limit"},
}};

struct TrainConfig {
  int epochs = 0;
  int batch_size = 0;
  SeedModelConfig model;         // dropout rates, type, block size, input dropout (max_norm below)
  DropoutSchedule schedule;      // in epochs, as given; fit's is in steps (schedule_in_steps)
  double max_norm = 0;
  double validation_split = 0;
  double learning_rate = 0;
  std::uint64_t seed = 0;
  bool deterministic = false;
  bool cuda_graphs = true;
  std::optional<std::string> data;
  std::int64_t limit = -1;       // -1: all
  std::int64_t test_limit = -1;  // -1: all
  std::string device;
  int verbose = 1;
  std::optional<std::string> save, resume, log, log_steps, plot;
};

// The dropout flags, which a resume also reads back from a checkpoint's metadata (as strings).
void set_dropout_setting(TrainConfig& c, std::string_view flag, const std::string& value) {
  try {
    if (flag == "dropout") {
      set_layer_rates(c.model, value);
    } else if (flag == "dropout-type") {
      c.model.type = parse_dropout_type(value);
    } else if (flag == "block-size") {
      char* end = nullptr;
      const long long b = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || b < 1 || b > 6) throw InvalidArgument("a block size from 1 to 6");
      c.model.block_size = b;
    } else if (flag == "dropout-schedule") {
      c.schedule = parse_schedule(value);
    } else if (flag == "input-dropout") {
      char* end = nullptr;
      const double r = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(r >= 0.0 && r <= 1.0)) throw InvalidArgument("a dropout rate from 0 to 1");
      c.model.input_dropout = r;
    } else if (flag == "batch-norm") {
      if (value != "on" && value != "off") throw InvalidArgument("on or off");
      c.model.batch_norm = value == "on";
    }
  } catch (const InvalidArgument& e) {
    if (flag == "dropout-schedule")
      throw UsageError(fmt::format("--dropout-schedule {}: expected constant, linear:START:EPOCHS, early:EPOCHS or "
                                   "late:EPOCHS (START a rate from 0 to 1, EPOCHS a whole number)", value));
    throw UsageError(fmt::format("--{} {}: {}", flag, value, e.what()));
  }
}

void apply_dropout_settings(const Flags& f, TrainConfig& c) {
  for (const char* flag : {"dropout", "dropout-type", "block-size", "dropout-schedule", "input-dropout", "batch-norm"})
    set_dropout_setting(c, flag, f.get_string(flag));
}

// The schedule in optimizer steps: E epochs are E * steps_per_epoch steps.
DropoutSchedule schedule_in_steps(DropoutSchedule s, std::int64_t steps_per_epoch) {
  s.steps *= static_cast<std::uint64_t>(steps_per_epoch);
  return s;
}

// Every value checked here, before any work, so that a typo never costs a data load.
TrainConfig read_config(const Flags& f) {
  TrainConfig c;
  c.epochs = static_cast<int>(f.get_int("epochs", 1, 1'000'000));
  c.batch_size = static_cast<int>(f.get_int("batch-size", 1, 1'000'000'000));
  apply_dropout_settings(f, c);
  c.max_norm = f.get_double("max-norm");
  f.require(c.max_norm >= 0.0, "max-norm", "a max_value > 0, or 0 for no constraint");
  c.validation_split = f.get_double("validation-split");
  f.require(c.validation_split >= 0.0 && c.validation_split < 1.0, "validation-split",
            "a fraction from 0 up to but excluding 1");
  c.learning_rate = f.get_double("learning-rate");
  f.require(c.learning_rate > 0.0, "learning-rate", "a learning rate > 0");
  c.seed = static_cast<std::uint64_t>(f.get_int("seed", 0, INT64_MAX));
  const std::string det = f.get_string("deterministic");
  f.require(det == "on" || det == "off", "deterministic", "on or off");
  c.deterministic = det == "on";
  const std::string graphs = f.get_string("cuda-graphs");
  f.require(graphs == "on" || graphs == "off", "cuda-graphs", "on or off");
  c.cuda_graphs = graphs == "on";
  c.data = f.value("data");
  if (f.given("limit")) c.limit = f.get_int("limit", 1, INT64_MAX);
  if (f.given("test-limit")) c.test_limit = f.get_int("test-limit", 1, INT64_MAX);
  c.device = f.get_string("device");
  f.require(c.device == "auto" || c.device == "cpu" || c.device == "cuda", "device", "auto, cpu or cuda");
  c.verbose = static_cast<int>(f.get_int("verbose", 0, 2));
  c.save = f.value("save");
  c.resume = f.value("resume");
  c.log = f.value("log");
  c.log_steps = f.value("log-steps");
  c.plot = f.value("plot");
  return c;
}

}  // namespace

std::string train_help() {
  return fmt::format(
      "Usage: dropnet train [flags]\n"
      "\n"
      "Trains the seed model, the Keras dropout convnet, on CIFAR-10 and reports the test loss and accuracy:\n"
      "  Conv2D(64, 3x3, relu) > MaxPooling2D(2x2) > Dropout > Conv2D(64, 3x3, relu) > MaxPooling2D(2x2) >\n"
      "  Dropout > Flatten > Dense(256, relu) > Dense(10, softmax); he_uniform kernels with MaxNorm,\n"
      "  Adam, categorical cross-entropy, accuracy. Every default below is the seed program's.\n"
      "  --batch-norm on: Conv2D(64, 3x3) > BatchNormalization > ReLU > MaxPooling2D(2x2) > Dropout, twice.\n"
      "\n"
      "Flags (--flag VALUE or --flag=VALUE):\n"
      "{}"
      "  -h, --help              Show this help.\n"
      "\n"
      "Output: the data source, the device, the model summary, per-epoch progress (loss, accuracy, val_loss,\n"
      "val_accuracy) and, last, \"Test loss: X - test accuracy: Y\".\n"
      "\n"
      "Example: dropnet train --device cpu --epochs 5 --limit 10000 --data data/cifar-10-batches-bin\n"
      "\n"
      "Exit codes:\n"
      "  0  success\n"
      "  1  runtime error: unreadable or damaged data (missing file, size not a multiple of 3073 bytes,\n"
      "     label above 9), a damaged or mismatched checkpoint, a NaN or infinite loss (training stops\n"
      "     at once, keeping the last good checkpoint), CUDA requested but unavailable, or another failure\n"
      "     inside the library\n"
      "  2  usage error: unknown command or flag, missing or malformed value, value out of range\n"
      "  130  interrupted by Ctrl-C: the current step finished and a resumable checkpoint was saved (to --save\n"
      "     PATH, else dropnet-interrupted.safetensors); a second Ctrl-C exits at once without saving\n"
      "Errors are one line on stderr: \"dropnet: error: <what was wrong and what was expected>\".\n",
      format_flag_help(kTrainFlags));
}

namespace {

// --- checkpoint settings -------------------------------------------------------------------------------

std::string setting_value(const TrainConfig& c, std::string_view key) {
  if (key == "train.batch_size") return fmt::format("{}", c.batch_size);
  if (key == "train.dropout") return layer_rates_text(c.model);
  if (key == "train.dropout_type") return to_string(c.model.type);
  if (key == "train.block_size") return fmt::format("{}", c.model.block_size);
  if (key == "train.dropout_schedule") return to_string(c.schedule);
  if (key == "train.input_dropout") return fmt::format("{}", c.model.input_dropout);
  if (key == "train.batch_norm") return c.model.batch_norm ? "on" : "off";
  if (key == "train.max_norm") return fmt::format("{}", c.max_norm);
  if (key == "train.validation_split") return fmt::format("{}", c.validation_split);
  if (key == "train.learning_rate") return fmt::format("{}", c.learning_rate);
  if (key == "train.seed") return fmt::format("{}", c.seed);
  if (key == "train.limit") return fmt::format("{}", c.limit);
  throw std::logic_error(fmt::format("unknown setting {}", key));
}

// The run's settings, stored in every checkpoint so that --resume can reuse them.
std::map<std::string, std::string> settings_metadata(const TrainConfig& c, std::int64_t records) {
  std::map<std::string, std::string> m;
  for (const auto& [key, flag] : kResumeSettings) m[key] = setting_value(c, key);
  m["train.records"] = std::to_string(records);
  return m;
}

// A flag's default, as --help shows it.
std::string flag_default(std::string_view flag) {
  for (const FlagSpec& spec : kTrainFlags)
    if (spec.name == flag) return spec.default_value;
  throw std::logic_error(fmt::format("no flag {}", flag));
}

// Whether a setting is one of the model's flags set_dropout_setting reads (the dropout family's and
// --batch-norm, which checkpoints from before them lack: theirs were the defaults).
bool is_dropout_setting(std::string_view key) {
  return key == "train.dropout" || key == "train.dropout_type" || key == "train.block_size" ||
         key == "train.dropout_schedule" || key == "train.input_dropout" || key == "train.batch_norm";
}

// --resume: the checkpoint's settings replace the defaults; an explicit flag must agree with them.
void adopt_checkpoint_settings(const Flags& f, TrainConfig& c, const TrainingState& s, const std::string& path) {
  for (const auto& [key, flag] : kResumeSettings) {
    const auto it = s.metadata.find(key);
    // Checkpoints from before the dropout family have no type, block, schedule or input dropout: theirs
    // were the flags' defaults, which an explicit flag must then agree with as with any recorded value.
    const bool dropout_family = std::string_view(key) != "train.dropout" && is_dropout_setting(key);
    if (it == s.metadata.end() && !dropout_family)
      throw DataError(fmt::format("{}: checkpoint has no {} setting; was it written by 'dropnet train --save'?", path, key));
    const std::string v = it != s.metadata.end() ? it->second : flag_default(flag);
    if (f.given(flag)) {
      if (setting_value(c, key) != v)
        throw UsageError(fmt::format("--{} {} differs from the checkpoint's {} ({}); an exact resume needs the same "
                                     "settings: leave --{} out", flag, f.get_string(flag), v, path, flag));
      continue;
    }
    if (is_dropout_setting(key)) {
      try {
        set_dropout_setting(c, flag, v);
      } catch (const UsageError& e) {
        throw DataError(fmt::format("{}: checkpoint setting {} is '{}': {}", path, key, v, e.what()));
      }
      continue;
    }
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || errno != 0)
      throw DataError(fmt::format("{}: checkpoint setting {} is '{}', not a number", path, key, v));
    if (key == std::string_view("train.batch_size")) c.batch_size = static_cast<int>(d);
    else if (key == std::string_view("train.max_norm")) c.max_norm = d;
    else if (key == std::string_view("train.validation_split")) c.validation_split = d;
    else if (key == std::string_view("train.learning_rate")) c.learning_rate = d;
    else if (key == std::string_view("train.seed")) c.seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (key == std::string_view("train.limit")) c.limit = std::strtoll(v.c_str(), nullptr, 10);
  }
  if (c.seed != s.seed)
    throw DataError(fmt::format("{}: checkpoint seed {} disagrees with its train.seed setting {}", path, s.seed, c.seed));
}

// "0.5", or "spatial 0.25,0.5, schedule early:3 epochs, input 0.2" when the flags say more.
std::string dropout_text(const TrainConfig& c) {
  std::string s = c.model.type == DropoutType::Standard ? "" : std::string(to_string(c.model.type)) + " ";
  s += layer_rates_text(c.model);
  if (c.model.type == DropoutType::DropBlock) s += fmt::format(" (block {})", c.model.block_size);
  if (c.schedule.kind != DropoutSchedule::Kind::Constant) s += fmt::format(", schedule {} epochs", to_string(c.schedule));
  if (c.model.input_dropout > 0) s += fmt::format(", input {}", c.model.input_dropout);
  if (c.model.batch_norm) s += ", batch norm";
  return s;
}

// "run.safetensors" -> "run.best.safetensors"; "run" -> "run.best".
fs::path best_path(const fs::path& path) {
  fs::path best = path;
  if (path.has_extension()) best.replace_extension(".best" + path.extension().string());
  else best += ".best";
  return best;
}

// --- Ctrl-C ----------------------------------------------------------------------------------------------

volatile std::sig_atomic_t g_interrupts = 0;

extern "C" void on_sigint(int) {
  if (g_interrupts != 0) {
    static const char again[] = "\ndropnet: interrupted again: exiting now without saving\n";
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, again, sizeof again - 1);
    ::_exit(130);
  }
  g_interrupts = 1;
  static const char first[] =
      "\ndropnet: interrupt: finishing the current step and saving a checkpoint (Ctrl-C again to exit at once)\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, first, sizeof first - 1);
}

// Installs on_sigint for the lifetime of the guard (the training loop), then restores the old handler.
class SigintGuard {
 public:
  SigintGuard() {
    g_interrupts = 0;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &old_);
  }
  ~SigintGuard() { ::sigaction(SIGINT, &old_, nullptr); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction old_ {};
};

struct Interrupted {
  std::string message;
};

// --log-steps: one CSV row per training step, written as it ends.
class StepLogger : public Callback {
 public:
  explicit StepLogger(const std::string& path) : out_(path, std::ios::trunc) {
    if (!out_) throw IoError("cannot write the step log " + path);
    out_ << "epoch,batch,loss,accuracy\n" << std::flush;
  }
  void on_epoch_begin(int epoch) override { epoch_ = epoch; }
  bool wants_batch_logs() const override { return true; }
  void on_batch_end(int batch, const Logs& logs) override {
    out_ << fmt::format("{},{},{:.9g},{:.9g}\n", epoch_, batch, logs.at("loss"), logs.at("accuracy")) << std::flush;
  }

 private:
  std::ofstream out_;
  int epoch_ = 0;
};

// After every step (and epoch): on a pending Ctrl-C, saves a resumable checkpoint and ends training.
class InterruptCheckpoint : public Callback {
 public:
  InterruptCheckpoint(fs::path path, std::map<std::string, std::string> metadata, const ModelCheckpoint* last)
      : path_(std::move(path)), metadata_(std::move(metadata)), last_(last) {}
  void on_train_begin(Sequential& model) override { model_ = &model; }
  void on_batch_end(int, const Logs&) override { check(false); }
  void on_epoch_end(int epoch, const Logs&) override {
    // The epoch-end checkpoint of --save (if that is where we save) already holds this state.
    check(last_ != nullptr && last_->path() == path_ && last_->last_saved_epoch() == epoch);
  }

 private:
  void check(bool already_saved) {
    if (g_interrupts == 0) return;
    TrainingState s = training_state(*model_);
    s.metadata = metadata_;
    if (!already_saved) save_checkpoint(*model_, path_, s);
    throw Interrupted{fmt::format("interrupted at epoch {}, {}: saved a resumable checkpoint to {}; continue with "
                                  "'dropnet train --resume {}' (and the same --data, --epochs)",
                                  s.epoch + 1, s.step == 0 ? std::string("before its first batch")
                                                           : fmt::format("after batch {}", s.step),
                                  path_.string(), path_.string())};
  }
  fs::path path_;
  std::map<std::string, std::string> metadata_;
  const ModelCheckpoint* last_;
  Sequential* model_ = nullptr;
};

constexpr const char* kDefaultInterruptPath = "dropnet-interrupted.safetensors";

}  // namespace

int run_train(std::span<const std::string> args) {
  const Flags flags = parse_flags(args, kTrainFlags);
  if (flags.help) {
    fmt::print("{}", train_help());
    return kExitOk;
  }
  TrainConfig c = read_config(flags);
  std::optional<TrainingState> resumed;
  if (c.resume) {
    resumed = read_training_state(*c.resume);
    adopt_checkpoint_settings(flags, c, *resumed, *c.resume);
    if (resumed->epoch > c.epochs || (resumed->epoch == c.epochs && resumed->step > 0))
      throw UsageError(fmt::format("--epochs {}: the checkpoint {} is already at epoch {}; pass a larger --epochs "
                                   "to train further", c.epochs, *c.resume, resumed->epoch + (resumed->step > 0)));
  }

  const Device device = resolve_device(c.device);
  const DataSource source = find_data(c.data);
  fmt::print("{}\n", source.description);
  fmt::print("Device: {} - {}\n", to_string(device), describe(device));
  std::fflush(stdout);

  const cifar10::Dataset data = cifar10::load(source.path, {.train_limit = c.limit, .test_limit = c.test_limit});
  const std::int64_t n = data.train.size();
  if (resumed) {
    const auto it = resumed->metadata.find("train.records");
    if (it != resumed->metadata.end() && it->second != std::to_string(n))
      throw DataError(fmt::format("{}: the checkpoint was trained on {} records but {} has {} (with --limit {}); "
                                  "resume on the same data", *c.resume, it->second, source.path.string(), n, c.limit));
  }

  const auto n_train = static_cast<std::int64_t>(double(n) * (1.0 - c.validation_split));  // as fit splits
  SeedModelConfig model_config = c.model;
  model_config.max_norm = c.max_norm;
  model_config.schedule = schedule_in_steps(c.schedule, (n_train + c.batch_size - 1) / c.batch_size);
  Sequential model = build_seed_model(model_config);
  model.compile({.optimizer = Adam{.learning_rate = c.learning_rate}, .loss = "categorical_crossentropy",
                 .device = device, .seed = c.seed,
                 .deterministic = c.deterministic, .cuda_graphs = c.cuda_graphs});
  fmt::print("{}\n", model.summary());

  fmt::print("Data: {} training records ({} for training, {} held out for validation), {} test records\n", n,
             n_train, n - n_train, data.test.size());
  fmt::print("Settings: epochs {}, batch size {}, dropout {}, max-norm {}, validation split {}, learning rate {}, "
             "seed {}\n",
             c.epochs, c.batch_size, dropout_text(c), c.max_norm > 0 ? fmt::format("{}", c.max_norm) : "off",
             c.validation_split, c.learning_rate, c.seed);

  FitOptions fit;
  fit.batch_size = c.batch_size;
  fit.epochs = c.epochs;
  fit.verbose = c.verbose;
  fit.validation_split = c.validation_split;
  if (resumed) {
    const TrainingState s = load_checkpoint(model, *c.resume);
    resume_from(fit, s);
    fmt::print("Resuming from {}: epoch {}{}, {} optimizer steps done\n", *c.resume, s.epoch + 1,
               s.step ? fmt::format(" after batch {}", s.step) : std::string(" from its start"), s.iterations);
  }
  std::fflush(stdout);

  // Callbacks: divergence check, checkpoints, CSV log, Ctrl-C.
  const std::map<std::string, std::string> metadata = settings_metadata(c, n);
  TerminateOnNaN nan_stop;
  std::optional<ModelCheckpoint> last, best;
  std::optional<CSVLogger> log;
  fit.callbacks.push_back(&nan_stop);
  if (c.save) {
    last.emplace(*c.save, ModelCheckpointOptions{.metadata = metadata});
    std::optional<double> best_so_far;
    if (resumed)
      if (const auto it = resumed->history.history.find("val_loss"); it != resumed->history.history.end())
        for (double v : it->second)
          if (std::isfinite(v) && (!best_so_far || v < *best_so_far)) best_so_far = v;
    best.emplace(best_path(*c.save), ModelCheckpointOptions{.monitor = "val_loss", .save_best_only = true,
                                                            .save_weights_only = true,
                                                            .initial_value_threshold = best_so_far,
                                                            .metadata = metadata});
    fit.callbacks.push_back(&*last);
    fit.callbacks.push_back(&*best);
  }
  if (c.log) {
    log.emplace(*c.log, resumed.has_value());
    fit.callbacks.push_back(&*log);
  }
  std::optional<StepLogger> step_log;
  if (c.log_steps) {
    step_log.emplace(*c.log_steps);
    fit.callbacks.push_back(&*step_log);
  }
  const fs::path interrupt_path = c.save ? fs::path(*c.save) : fs::path(kDefaultInterruptPath);
  InterruptCheckpoint interrupt(interrupt_path, metadata, last ? &*last : nullptr);
  fit.callbacks.push_back(&interrupt);

  const auto start = std::chrono::steady_clock::now();
  History history;
  try {
    SigintGuard sigint;
    history = model.fit(data.train.images, data.train.labels, fit);
  } catch (const Interrupted& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dropnet: %s\n", e.message.c_str());
    return kExitInterrupted;
  } catch (const TrainingDiverged& e) {
    std::string where = "no checkpoint was saved (pass --save PATH to keep one)";
    if (last && last->last_saved_epoch())
      where = fmt::format("the last good checkpoint is {} (end of epoch {})", last->path().string(),
                          *last->last_saved_epoch() + 1);
    else if (c.resume)
      where = fmt::format("the last good checkpoint is {}", *c.resume);
    throw TrainingDiverged(fmt::format("{}; {}", e.what(), where), e.epoch, e.batch);
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  const int trained = c.epochs - fit.initial_epoch;
  fmt::print("Trained {} epoch{} in {:.1f} s\n", trained, trained == 1 ? "" : "s", took.count());
  if (model.device() == Device::CUDA) fmt::print("Training step: {}\n", model.step_mode());
  if (c.save) {
    fmt::print("Saved the last checkpoint to {}", *c.save);
    if (best->last_saved_epoch()) fmt::print(" and the best weights (val_loss {:.4f}) to {}", *best->best(), best->path().string());
    else if (best->skipped()) fmt::print(" (no validation split: no best weights file)");
    fmt::print("\n");
  }

  if (c.plot) {
    plot::write_history_plot(*c.plot, history, fmt::format("seed model, dropout {}, max-norm {}", dropout_text(c), c.max_norm));
    fmt::print("Wrote the training curves to {}\n", *c.plot);
  }

  const Evaluation test = model.evaluate(data.test.images, data.test.labels, c.batch_size, c.verbose);
  fmt::print("Test loss: {:.4f} - test accuracy: {:.4f}\n", test.loss, test.accuracy);
  return kExitOk;
}

}  // namespace dropnet::cli
