// model_commands.cpp: `dropnet evaluate --weights PATH` (test loss and accuracy) and `dropnet predict
// --weights PATH --input FILE` (class probabilities per record, optionally Monte Carlo dropout).
#include "cli/model_commands.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "programs/args.hpp"
#include "programs/data_source.hpp"
#include "programs/seed_model.hpp"
#include "dropnet/checkpoint.hpp"
#include "dropnet/cifar10.hpp"
#include "dropnet/device.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/model.hpp"
#include "metrics/calibration.hpp"

namespace dropnet::cli {
namespace {

const std::array<FlagSpec, 9> kEvaluateFlags = {{
    {"weights", "PATH", "", "Weights or checkpoint written by 'dropnet train --save' (required)."},
    {"data", "DIR|ARCHIVE", "", "CIFAR-10 as for 'dropnet train' (default: the same lookup)."},
    {"test-limit", "N", "", "Evaluate on the first N test records only. Default: all."},
    {"batch-size", "N", "250", "Records per forward pass."},
    {"device", "auto|cpu|cuda", "auto", "Where to run: auto picks CUDA when a GPU is usable, else the CPU."},
    {"verbose", "0|1", "0", "1 shows a progress bar."},
    {"mc-samples", "T", "0",
     "Also print calibration metrics (NLL, Brier, ECE, entropy, AUROC) without dropout and, for T > 0, with "
     "Monte Carlo dropout over T passes (plus mutual information)."},
    {"dropout", "RATE", "", "Dropout rate for --mc-samples. Default: the rate the weights were trained with."},
    {"seed", "N", "1", "Seeds the dropout masks of --mc-samples."},
}};

const std::array<FlagSpec, 8> kPredictFlags = {{
    {"weights", "PATH", "", "Weights or checkpoint written by 'dropnet train --save' (required)."},
    {"input", "FILE", "", "A file of CIFAR-10 records (3073 bytes each: label, then the R, G, B planes), e.g. "
                          "test_batch.bin (required)."},
    {"records", "N", "", "Predict the first N records only. Default: all."},
    {"mc-samples", "N", "0",
     "Monte Carlo dropout: average N passes with dropout active and also print the standard deviation of each "
     "probability over them (0: one pass in inference mode)."},
    {"dropout", "RATE", "",
     "Dropout rate for --mc-samples. Default: the rate the weights were trained with (from the file), else 0.5."},
    {"seed", "N", "1", "Seeds the dropout masks of --mc-samples."},
    {"batch-size", "N", "250", "Records per forward pass."},
    {"device", "auto|cpu|cuda", "auto", "Where to run: auto picks CUDA when a GPU is usable, else the CPU."},
}};

std::string required(const Flags& f, const char* name) {
  if (!f.given(name)) throw UsageError(fmt::format("--{} is required (see --help)", name));
  return f.get_string(name);
}

// The seed model with the weights of `path`; `dropout` overrides the rate the file records.
Sequential load_seed_model(const std::string& path, Device device, std::uint64_t seed, std::optional<double> dropout);

// The same, with the --dropout and --seed flags of evaluate and predict (the masks of --mc-samples).
Sequential load_seed_model(const std::string& path, Device device, const Flags& f) {
  std::optional<double> rate;
  if (f.given("dropout")) {
    rate = f.get_double("dropout");
    f.require(*rate >= 0.0 && *rate <= 1.0, "dropout", "a dropout rate from 0 to 1");
  }
  return load_seed_model(path, device, static_cast<std::uint64_t>(f.get_int("seed", 0, INT64_MAX)), rate);
}

Sequential load_seed_model(const std::string& path, Device device, std::uint64_t seed, std::optional<double> dropout) {
  const std::map<std::string, std::string> meta = read_metadata(path);
  auto setting = [&](const char* key) -> std::optional<std::string> {
    const auto it = meta.find(key);
    return it == meta.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  // The architecture the weights were trained with (the dropout type, the input layer and batch norm decide
  // the layer list); files without these settings were trained with the defaults.
  SeedModelConfig config{.dropout = 0.5, .max_norm = 0.0};
  try {
    if (const auto rates = setting("train.dropout")) set_layer_rates(config, *rates);
    if (const auto type = setting("train.dropout_type")) config.type = parse_dropout_type(*type);
    if (const auto block = setting("train.block_size")) config.block_size = std::strtoll(block->c_str(), nullptr, 10);
    if (const auto input = setting("train.input_dropout")) config.input_dropout = std::strtod(input->c_str(), nullptr);
    if (const auto bn = setting("train.batch_norm")) config.batch_norm = *bn == "on";
  } catch (const InvalidArgument& e) {
    throw DataError(fmt::format("{}: its training settings are damaged: {}", path, e.what()));
  }
  if (dropout) {
    config.dropout = *dropout;
    config.layer_dropout = {};
    if (config.input_dropout > 0) config.input_dropout = *dropout;
  }
  Sequential model = build_seed_model(config);
  model.compile({.loss = "categorical_crossentropy", .device = device, .seed = seed});
  load_weights(model, path);
  return model;
}

}  // namespace

std::string evaluate_help() {
  return fmt::format(
      "Usage: dropnet evaluate --weights PATH [flags]\n\n"
      "Loads weights saved by 'dropnet train --save' into the seed model and reports the loss and accuracy on\n"
      "the CIFAR-10 test set: \"Test loss: X - test accuracy: Y\". With --mc-samples T it also prints NLL, Brier score,\n"
      "ECE (15 bins), mean predictive entropy and the AUROC of entropy for misclassified records, without dropout\n"
      "and (T > 0) with Monte Carlo dropout over T passes, plus the mean mutual information.\n\nFlags:\n{}"
      "  -h, --help              Show this help.\n",
      format_flag_help(kEvaluateFlags));
}

std::string predict_help() {
  return fmt::format(
      "Usage: dropnet predict --weights PATH --input FILE [flags]\n\n"
      "Prints, as CSV on stdout, the class probabilities of each record of a CIFAR-10 format file:\n"
      "  record,label,predicted,airplane,...,truck\n"
      "With --mc-samples N the probabilities are the means over N passes with dropout active (Monte Carlo\n"
      "dropout) and ten more columns airplane_std,...,truck_std give their standard deviation (over the N\n"
      "passes, ddof 0).\n\nFlags:\n{}"
      "  -h, --help              Show this help.\n",
      format_flag_help(kPredictFlags));
}

int run_evaluate(std::span<const std::string> args) {
  const Flags f = parse_flags(args, kEvaluateFlags);
  if (f.help) {
    fmt::print("{}", evaluate_help());
    return kExitOk;
  }
  const std::string weights = required(f, "weights");
  const std::int64_t test_limit = f.given("test-limit") ? f.get_int("test-limit", 1, INT64_MAX) : -1;
  const int batch = static_cast<int>(f.get_int("batch-size", 1, 1'000'000'000));
  const std::string dev = f.get_string("device");
  f.require(dev == "auto" || dev == "cpu" || dev == "cuda", "device", "auto, cpu or cuda");
  const int verbose = static_cast<int>(f.get_int("verbose", 0, 1));

  const bool calibration = f.given("mc-samples");
  const auto samples = static_cast<int>(f.get_int("mc-samples", 0, 1'000'000));

  const Device device = resolve_device(dev);
  Sequential model = load_seed_model(weights, device, f);
  const DataSource source = find_data(f.value("data"));
  fmt::print("{}\n", source.description);
  fmt::print("Device: {} - {}\n", to_string(device), describe(device));
  std::fflush(stdout);
  const cifar10::Dataset data = cifar10::load(source.path, {.train_limit = 1, .test_limit = test_limit});
  const Evaluation e = model.evaluate(data.test.images, data.test.labels, batch, verbose);
  fmt::print("Weights: {}\nTest loss: {:.4f} - test accuracy: {:.4f}\n", weights, e.loss, e.accuracy);
  if (!calibration) return kExitOk;
  // The same metrics as dropnet-bench sweep (src/metrics/calibration.hpp).
  const std::vector<std::int32_t> labels(data.test.classes.begin(), data.test.classes.end());
  constexpr std::size_t k = cifar10::kClasses;
  auto print = [](const char* what, const metrics::PredictionMetrics& m) {
    fmt::print("{}: accuracy {:.4f} - NLL {:.4f} - Brier {:.4f} - ECE {:.4f} - entropy {:.4f}{} - AUROC(entropy) "
               "{:.4f}\n", what, m.accuracy, m.nll, m.brier, m.ece, m.mean_entropy,
               std::isnan(m.mean_mutual_information) ? std::string()
                                                     : fmt::format(" - mutual information {:.4f}", m.mean_mutual_information),
               m.auroc_entropy);
  };
  const std::vector<float> pf = model.predict(data.test.images, {.batch_size = batch}).to_vector();
  print("Without dropout (weight scaling)", metrics::summarize(std::vector<double>(pf.begin(), pf.end()), labels, k));
  if (samples > 0) {
    metrics::McAccumulator acc(labels.size(), k);
    for (int t = 0; t < samples; ++t)
      acc.add(std::span<const float>(model.predict(data.test.images, {.batch_size = batch, .dropout = true}).to_vector()));
    print(fmt::format("MC dropout ({} passes)", samples).c_str(),
          metrics::summarize(acc.mean_probs(), labels, k, acc.mutual_information()));
  }
  return kExitOk;
}

int run_predict(std::span<const std::string> args) {
  const Flags f = parse_flags(args, kPredictFlags);
  if (f.help) {
    fmt::print("{}", predict_help());
    return kExitOk;
  }
  const std::string weights = required(f, "weights");
  const std::string input = required(f, "input");
  const std::int64_t records = f.given("records") ? f.get_int("records", 1, INT64_MAX) : -1;
  const auto samples = static_cast<int>(f.get_int("mc-samples", 0, 1'000'000));
  const int batch = static_cast<int>(f.get_int("batch-size", 1, 1'000'000'000));
  const std::string dev = f.get_string("device");
  f.require(dev == "auto" || dev == "cpu" || dev == "cuda", "device", "auto, cpu or cuda");

  const Device device = resolve_device(dev);
  Sequential model = load_seed_model(weights, device, f);

  std::ifstream in(input, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot open the input file", input));
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw IoError(fmt::format("{}: read failed", input));
  const cifar10::Split split = cifar10::decode(bytes, input, records);
  const std::int64_t n = split.size();

  constexpr int k = cifar10::kClasses;
  std::vector<double> mean(std::size_t(n * k), 0.0), m2(std::size_t(n * k), 0.0);
  const int passes = samples > 0 ? samples : 1;
  for (int s = 0; s < passes; ++s) {  // Welford's running mean and variance
    const std::vector<float> p = model.predict(split.images, {.batch_size = batch, .dropout = samples > 0}).to_vector();
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double delta = p[i] - mean[i];
      mean[i] += delta / (s + 1);
      m2[i] += delta * (p[i] - mean[i]);
    }
  }
  std::string out = "record,label,predicted";
  for (const char* c : cifar10::kClassNames) out += fmt::format(",{}", c);
  if (samples > 0)
    for (const char* c : cifar10::kClassNames) out += fmt::format(",{}_std", c);
  out += '\n';
  for (std::int64_t r = 0; r < n; ++r) {
    const double* row = &mean[std::size_t(r * k)];
    const auto best = std::max_element(row, row + k) - row;
    out += fmt::format("{},{},{}", r, cifar10::kClassNames[split.classes[std::size_t(r)]], cifar10::kClassNames[std::size_t(best)]);
    for (int c = 0; c < k; ++c) out += fmt::format(",{:.6f}", row[c]);
    if (samples > 0)
      for (int c = 0; c < k; ++c) out += fmt::format(",{:.6f}", std::sqrt(m2[std::size_t(r * k + c)] / samples));
    out += '\n';
  }
  std::fputs(out.c_str(), stdout);
  return kExitOk;
}

}  // namespace dropnet::cli
