// sweep.hpp: the dropout-rate sweep's configuration and records, shared by the runner (sweep.cpp) and
// the writers of the table, CSV, JSON, plots and HTML (sweep_report.cpp).
//
// A sweep trains the seed model once per (max-norm, rate, repeat). Every run of repeat r uses the seed
// config.seed + r, so runs that differ only in rate or max-norm start from the same initial weights
// (layer seeds come from the model seed and the layer position) and see the same shuffle order (drawn
// from the model seed and the epoch); sweep.cpp checks the first by hashing the initial weights.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <filesystem>
#include <string>
#include <vector>

#include "dropnet/device.hpp"

namespace dropnet::bench {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct SweepConfig {
  std::vector<double> rates;
  std::vector<double> max_norms;              // one entry (--max-norm) unless --max-norms was given
  bool vary_max_norm = false;                 // --max-norms given: the outputs carry a max_norm column
  std::vector<std::size_t> dropout_layers;    // 0-based indices of the Dropout layers that take the rate
  std::string dropout_layers_text;            // as given ("all", "1,2")
  int repeats = 1;
  int epochs = 55;
  int batch_size = 250;
  std::int64_t limit = -1;                    // training records (-1: all)
  std::int64_t test_limit = -1;
  Device device = Device::CPU;
  std::uint64_t seed = 1;
  double validation_split = 0.2;
  double learning_rate = 1e-3;
  int verbose = 0;
  std::filesystem::path data;
  std::filesystem::path out;
  std::string command_line;
};

struct EpochRecord {
  int epoch = 0;                              // from 0, as Keras' CSVLogger writes it
  double loss = kNaN, accuracy = kNaN;        // training: running means with dropout active
  double val_loss = kNaN, val_accuracy = kNaN;
  double seconds = 0;                         // wall time of the epoch, validation included
  double gap() const { return accuracy - val_accuracy; }
};

struct RunRecord {
  double rate = 0, max_norm = 0;
  int repeat = 0;
  std::uint64_t seed = 0;
  std::uint64_t init_hash = 0;                // FNV-1a of the initial weights (all layers, in order)
  std::vector<EpochRecord> epochs;
  double test_loss = kNaN, test_accuracy = kNaN;
  double wall_seconds = 0;                    // build + fit + test evaluation
  double train_seconds = 0;                   // the training batches only (no validation)
  double images_per_second = kNaN;            // training images / train_seconds
  double peak_memory_mib = kNaN;              // CPU: process peak RSS so far; CUDA: not available (NaN)
  // The epoch (from 0) with the lowest val_loss; -1 without validation data.
  int best_epoch() const;
  double final_gap() const { return epochs.empty() ? kNaN : epochs.back().gap(); }
};

// Mean and sample standard deviation (NaN for fewer than two values) of one quantity over repeats.
struct MeanStd {
  double mean = kNaN, std = kNaN;
  static MeanStd of(const std::vector<double>& values);
};

// One row of the table: the repeats of one (rate, max-norm) pooled.
struct SummaryRow {
  double rate = 0, max_norm = 0;
  int repeats = 0;
  MeanStd test_accuracy, test_loss, train_accuracy, val_accuracy, gap, best_epoch, seconds, images_per_second;
  double peak_memory_mib = kNaN;              // the largest over the repeats
};

struct SweepResult {
  SweepConfig config;
  std::string device_description;             // dropnet::describe(device)
  std::string data_source;
  std::int64_t train_samples = 0, val_samples = 0, test_samples = 0;
  std::vector<RunRecord> runs;
  double total_seconds = 0;

  // The runs of one (rate, max-norm), in repeat order.
  std::vector<const RunRecord*> runs_of(double rate, double max_norm) const;
  std::vector<SummaryRow> summary() const;
};

// Writers (sweep_report.cpp). The table goes to stdout; the files go to config.out, each atomically.
std::string markdown_table(const SweepResult& result);
void write_csv(const SweepResult& result);
void write_json(const SweepResult& result);
void write_plots(const SweepResult& result);  // accuracy.svg loss.svg gap.svg test_accuracy.svg
void write_html(const SweepResult& result);   // report.html, the plots inline (call write_plots first)

// The max-norm as printed: "2", or "none" for 0 (no constraint).
std::string max_norm_text(double max_norm);

}  // namespace dropnet::bench
