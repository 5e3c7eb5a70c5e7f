// progress.hpp: Keras-style progress output for fit and evaluate.
//   verbose 1:  " 12/32 ━━━━━━━╺━━━━━━━━━━━━ 4s 380ms/step - accuracy: 0.1900 - loss: 2.2000"
//               redrawn in place on a terminal; elsewhere only the finished line is printed (as Keras)
//   verbose 2:  "32/32 - 12s - 380ms/step - accuracy: 0.2108 - loss: 2.1282 - val_accuracy: ..."
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "dropnet/model.hpp"

namespace dropnet {

// Keras' number format: 4 decimals, or scientific notation below 1e-3.
std::string format_metric(double value);
// "accuracy: 0.2108 - loss: 2.1282 - ..." in Keras' (alphabetical) order.
std::string format_logs(const Logs& logs);
// "7s", "2:05", "1:02:03".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  ProgressBar(std::FILE* out, int verbose, std::int64_t steps);
  // Whether update(done) would redraw (fit reads the running metrics from the device only then).
  bool due(std::int64_t done) const;
  // After batch `done` (1-based) with the running logs.
  void update(std::int64_t done, const Logs& logs);
  // The epoch's final line, with validation metrics when present.
  void finish(const Logs& logs);

 private:
  std::string bar(std::int64_t done) const;
  std::string step_time(double seconds, std::int64_t done) const;
  std::FILE* out_;
  int verbose_;
  std::int64_t steps_;
  bool dynamic_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace dropnet
