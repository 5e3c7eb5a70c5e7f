// data_source.hpp: where the programs find CIFAR-10 without --data (dropnet train, evaluate, predict and
// dropnet-bench's sweep: the same data, found the same way).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace dropnet::cli {

struct DataSource {
  std::filesystem::path path;
  std::string description;  // "Using the full CIFAR-10 at ...", for the programs to print
};

// --data as given (an IoError when it does not exist); else the full dataset, else the bundled sample, each
// in the current directory first, then in the source tree. Throws IoError when none is found.
DataSource find_data(const std::optional<std::string>& flag);

}  // namespace dropnet::cli
