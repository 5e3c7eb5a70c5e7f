// data_source.cpp: see data_source.hpp.
#include "programs/data_source.hpp"

#include <array>

#include <fmt/format.h>

#include "dropnet/errors.hpp"

namespace dropnet::cli {

DataSource find_data(const std::optional<std::string>& flag) {
  namespace fs = std::filesystem;
  if (flag) {
    // Checked here, before anything says "Using CIFAR-10 from ...".
    std::error_code exists_error;
    if (!fs::exists(*flag, exists_error))
      throw IoError(fmt::format("--data {}: no such file or directory (expected a CIFAR-10 folder or "
                                "cifar-10-binary.tar.gz)", *flag));
    return {*flag, fmt::format("Using CIFAR-10 from {}", *flag)};
  }
  const std::array<fs::path, 2> roots = {fs::path("."), fs::path(DROPNET_SOURCE_DIR)};
  std::error_code ec;
  for (const fs::path& root : roots) {
    const fs::path full = root / "data" / "cifar-10-batches-bin";
    if (fs::is_directory(full, ec)) return {full, fmt::format("Using the full CIFAR-10 at {}", full.lexically_normal().string())};
  }
  for (const fs::path& root : roots) {
    const fs::path sample = root / "data" / "cifar10-sample";
    if (fs::is_directory(sample, ec))
      return {sample, fmt::format("Using the bundled CIFAR-10 sample at {} (a few hundred records, for smoke "
                                  "tests); pass --data DIR for the full dataset",
                                  sample.lexically_normal().string())};
  }
  throw IoError(fmt::format("no CIFAR-10 data found: neither data/cifar-10-batches-bin nor data/cifar10-sample "
                            "exists in the current directory or in {}; pass --data DIR|ARCHIVE",
                            DROPNET_SOURCE_DIR));
}

}  // namespace dropnet::cli
