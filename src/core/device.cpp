// device.cpp: device discovery, naming and free memory. The CUDA question is asked once and cached (dlib
// PR #3060). Of CUDA it reaches only the discovery layer (backend/cuda/cuda_device.hpp), not the backend.
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "dropnet/device.hpp"
#include "dropnet/errors.hpp"

#if DROPNET_WITH_CUDA
#include "backend/cuda/cuda_device.hpp"
#endif

namespace dropnet {

bool cuda_compiled() noexcept { return DROPNET_WITH_CUDA != 0; }

bool cuda_available() noexcept {
#if DROPNET_WITH_CUDA
  static const bool available = [] {
    const char* off = std::getenv("DROPNET_DISABLE_CUDA");
    if (off != nullptr && *off != '\0' && std::string(off) != "0") return false;
    return backend::cuda::device_present();
  }();
  return available;
#else
  return false;
#endif
}

Device resolve_device(std::string_view name) {
  if (name == "cpu") return Device::CPU;
  if (name == "auto") return cuda_available() ? Device::CUDA : Device::CPU;
  if (name == "cuda") {
    if (!cuda_compiled())
      throw DeviceUnavailable("device 'cuda' requested, but this dropnet was built without CUDA "
                              "(rebuild with -DDROPNET_CUDA=ON)");
    if (!cuda_available())
      throw DeviceUnavailable("device 'cuda' requested, but no CUDA GPU is visible "
                              "(or DROPNET_DISABLE_CUDA is set); use --device cpu or auto");
    return Device::CUDA;
  }
  throw InvalidArgument(fmt::format("unknown device '{}'; expected auto, cpu or cuda", name));
}

std::string_view to_string(Device device) noexcept { return device == Device::CUDA ? "cuda" : "cpu"; }

namespace {
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}
}  // namespace

std::string describe(Device device) {
  if (device == Device::CUDA) {
#if DROPNET_WITH_CUDA
    return backend::cuda::describe_device();
#else
    throw DeviceUnavailable("this dropnet was built without CUDA");
#endif
  }
  return fmt::format("{} ({} hardware threads)", cpu_model_name(), std::thread::hardware_concurrency());
}

namespace {
// MemAvailable and MemTotal of /proc/meminfo ("MemTotal:       16318164 kB"); zeros where it is missing.
DeviceMemory host_memory() {
  DeviceMemory m;
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::size_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    if (key == "MemTotal:") m.total_bytes = kib * 1024;
    if (key == "MemAvailable:") m.free_bytes = kib * 1024;
    std::getline(in, unit);  // " kB", or nothing
  }
  return m;
}
}  // namespace

DeviceMemory device_memory(Device device) {
  if (device == Device::CPU) return host_memory();
#if DROPNET_WITH_CUDA
  if (!cuda_available()) throw DeviceUnavailable("no CUDA GPU is visible (or DROPNET_DISABLE_CUDA is set)");
  const backend::cuda::MemoryInfo info = backend::cuda::memory_info();
  return {info.free_bytes, info.total_bytes};
#else
  throw DeviceUnavailable("this dropnet was built without CUDA");
#endif
}

}  // namespace dropnet
