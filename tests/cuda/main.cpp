// main.cpp: the CUDA suite's runner. Without a usable GPU it exits 77, which CTest reports as skipped
// (SKIP_RETURN_CODE 77), before Catch2 starts: no test here can run on the CPU alone. Listing the tests
// (--list-tests, --list-tags, --help) works without a GPU.
#define DROPNET_CATCH_SESSION
#include "support/catch.hpp"

#include <cstdio>
#include <string_view>

#include "dropnet/device.hpp"

namespace {
bool only_lists(int argc, char* argv[]) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("--list") || a == "-l" || a == "-t" || a == "-h" || a == "--help" || a == "-?") return true;
  }
  return false;
}
}  // namespace

int main(int argc, char* argv[]) {
  if (only_lists(argc, argv)) return Catch::Session().run(argc, argv);
  if (!dropnet::cuda_available()) {
    std::fprintf(stderr, "dropnet_cuda_tests: no CUDA device (or DROPNET_DISABLE_CUDA is set): skipped\n");
    return 77;
  }
  std::fprintf(stderr, "dropnet_cuda_tests on %s\n", dropnet::describe(dropnet::Device::CUDA).c_str());
  return Catch::Session().run(argc, argv);
}
