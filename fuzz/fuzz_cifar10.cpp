// fuzz_cifar10.cpp: libFuzzer target for the CIFAR-10 loader: cifar10::decode on the raw bytes, then
// cifar10::load on them as a cifar-10-binary.tar.gz (gzip, tar headers, GNU long names, pax records,
// member sizes), through a file in /dev/shm (or $TMPDIR). Only dropnet::Error may come out.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "dropnet/cifar10.hpp"
#include "dropnet/errors.hpp"

namespace {

const std::filesystem::path& archive_path() {
  static const std::filesystem::path p = [] {
    const std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    return dir / ("dropnet-fuzz-cifar10-" + std::to_string(::getpid()) + ".tar.gz");
  }();
  return p;
}

struct RemoveAtExit {
  ~RemoveAtExit() { std::remove(archive_path().c_str()); }
} remove_at_exit;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> bytes(data, data + size);
  try {
    const auto split = dropnet::cifar10::decode(bytes, "fuzz.bin", size % 2 ? 1 : -1);
    if (split.images.dim(0) != split.size()) std::abort();
  } catch (const dropnet::Error&) {
  }
  std::FILE* f = std::fopen(archive_path().c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  try {
    const auto d = dropnet::cifar10::load(archive_path(), {.train_limit = 3, .test_limit = -1});
    if (d.train.size() > 3) std::abort();
  } catch (const dropnet::Error&) {
  }
  return 0;
}
