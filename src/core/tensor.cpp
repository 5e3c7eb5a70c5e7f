// tensor.cpp: storage ownership and the explicit transfers between devices.
#include "dropnet/tensor.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "backend/memory.hpp"
#include "dropnet/errors.hpp"

namespace dropnet {

std::int64_t element_count(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw InvalidArgument(fmt::format("negative dimension in shape {}", to_string(shape)));
    n *= d;
  }
  return n;
}

std::string to_string(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// Owns one allocation on one device, from the memory layer (backend/memory.hpp), and returns it there.
struct Tensor::Storage {
  Storage(Device d, std::size_t n) : device(d), count(n) {
    if (n) ptr = static_cast<float*>(backend::memory::allocate(d, n * sizeof(float)));
  }
  ~Storage() { backend::memory::release(device, ptr); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  Device device;
  std::size_t count;
  float* ptr = nullptr;
};

Tensor::Tensor(Shape shape, Device device)
    : shape_(std::move(shape)), size_(element_count(shape_)), device_(device) {
  storage_ = std::make_shared<Storage>(device, static_cast<std::size_t>(size_));
  if (size_) backend::memory::fill(storage_->ptr, device, static_cast<std::size_t>(size_), 0.0f);
}

Tensor Tensor::from_vector(Shape shape, std::vector<float> values) {
  Tensor t(std::move(shape), Device::CPU);
  if (static_cast<std::int64_t>(values.size()) != t.size())
    throw InvalidArgument(fmt::format("from_vector: {} values for shape {} ({} elements)", values.size(),
                                      to_string(t.shape()), t.size()));
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

std::int64_t Tensor::dim(int i) const {
  const int r = rank();
  const int j = i < 0 ? i + r : i;
  if (j < 0 || j >= r)
    throw InvalidArgument(fmt::format("dimension {} out of range for shape {}", i, to_string(shape_)));
  return shape_[static_cast<std::size_t>(j)];
}

float* Tensor::data() noexcept { return storage_ && storage_->ptr ? storage_->ptr + offset_ : nullptr; }
const float* Tensor::data() const noexcept {
  return storage_ && storage_->ptr ? storage_->ptr + offset_ : nullptr;
}

std::span<float> Tensor::host() {
  if (device_ != Device::CPU)
    throw InvalidArgument("host(): the tensor lives on the GPU; copy it with to(Device::CPU) first");
  return {data(), static_cast<std::size_t>(size_)};
}
std::span<const float> Tensor::host() const {
  if (device_ != Device::CPU)
    throw InvalidArgument("host(): the tensor lives on the GPU; copy it with to(Device::CPU) first");
  return {data(), static_cast<std::size_t>(size_)};
}

Tensor Tensor::to(Device device) const {
  Tensor out(shape_, device);
  out.copy_from(*this);
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.size() != size_)
    throw InvalidArgument(fmt::format("copy_from: source {} has {} elements, destination {} has {}",
                                      to_string(src.shape()), src.size(), to_string(shape_), size_));
  if (size_ == 0 || src.data() == data()) return;
  backend::memory::copy(data(), device_, src.data(), src.device(), static_cast<std::size_t>(size_) * sizeof(float));
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(static_cast<std::size_t>(size_));
  if (size_) backend::memory::copy(v.data(), Device::CPU, data(), device_, v.size() * sizeof(float));
  return v;
}

void Tensor::fill(float value) {
  if (size_) backend::memory::fill(data(), device_, static_cast<std::size_t>(size_), value);
}

Tensor Tensor::reshaped(Shape shape) const {
  if (element_count(shape) != size_)
    throw InvalidArgument(fmt::format("cannot reshape {} ({} elements) to {}", to_string(shape_), size_,
                                      to_string(shape)));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  if (rank() == 0 || begin < 0 || end < begin || end > shape_[0])
    throw InvalidArgument(fmt::format("rows({}, {}) out of range for shape {}", begin, end, to_string(shape_)));
  const std::int64_t row = shape_[0] ? size_ / shape_[0] : 0;
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.offset_ = offset_ + begin * row;
  t.size_ = (end - begin) * row;
  return t;
}

}  // namespace dropnet
