// fit_plan.hpp: what one fit call keeps in the model's device memory so that every training step reads
// the values that change between steps from there (backend/backend.hpp, StepCounters): the training rows,
// the epoch's row order, Adam's alpha for each batch of the epoch and the step counters. With them a step
// is the same sequence of ops every time, which the GPU records once as a CUDA graph and replays.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/tensor.hpp"

namespace dropnet {

// The bytes b with float(b) / 255.0f == v for every value v (as the CIFAR-10 loader makes them), or
// nothing when some value is not of that form; the floats are then kept as they are.
std::optional<std::vector<std::uint8_t>> exact_bytes(std::span<const float> values);
// The class of each row of a (rows, classes) matrix whose rows are all exactly one-hot (one 1.0f, the
// rest 0.0f), or nothing; at most 256 classes.
std::optional<std::vector<std::uint8_t>> one_hot_classes(std::span<const float> labels, std::int64_t classes);

class FitPlan {
 public:
  // The first `rows` rows of x (N, ...) and y (N, classes) as the training set, on `device`; on a GPU the
  // images go as bytes and the labels as classes when that is exact (4x and 40x less memory and traffic),
  // on the CPU the plan reads x and y where they are (they must outlive the plan).
  // `steps_per_epoch` sizes the alpha table.
  FitPlan(const Tensor& x, const Tensor& y, std::int64_t rows, std::int64_t steps_per_epoch, Device device);

  // Before an epoch (with the device idle): its row order (a permutation of [0, rows)), Adam's alpha for
  // each batch index (entries before `first_batch` unused), and counters {iteration, first_batch}.
  void start_epoch(std::span<const std::int64_t> order, std::span<const float> alpha_by_batch,
                   backend::StepCounters counters);

  const backend::DatasetView& data() const noexcept { return data_; }
  const std::int64_t* order() const noexcept;
  const float* alpha_by_batch() const noexcept { return alpha_.data(); }
  backend::StepCounters* counters() noexcept;

 private:
  Device device_;
  Tensor x_storage_, y_storage_;  // compacted rows (bytes in float storage); empty when x, y are used as they are
  Tensor order_;                  // one int64 per row, in float storage
  Tensor alpha_;
  Tensor counters_;               // one StepCounters, in float storage
  Tensor host_staging_;           // host side of the per-epoch uploads
  backend::DatasetView data_;
};

}  // namespace dropnet
