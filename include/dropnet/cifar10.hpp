// cifar10.hpp: the CIFAR-10 dataset in its official binary layout.
//
// Each record is 3073 bytes: a label byte (0-9) then 3072 pixel bytes, the red, green and blue 32x32
// planes, row-major. Train records are data_batch_1.bin ... data_batch_5.bin, test records test_batch.bin,
// either in a directory or inside cifar-10-binary.tar.gz (under cifar-10-batches-bin/).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dropnet/export.hpp"
#include "dropnet/tensor.hpp"

namespace dropnet::cifar10 {

inline constexpr int kHeight = 32, kWidth = 32, kChannels = 3, kClasses = 10;
inline constexpr std::int64_t kRecordBytes = 1 + kHeight * kWidth * kChannels;  // 3073
inline constexpr std::array<const char*, kClasses> kClassNames = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

// One split, as host (Device::CPU) tensors ready for Sequential::fit and evaluate.
struct Split {
  Tensor images;                    // (N, 32, 32, 3) float32 in [0, 1] (byte / 255), NHWC
  Tensor labels;                    // (N, 10) one-hot, or (N) class indices with LoadOptions::sparse_labels
  std::vector<std::uint8_t> classes;  // (N) class indices
  std::int64_t size() const noexcept { return static_cast<std::int64_t>(classes.size()); }
};

struct Dataset {
  Split train;
  Split test;
  std::string source;  // the directory or archive it came from
};

// A limit keeps the first N records (training records counted across data_batch_1..5 in order); -1 keeps
// all, and so does a limit above the available count. 0 or below -1 is an InvalidArgument. Every record of
// every file is still validated, so a limit never hides a damaged file.
struct LoadOptions {
  std::int64_t train_limit = -1;  // keep the first N training records (-1: all)
  std::int64_t test_limit = -1;   // keep the first N test records (-1: all)
  // Split::labels as (N) float class indices 0-9, CIFAR-10's own format, for the loss
  // "sparse_categorical_crossentropy", instead of (N, 10) one-hot rows.
  bool sparse_labels = false;
};

// Loads from a directory holding the six batch files (or a cifar-10-batches-bin/ below it), or from
// cifar-10-binary.tar.gz. Throws IoError for a missing file and DataError, naming the file and the
// problem, for a size that is not a multiple of 3073 bytes or a label byte above 9.
DROPNET_EXPORT Dataset load(const std::filesystem::path& source, const LoadOptions& options = {});

// The (N) float tensor of class indices (what sparse_labels gives), e.g. from Split::classes.
DROPNET_EXPORT Tensor sparse_labels(const std::vector<std::uint8_t>& classes);

// Decodes records already in memory; `what` names them in errors. Same checks as load() (an empty buffer
// is a DataError too) and the same meaning of `limit`.
DROPNET_EXPORT Split decode(const std::vector<std::uint8_t>& bytes, const std::string& what,
                            std::int64_t limit = -1);

}  // namespace dropnet::cifar10
