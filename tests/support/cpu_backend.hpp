// cpu_backend.hpp: a CPU backend context of the test process's own, for tests that call ops directly
// (a model makes its own context when it is compiled).
#pragma once

#include <memory>

#include "backend/backend.hpp"

namespace dropnet::testing {

inline backend::Backend& cpu_backend() {
  static const std::unique_ptr<backend::Backend> context = backend::make_backend(Device::CPU);
  return *context;
}

}  // namespace dropnet::testing
