// rate_schedule.hpp: a stochastic layer's rate as a function of training progress, for both backends.
//
// One form covers every schedule dropnet offers (include/dropnet/layers.hpp, DropoutSchedule):
//     rate(t) = from                                   t <  begin
//             = from + (to - from) * (t - begin) / (end - begin)   begin <= t < end
//             = to                                     t >= end
// where t is the model's iteration (optimizer steps done, StepHeader::iteration). Constant: from == to.
// Linear ramp over N steps (DropBlock's): begin 0, end N. Early dropout (Liu et al. 2023, dropout for the
// first K steps): from = rate, to = 0, begin = end = K. Late dropout: from 0, to rate.
//
// The value lives in the layer's slot of the step state (StepSlot::rate) and advance_step_state writes
// the next step's value there, so a recorded CUDA step reads the right rate at every replay. The
// interpolation is one explicit fmaf (a single rounding on both backends, whatever the compiler's
// contraction settings), so the CPU and the GPU compute the same float at every step.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/hd.hpp"

namespace dropnet::kernels {

struct RateSchedule {
  float from, to;
  std::uint64_t begin, end;
};

DROPNET_HD RateSchedule constant_rate(float rate) { return RateSchedule{rate, rate, 0, 0}; }

DROPNET_HD float scheduled_rate(const RateSchedule& s, std::uint64_t iteration) {
  if (iteration < s.begin) return s.from;
  if (iteration >= s.end) return s.to;
  const float t = float(iteration - s.begin) / float(s.end - s.begin);
  return fmaf(s.to - s.from, t, s.from);
}

}  // namespace dropnet::kernels
