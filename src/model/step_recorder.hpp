// step_recorder.hpp: runs fit's training steps, on the GPU recording one as a CUDA graph and replaying it.
//
// Every step of fit issues the same ops (Impl::issue_fit_step reads what changes between steps from the
// FitPlan), so after a first ordinary step of the full batch size, which chooses the cuDNN algorithms and
// sizes every scratch buffer, the next one is recorded (Backend::capture) and from then on replayed. A
// last, smaller batch runs op by op. If recording fails, fit goes on op by op and says why in step_mode().
#pragma once

#include <cstdint>
#include <memory>

#include "model/impl.hpp"

namespace dropnet {

class StepRecorder {
 public:
  // `record`: whether to record at all (CUDA and CompileOptions::cuda_graphs).
  StepRecorder(Sequential::Impl& model, std::int64_t batch_size, bool record);
  // Runs one training step of n rows from the plan. Everything the step changes (the step state included)
  // is in device memory, so a replay needs nothing from the host afterwards.
  void run(FitPlan& plan, std::int64_t n);

 private:
  Sequential::Impl& m_;
  std::int64_t batch_size_;  // the epoch's full batch size
  bool record_;
  bool warmed_up_ = false;
  std::unique_ptr<backend::Recording> recording_;
  std::uint64_t recorded_generation_ = 0;  // the model's buffers_generation the recording was made with
};

}  // namespace dropnet
