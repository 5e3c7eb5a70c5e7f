// device_array.hpp: a typed array in one device's memory, for storage that is not floats (row indices,
// image bytes, class bytes, the step state). Tensors are float arrays with shapes; this is the plain
// buffer beside them, so no float tensor is used as raw memory. Both sit on the memory layer (memory.hpp). Copies to and from the host are
// synchronous (complete on return), but do not wait for work a model's stream has queued: memory.hpp says
// who synchronizes.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <type_traits>

#include "backend/memory.hpp"
#include "dropnet/device.hpp"

namespace dropnet::backend {

template <typename T>
class DeviceArray {
  static_assert(std::is_trivially_copyable_v<T>, "a DeviceArray holds plain values");

 public:
  DeviceArray() = default;
  // `count` values on `device`, contents undefined until written.
  DeviceArray(std::size_t count, Device device) : count_(count), device_(device) {
    if (count != 0)
      storage_ = std::shared_ptr<void>(memory::allocate(device, count * sizeof(T)),
                                       [device](void* p) { memory::release(device, p); });
  }
  // A copy of `values` on `device`.
  DeviceArray(std::span<const T> values, Device device) : DeviceArray(values.size(), device) { upload(values); }

  T* data() noexcept { return static_cast<T*>(storage_.get()); }
  const T* data() const noexcept { return static_cast<const T*>(storage_.get()); }
  std::size_t size() const noexcept { return count_; }
  Device device() const noexcept { return device_; }

  // values -> elements [offset, offset + values.size()).
  void upload(std::span<const T> values, std::size_t offset = 0) {
    if (!values.empty())
      memory::copy(data() + offset, device_, values.data(), Device::CPU, values.size_bytes());
  }
  // elements [offset, offset + out.size()) -> out.
  void download(std::span<T> out, std::size_t offset = 0) const {
    if (!out.empty()) memory::copy(out.data(), Device::CPU, data() + offset, device_, out.size_bytes());
  }

 private:
  std::shared_ptr<void> storage_;
  std::size_t count_ = 0;
  Device device_ = Device::CPU;
};

}  // namespace dropnet::backend
