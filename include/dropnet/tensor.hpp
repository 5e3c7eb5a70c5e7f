// tensor.hpp: a float32 array with a shape, owned by one device.
//
// A Tensor is a cheap handle: copying it shares the storage (like a NumPy view). Data never moves between
// devices behind your back: to(Device) and copy_from() are the only transfers, and data() is a pointer
// into the memory of device() (host memory for Device::CPU, GPU memory for Device::CUDA).
// Layout is row-major; images are NHWC (Keras' channels_last).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dropnet/device.hpp"
#include "dropnet/export.hpp"

namespace dropnet {

using Shape = std::vector<std::int64_t>;

// Number of elements of a shape (1 for the empty shape). Throws InvalidArgument on a negative dimension.
DROPNET_EXPORT std::int64_t element_count(const Shape& shape);
// "(2, 3, 4)", as Python prints a tuple.
DROPNET_EXPORT std::string to_string(const Shape& shape);

class DROPNET_EXPORT Tensor {
 public:
  // An empty handle: rank 0, size() 0, data() nullptr.
  Tensor() = default;
  // Zero-filled tensor of `shape` on `device`. Throws InvalidArgument for a negative dimension and
  // DeviceUnavailable for Device::CUDA when cuda_available() is false; DeviceError when the GPU
  // allocation fails.
  explicit Tensor(Shape shape, Device device = Device::CPU);
  // A host tensor holding `values`; values.size() must equal element_count(shape) (else InvalidArgument).
  static Tensor from_vector(Shape shape, std::vector<float> values);

  const Shape& shape() const noexcept { return shape_; }
  int rank() const noexcept { return static_cast<int>(shape_.size()); }
  // Dimension i; negative i counts from the end. Throws InvalidArgument when i is out of range.
  std::int64_t dim(int i) const;
  std::int64_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  Device device() const noexcept { return device_; }

  // Pointer to the first element in device() memory; nullptr for an empty tensor.
  float* data() noexcept;
  const float* data() const noexcept;
  // Host access; throws InvalidArgument unless device() is CPU.
  std::span<float> host();
  std::span<const float> host() const;

  // A copy on `device` (a deep copy even when device() == device).
  Tensor to(Device device) const;
  Tensor clone() const { return to(device_); }
  // Copies the elements of `src` (same element count, any device) into this tensor's storage, and so into
  // every view sharing it. Throws InvalidArgument when the element counts differ.
  void copy_from(const Tensor& src);
  // Copies the elements to a host vector.
  std::vector<float> to_vector() const;
  // Sets every element to `value`.
  void fill(float value);

  // Views sharing this storage. reshaped() keeps the element count; rows(b, e) selects [b, e) along dim 0.
  // Throw InvalidArgument for a different element count, or unless 0 <= b <= e <= dim(0).
  Tensor reshaped(Shape shape) const;
  Tensor rows(std::int64_t begin, std::int64_t end) const;

 private:
  struct Storage;
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  std::int64_t offset_ = 0;
  std::int64_t size_ = 0;
  Device device_ = Device::CPU;
};

}  // namespace dropnet
