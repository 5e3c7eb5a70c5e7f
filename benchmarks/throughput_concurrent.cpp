// throughput_concurrent.cpp: `dropnet-bench throughput --runs N`: N seed models training at once in this
// process, each on its own thread with its own backend context (on a GPU its own stream and CUDA graph, on
// the CPU its own share of the threads), as `dropnet-bench sweep --concurrent N` runs a study. Their total
// images/s is reported against one model with the whole machine, measured first in the same run, so the
// gain of running a study's runs side by side is measured, not assumed.
//
// The window: every model records when each of its steps ended. Throughput is counted from the moment the
// last model finished its warm-up steps to the moment the first model finished its last step, so every
// model is past its warm-up and all N are stepping for the whole window; the steps of all models that end
// inside it, times the batch, over its length, are the total images/s.
#include <algorithm>
#include <chrono>
#include <exception>
#include <latch>
#include <thread>

#include <fmt/format.h>

#include "dropnet/dropnet.hpp"
#include "dropnet/errors.hpp"
#include "programs/seed_model.hpp"
#include "throughput_concurrent.hpp"

namespace dropnet::bench {

ConcurrentThroughput measure_concurrent_throughput(const ConcurrentSetup& setup) {
  using Clock = StepClock::Clock;
  const int runs = setup.runs;
  std::vector<StepClock> clocks(static_cast<std::size_t>(runs));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(runs));
  std::vector<std::string> modes(static_cast<std::size_t>(runs));
  // The models are built and compiled first; the latch then starts their fits together.
  std::latch ready(runs);
  auto train = [&](int i) {
    bool arrived = false;
    try {
      Sequential model = cli::build_seed_model({});
      model.compile({.loss = "categorical_crossentropy", .device = setup.device, .seed = std::uint64_t(i + 1),
                     .cuda_graphs = setup.cuda_graphs, .cpu_threads = setup.threads_per_run});
      arrived = true;
      ready.arrive_and_wait();
      model.fit(setup.x, setup.y,
                {.batch_size = int(setup.batch), .epochs = 1, .verbose = 0, .callbacks = {&clocks[std::size_t(i)]}});
      modes[std::size_t(i)] = model.step_mode();
    } catch (...) {
      errors[std::size_t(i)] = std::current_exception();
      if (!arrived) ready.count_down();  // a model that failed to compile leaves no one waiting
    }
  };
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < runs; ++i) threads.emplace_back(train, i);
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);

  const std::size_t warm = std::size_t(setup.warmup);
  Clock::time_point start = Clock::time_point::min(), end = Clock::time_point::max();
  for (const StepClock& c : clocks) {
    if (c.ends.size() < warm + 2) throw Error("a model finished fewer steps than --warmup + 1");
    start = std::max(start, c.ends[warm]);
    end = std::min(end, c.ends.back());
  }
  std::int64_t steps = 0;
  for (const StepClock& c : clocks)
    for (std::size_t k = warm + 1; k < c.ends.size(); ++k)
      if (c.ends[k] > start && c.ends[k] <= end) ++steps;
  const double window = std::chrono::duration<double>(end - start).count();
  if (!(window > 0) || steps == 0)
    throw Error(fmt::format("the {} models' timed steps did not overlap (one finished before another was warm); "
                            "raise --steps", runs));
  return {.images_per_second = double(steps * setup.batch) / window, .window_seconds = window, .steps = steps,
          .step_mode = modes.front()};
}

}  // namespace dropnet::bench
