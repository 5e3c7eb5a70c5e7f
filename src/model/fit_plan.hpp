// fit_plan.hpp: what one fit call keeps in the model's device memory so that every training step reads
// the values that change between steps from there: the training rows, the epoch's row order and Adam's
// alpha for each batch of the epoch, indexed by the step state's batch (kernels/step_state.hpp, owned by
// the model's backend). With them a step is the same sequence of ops every time, which the GPU records
// once as a CUDA graph and replays.
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

  // Before an epoch (with the device idle): its row order (a permutation of [0, rows)) and Adam's alpha
  // for each batch index (entries before the epoch's first batch unused).
  void start_epoch(std::span<const std::int64_t> order, std::span<const float> alpha_by_batch);

  const backend::DatasetView& data() const noexcept { return data_; }
  const std::int64_t* order() const noexcept { return order_.data(); }
  const float* alpha_by_batch() const noexcept { return alpha_.data(); }

 private:
  Device device_;
  Tensor x_floats_, y_floats_;                     // rows kept as floats on the device (GPU only)
  backend::DeviceArray<std::uint8_t> x_bytes_, y_classes_;  // or compacted (GPU only)
  backend::DeviceArray<std::int64_t> order_;
  backend::DeviceArray<float> alpha_;
  backend::DatasetView data_;
};

}  // namespace dropnet
