// throughput_concurrent.hpp: N seed models training at once (throughput_concurrent.cpp says how it is
// measured); `dropnet-bench throughput --runs N` reports it against one model.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dropnet/device.hpp"
#include "dropnet/model.hpp"
#include "dropnet/tensor.hpp"

namespace dropnet::bench {

// When fit's steps end. Asking for every batch's logs makes fit read each batch's loss back before the
// next, so the time between two batch ends is one whole step, finished on any device.
struct StepClock : Callback {
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> ends;  // [0]: the epoch's start; [k]: the end of step k
  bool wants_batch_logs() const override { return true; }
  void on_epoch_begin(int) override { ends.push_back(Clock::now()); }
  void on_batch_end(int, const Logs&) override { ends.push_back(Clock::now()); }
};

struct ConcurrentSetup {
  int runs = 1;                  // models at once, seeds 1..runs
  unsigned threads_per_run = 0;  // CompileOptions::cpu_threads of each (0: the process default)
  Device device = Device::CPU;
  bool cuda_graphs = true;
  Tensor x, y;                   // warmup + timed steps of records (host tensors)
  std::int64_t batch = 250;
  int warmup = 2;                // each model's first steps, not counted
};

struct ConcurrentThroughput {
  double images_per_second = 0;  // all models together, over the window where every one is warm and stepping
  double window_seconds = 0;
  std::int64_t steps = 0;        // steps (of all models) that ended inside the window
  std::string step_mode;         // Sequential::step_mode() of the first model ("cuda graph", "eager")
};

// Trains setup.runs models at once, each on its own thread, one epoch of fit over x, y; throws the first
// model's error if any failed.
ConcurrentThroughput measure_concurrent_throughput(const ConcurrentSetup& setup);

}  // namespace dropnet::bench
