// fit_plan.cpp: the training set, row order, alpha table and step counters of one fit call.
//
// Raw values (bytes, int64 indices, the counters struct) live in ordinary float Tensors used as storage:
// the backends allocate float arrays, aligned for any of these types, and copy them byte for byte.
#include "model/fit_plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "dropnet/errors.hpp"

namespace dropnet {
namespace {

// A tensor on `device` whose storage holds `bytes` bytes copied from `src`.
Tensor raw_tensor(const void* src, std::size_t bytes, Device device) {
  Tensor host({std::int64_t((bytes + sizeof(float) - 1) / sizeof(float))}, Device::CPU);
  if (bytes != 0) std::memcpy(host.data(), src, bytes);
  return device == Device::CPU ? host : host.to(device);
}

}  // namespace

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
      x_storage_ = raw_tensor(bytes->data(), bytes->size(), device);
      data_.x_bytes = reinterpret_cast<const std::uint8_t*>(x_storage_.data());
    } else {
      x_storage_ = xh.to(device);
      data_.x_float = x_storage_.data();
    }
    if (auto cls = one_hot_classes(yh.host(), data_.classes)) {
      y_storage_ = raw_tensor(cls->data(), cls->size(), device);
      data_.y_class = reinterpret_cast<const std::uint8_t*>(y_storage_.data());
    } else {
      y_storage_ = yh.to(device);
      data_.y_float = y_storage_.data();
    }
  }
  order_ = Tensor({2 * rows}, device);
  alpha_ = Tensor({std::max<std::int64_t>(steps_per_epoch, 1)}, device);
  counters_ = Tensor({std::int64_t(sizeof(backend::StepCounters) / sizeof(float))}, device);
  static_assert(sizeof(backend::StepCounters) % sizeof(float) == 0);
  host_staging_ = Tensor({std::max({order_.size(), alpha_.size(), counters_.size()})}, Device::CPU);
}

const std::int64_t* FitPlan::order() const noexcept { return reinterpret_cast<const std::int64_t*>(order_.data()); }

backend::StepCounters* FitPlan::counters() noexcept {
  return reinterpret_cast<backend::StepCounters*>(counters_.data());
}

void FitPlan::start_epoch(std::span<const std::int64_t> order, std::span<const float> alpha_by_batch,
                          backend::StepCounters counters) {
  if (std::int64_t(order.size()) != data_.rows || std::int64_t(alpha_by_batch.size()) > alpha_.size())
    throw InvalidArgument(fmt::format("fit plan: an epoch of {} rows and {} alphas for {} rows and {} steps",
                                      order.size(), alpha_by_batch.size(), data_.rows, alpha_.size()));
  // Through one host tensor: the copies below are ordinary (synchronous) host-to-device copies.
  auto upload = [&](Tensor& dst, const void* src, std::size_t bytes) {
    std::memcpy(host_staging_.data(), src, bytes);
    const auto floats = std::int64_t((bytes + sizeof(float) - 1) / sizeof(float));
    if (floats == 0) return;
    Tensor part = dst.rows(0, floats);
    part.copy_from(host_staging_.rows(0, floats));
  };
  upload(order_, order.data(), order.size_bytes());
  upload(alpha_, alpha_by_batch.data(), alpha_by_batch.size_bytes());
  upload(counters_, &counters, sizeof counters);
}

}  // namespace dropnet
