// step_recorder.cpp: see step_recorder.hpp.
#include "model/step_recorder.hpp"

#include "core/nvtx.hpp"

#include <fmt/format.h>

#include "dropnet/errors.hpp"

namespace dropnet {

StepRecorder::StepRecorder(Sequential::Impl& model, std::int64_t full_batch, bool record)
    : m_(model), batch_size_(full_batch), record_(record) {}

std::vector<std::pair<Dropout*, std::uint64_t>> StepRecorder::dropout_steps() const {
  std::vector<std::pair<Dropout*, std::uint64_t>> steps;
  for (auto& layer : m_.layers)
    if (auto* d = dynamic_cast<Dropout*>(layer.get())) steps.emplace_back(d, d->step());
  return steps;
}

void StepRecorder::run(FitPlan& plan, std::int64_t n) {
  if (!record_ || n != batch_size_) {  // a last, smaller batch: op by op
    m_.issue_fit_step(plan, batch_size_, n);
    return;
  }
  if (recording_ && recorded_generation_ != m_.buffers_generation) {
    // A callback ran the model on a larger batch, which moved the buffers the recording writes to: record
    // again after an ordinary step.
    recording_.reset();
    warmed_up_ = false;
  }
  if (recording_) {
    // One range for the whole replayed step: the graph's kernels carry no host ranges (nsys
    // --cuda-graph-trace=node shows them one by one; --cuda-graphs off gives every layer its range).
    DROPNET_NVTX_RANGE("step (CUDA graph replay)");
    recording_->replay();
    for (auto& [layer, move] : step_moves_) layer->set_step(layer->step() + move);
    return;
  }
  if (!warmed_up_) {  // chooses the algorithms and grows the scratch buffers the recording will use
    m_.issue_fit_step(plan, batch_size_, n);
    warmed_up_ = true;
    return;
  }
  // Recording issues the step's ops without running them, but the layers' host state moves on as if they
  // ran: that is right for the replay that follows at once, and is undone if recording fails.
  const auto before = dropout_steps();
  auto restore = [&] {
    for (auto& [layer, step] : before) layer->set_step(step);
  };
  try {
    recording_ = m_.backend->capture([&] { m_.issue_fit_step(plan, batch_size_, n); });
  } catch (const DeviceError& e) {
    restore();
    record_ = false;
    m_.step_mode = fmt::format("eager (capture failed: {})", e.what());
    m_.issue_fit_step(plan, batch_size_, n);
    return;
  } catch (...) {
    restore();
    throw;
  }
  if (!recording_) {  // a backend that runs ops as they come (the CPU) records nothing
    restore();
    record_ = false;
    m_.issue_fit_step(plan, batch_size_, n);
    return;
  }
  const auto after = dropout_steps();
  step_moves_.clear();
  for (std::size_t i = 0; i < after.size(); ++i) step_moves_.emplace_back(after[i].first, after[i].second - before[i].second);
  recorded_generation_ = m_.buffers_generation;
  recording_->replay();
  m_.step_mode = "cuda graph";
}

}  // namespace dropnet
