// train_command.cpp: `dropnet train`, the seed program. Reads and checks every flag before any work,
// finds the data, prints the device and the model summary, fits, then evaluates on the test set.
#include "cli/train_command.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "cli/args.hpp"
#include "cli/seed_model.hpp"
#include "dropnet/cifar10.hpp"
#include "dropnet/device.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/model.hpp"

namespace dropnet::cli {
namespace {

namespace fs = std::filesystem;

// The seed program's settings are the defaults.
const std::array<FlagSpec, 12> kTrainFlags = {{
    {"epochs", "N", "55", "Training epochs."},
    {"batch-size", "N", "250", "Records per optimizer step (the last step of an epoch may be smaller)."},
    {"dropout", "RATE", "0.5",
     "Rate of both Dropout layers, from 0 to 1: the fraction of units zeroed during training "
     "(0: no dropout, 1: all units dropped)."},
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
    {"verbose", "0|1|2", "1",
     "Progress of fit and evaluate, as Keras: 0 silent, 1 a progress bar, 2 one line per epoch."},
}};

struct TrainConfig {
  int epochs = 0;
  int batch_size = 0;
  double dropout = 0;
  double max_norm = 0;
  double validation_split = 0;
  double learning_rate = 0;
  std::uint64_t seed = 0;
  std::optional<std::string> data;
  std::int64_t limit = -1;       // -1: all
  std::int64_t test_limit = -1;  // -1: all
  std::string device;
  int verbose = 1;
};

// Every value checked here, before any work, so that a typo never costs a data load.
TrainConfig read_config(const Flags& f) {
  TrainConfig c;
  c.epochs = static_cast<int>(f.get_int("epochs", 1, 1'000'000));
  c.batch_size = static_cast<int>(f.get_int("batch-size", 1, 1'000'000'000));
  c.dropout = f.get_double("dropout");
  f.require(c.dropout >= 0.0 && c.dropout <= 1.0, "dropout", "a dropout rate from 0 to 1");
  c.max_norm = f.get_double("max-norm");
  f.require(c.max_norm >= 0.0, "max-norm", "a max_value > 0, or 0 for no constraint");
  c.validation_split = f.get_double("validation-split");
  f.require(c.validation_split >= 0.0 && c.validation_split < 1.0, "validation-split",
            "a fraction from 0 up to but excluding 1");
  c.learning_rate = f.get_double("learning-rate");
  f.require(c.learning_rate > 0.0, "learning-rate", "a learning rate > 0");
  c.seed = static_cast<std::uint64_t>(f.get_int("seed", 0, INT64_MAX));
  c.data = f.value("data");
  if (f.given("limit")) c.limit = f.get_int("limit", 1, INT64_MAX);
  if (f.given("test-limit")) c.test_limit = f.get_int("test-limit", 1, INT64_MAX);
  c.device = f.get_string("device");
  f.require(c.device == "auto" || c.device == "cpu" || c.device == "cuda", "device", "auto, cpu or cuda");
  c.verbose = static_cast<int>(f.get_int("verbose", 0, 2));
  return c;
}

struct DataSource {
  fs::path path;
  std::string description;
};

// --data as given; else the full dataset, else the bundled sample, each in the current directory first,
// then in the source tree.
DataSource find_data(const std::optional<std::string>& flag) {
  if (flag) return {*flag, fmt::format("Using CIFAR-10 from {}", *flag)};
  const std::array<fs::path, 2> roots = {fs::path("."), fs::path(DROPNET_SOURCE_DIR)};
  std::error_code ec;
  for (const fs::path& root : roots) {
    const fs::path full = root / "data" / "cifar-10-batches-bin";
    if (fs::is_directory(full, ec)) return {full, fmt::format("Using the full CIFAR-10 at {}", full.lexically_normal().string())};
  }
  for (const fs::path& root : roots) {
    const fs::path sample = root / "data" / "cifar10-sample";
    if (fs::is_directory(sample, ec))
      return {sample, fmt::format("Using the bundled CIFAR-10 sample at {} (a few hundred records, for smoke "
                                  "tests); pass --data DIR for the full dataset",
                                  sample.lexically_normal().string())};
  }
  throw IoError(fmt::format("no CIFAR-10 data found: neither data/cifar-10-batches-bin nor data/cifar10-sample "
                            "exists in the current directory or in {}; pass --data DIR|ARCHIVE",
                            DROPNET_SOURCE_DIR));
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
      "     label above 9), CUDA requested but unavailable, or another failure inside the library\n"
      "  2  usage error: unknown command or flag, missing or malformed value, value out of range\n"
      "Errors are one line on stderr: \"dropnet: error: <what was wrong and what was expected>\".\n",
      format_flag_help(kTrainFlags));
}

int run_train(std::span<const std::string> args) {
  const Flags flags = parse_flags(args, kTrainFlags);
  if (flags.help) {
    fmt::print("{}", train_help());
    return kExitOk;
  }
  const TrainConfig c = read_config(flags);

  const Device device = resolve_device(c.device);
  const DataSource source = find_data(c.data);
  fmt::print("{}\n", source.description);
  fmt::print("Device: {} - {}\n", to_string(device), describe(device));
  std::fflush(stdout);

  const cifar10::Dataset data = cifar10::load(source.path, {.train_limit = c.limit, .test_limit = c.test_limit});

  Sequential model = build_seed_model({.dropout = c.dropout, .max_norm = c.max_norm});
  model.compile({.optimizer = Adam{.learning_rate = c.learning_rate}, .device = device, .seed = c.seed});
  fmt::print("{}\n", model.summary());

  const std::int64_t n = data.train.size();
  const auto n_train = static_cast<std::int64_t>(double(n) * (1.0 - c.validation_split));  // as fit splits
  fmt::print("Data: {} training records ({} for training, {} held out for validation), {} test records\n", n,
             n_train, n - n_train, data.test.size());
  fmt::print("Settings: epochs {}, batch size {}, dropout {}, max-norm {}, validation split {}, learning rate {}, "
             "seed {}\n",
             c.epochs, c.batch_size, c.dropout, c.max_norm > 0 ? fmt::format("{}", c.max_norm) : "off",
             c.validation_split, c.learning_rate, c.seed);
  std::fflush(stdout);

  const auto start = std::chrono::steady_clock::now();
  FitOptions fit;
  fit.batch_size = c.batch_size;
  fit.epochs = c.epochs;
  fit.verbose = c.verbose;
  fit.validation_split = c.validation_split;
  model.fit(data.train.images, data.train.labels, fit);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  fmt::print("Trained {} epoch{} in {:.1f} s\n", c.epochs, c.epochs == 1 ? "" : "s", took.count());

  const Evaluation test = model.evaluate(data.test.images, data.test.labels, c.batch_size, c.verbose);
  fmt::print("Test loss: {:.4f} - test accuracy: {:.4f}\n", test.loss, test.accuracy);
  return kExitOk;
}

}  // namespace dropnet::cli
