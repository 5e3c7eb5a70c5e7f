// fit_plan.cpp: the training set, row order and alpha table of one fit call (bytes and indices in typed
// device arrays, backend/device_array.hpp).
#include "model/fit_plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "dropnet/errors.hpp"

namespace dropnet {

std::optional<std::vector<std::uint8_t>> exact_bytes(std::span<const float> values) {
  float table[256];
  for (int i = 0; i < 256; ++i) table[i] = float(i) / 255.0f;
  std::vector<std::uint8_t> bytes(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float v = values[i];
    if (!(v >= 0.0f && v <= 1.0f)) return std::nullopt;
    const auto b = static_cast<int>(std::lround(double(v) * 255.0));
    if (table[b] != v) return std::nullopt;
    bytes[i] = static_cast<std::uint8_t>(b);
  }
  return bytes;
}

std::optional<std::vector<std::uint8_t>> one_hot_classes(std::span<const float> labels, std::int64_t classes) {
  if (classes <= 0 || classes > 256 || labels.size() % std::size_t(classes) != 0) return std::nullopt;
  const std::size_t rows = labels.size() / std::size_t(classes);
  std::vector<std::uint8_t> cls(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    int hot = -1;
    for (std::int64_t c = 0; c < classes; ++c) {
      const float v = labels[r * std::size_t(classes) + std::size_t(c)];
      if (v == 1.0f && hot < 0) {
        hot = int(c);
      } else if (v != 0.0f) {
        return std::nullopt;
      }
    }
    if (hot < 0) return std::nullopt;
    cls[r] = static_cast<std::uint8_t>(hot);
  }
  return cls;
}

FitPlan::FitPlan(const Tensor& x, const Tensor& y, std::int64_t rows, std::int64_t steps_per_epoch, Device device)
    : device_(device) {
  if (rows <= 0 || x.rank() < 1 || y.rank() != 2 || x.dim(0) < rows || y.dim(0) < rows)
    throw InvalidArgument(fmt::format("fit plan: {} rows of x {} and y {}", rows, to_string(x.shape()),
                                      to_string(y.shape())));
  data_.rows = rows;
  data_.x_row = x.size() / x.dim(0);
  data_.classes = y.dim(1);
  if (device == Device::CPU && x.device() == Device::CPU && y.device() == Device::CPU) {
    data_.x_float = x.data();
    data_.y_float = y.data();
  } else {
    const Tensor xh = x.device() == Device::CPU ? x.rows(0, rows) : x.rows(0, rows).to(Device::CPU);
    const Tensor yh = y.device() == Device::CPU ? y.rows(0, rows) : y.rows(0, rows).to(Device::CPU);
    if (auto bytes = exact_bytes(xh.host())) {
      x_bytes_ = backend::DeviceArray<std::uint8_t>(std::span<const std::uint8_t>(*bytes), device);
      data_.x_bytes = x_bytes_.data();
    } else {
      x_floats_ = xh.to(device);
      data_.x_float = x_floats_.data();
    }
    if (auto cls = one_hot_classes(yh.host(), data_.classes)) {
      y_classes_ = backend::DeviceArray<std::uint8_t>(std::span<const std::uint8_t>(*cls), device);
      data_.y_class = y_classes_.data();
    } else {
      y_floats_ = yh.to(device);
      data_.y_float = y_floats_.data();
    }
  }
  order_ = backend::DeviceArray<std::int64_t>(static_cast<std::size_t>(rows), device);
  alpha_ = backend::DeviceArray<float>(static_cast<std::size_t>(std::max<std::int64_t>(steps_per_epoch, 1)), device);
}

void FitPlan::start_epoch(std::span<const std::int64_t> order, std::span<const float> alpha_by_batch) {
  if (std::int64_t(order.size()) != data_.rows || alpha_by_batch.size() > alpha_.size())
    throw InvalidArgument(fmt::format("fit plan: an epoch of {} rows and {} alphas for {} rows and {} steps",
                                      order.size(), alpha_by_batch.size(), data_.rows, alpha_.size()));
  // Ordinary (synchronous) host-to-device copies; fit calls this with the model's stream idle (after the
  // epoch's read of the step state), since the previous epoch's steps read both arrays.
  order_.upload(order);
  alpha_.upload(alpha_by_batch);
}

}  // namespace dropnet
