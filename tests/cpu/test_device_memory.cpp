// device_memory(): what a program checks before it starts several models at once (do N of them fit?).
#include "support/catch.hpp"

#include <vector>

#include "dropnet/device.hpp"
#include "dropnet/errors.hpp"

using namespace dropnet;

TEST_CASE("device_memory on the CPU reports /proc/meminfo's available and total memory", "[device]") {
  const DeviceMemory m = device_memory(Device::CPU);
  CHECK(m.total_bytes > 0);
  CHECK(m.free_bytes > 0);
  CHECK(m.free_bytes <= m.total_bytes);
  // Bytes, not kiB: any machine that runs these tests has more than 64 MiB.
  CHECK(m.total_bytes > (std::size_t{64} << 20));
}

TEST_CASE("device_memory on CUDA without a usable GPU is DeviceUnavailable", "[device]") {
  if (cuda_available()) return;  // the CUDA suite checks it on a GPU (tests/cuda/test_concurrent_models.cpp)
  CHECK_THROWS_AS(device_memory(Device::CUDA), DeviceUnavailable);
}
