// step_recorder.cpp: see step_recorder.hpp.
#include "model/step_recorder.hpp"

#include "core/nvtx.hpp"

#include <fmt/format.h>

#include "dropnet/errors.hpp"

namespace dropnet {

StepRecorder::StepRecorder(Sequential::Impl& model, std::int64_t full_batch, bool record)
    : m_(model), batch_size_(full_batch), record_(record) {}

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
    return;
  }
  if (!warmed_up_) {  // chooses the algorithms and grows the scratch buffers the recording will use
    m_.issue_fit_step(plan, batch_size_, n);
    warmed_up_ = true;
    return;
  }
  // Recording issues the step's ops without running them; the step state moves only when they run (the
  // replay that follows at once), so a failed recording leaves nothing to undo.
  try {
    recording_ = m_.backend->capture([&] { m_.issue_fit_step(plan, batch_size_, n); });
  } catch (const DeviceError& e) {
    record_ = false;
    m_.step_mode = fmt::format("eager (capture failed: {})", e.what());
    m_.issue_fit_step(plan, batch_size_, n);
    return;
  }
  if (!recording_) {  // a backend that runs ops as they come (the CPU) records nothing
    record_ = false;
    m_.issue_fit_step(plan, batch_size_, n);
    return;
  }
  recorded_generation_ = m_.buffers_generation;
  recording_->replay();
  m_.step_mode = "cuda graph";
}

}  // namespace dropnet
