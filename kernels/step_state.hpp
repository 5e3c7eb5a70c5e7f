// step_state.hpp: the layout of a model's step state, the one record of where training is. It lives in the
// model's backend memory (device memory on the GPU, backend/step_state.hpp owns it) and is laid out when the
// model is compiled: a header, then one slot per stochastic layer (the dropout family). Ops read it when they run, so a
// training step recorded once (a CUDA graph) reads fresh values at every replay; the step's last op
// (advance_step, kernels/step.cu) moves it on. The host reads it only at progress ticks, epoch ends and
// checkpoints, and keeps no copy of its own.
//
// Plain C++ (no CUDA types), shared by the kernels, both backends and the model.
#pragma once

#include <cstdint>

#include "kernels/hd.hpp"
#include "kernels/rate_schedule.hpp"

namespace dropnet::kernels {

struct StepHeader {
  std::uint64_t iteration;  // optimizer steps done before this one (Adam's t - 1)
  std::int64_t batch;       // this step's batch within the epoch, from 0
  // The running sums of the epoch's training metrics over its batches so far (EpochTotals): each batch
  // adds double(its float sums), in batch order, exactly what the host used to add.
  double loss_sum;
  double correct;
  std::int64_t seen;        // rows seen this epoch
  std::int64_t slots;       // stochastic-layer slots after the header
};

// One stochastic layer's part of the state. A layer's draws of its n-th training call are keyed by
// (seed, n): `step` is that n for the next call, and the op reads it here (no step is passed by value or
// worked out relative to anything). `advances` is 1 for a layer that draws in training (a rate that is
// not always 0) and 0 for one that does not, so that advance_step moves every slot by its own amount.
// `rate` is the layer's rate (GaussianNoise: its stddev) for the coming step, `schedule` evaluated at the
// header's iteration (kernels/rate_schedule.hpp); the ops read it here, so a schedule needs no host work.
struct StepSlot {
  std::uint64_t step;
  std::uint32_t advances;
  float rate;
  RateSchedule schedule;
};

static_assert(sizeof(StepHeader) == 48 && sizeof(StepSlot) == 40, "the step state's layout is fixed");

// What the step's last op does: with `optimizer_step`, iteration + 1 and batch + 1; with `batch_stats`
// (2 floats on the same device: the batch's loss sum and correct count, Backend::softmax_cross_entropy),
// loss_sum, correct and seen take the batch in (seen += rows); every slot's step += its advances (every
// stochastic layer ran one training forward), and every slot's rate becomes its schedule's value at the new
// iteration. predict with dropout moves the slots' steps only.
struct StepAdvance {
  bool optimizer_step = true;
  const float* batch_stats = nullptr;
  std::int64_t rows = 0;
};

// The advance on one header and its slots, for both backends (the CUDA kernel runs it on one thread).
DROPNET_HD void advance_step_state(StepHeader* header, StepSlot* slots, const StepAdvance& a) {
  if (a.optimizer_step) {
    header->iteration += 1;
    header->batch += 1;
  }
  if (a.batch_stats != nullptr) {
    header->loss_sum += double(a.batch_stats[0]);
    header->correct += double(a.batch_stats[1]);
    header->seen += a.rows;
  }
  for (std::int64_t i = 0; i < header->slots; ++i) {
    slots[i].step += slots[i].advances;
    slots[i].rate = scheduled_rate(slots[i].schedule, header->iteration);
  }
}

}  // namespace dropnet::kernels
