// device.cpp: device discovery and naming. The CUDA question is asked once and cached (dlib PR #3060).
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "dropnet/device.hpp"
#include "dropnet/errors.hpp"

#if DROPNET_WITH_CUDA
#include "backend/cuda/cuda_entry.hpp"
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

}  // namespace dropnet
