// cifar10.cpp: the CIFAR-10 binary loader.
//
// Every batch file is validated completely (size, then every label byte) even when a limit keeps only
// its first records: a damaged copy of the dataset is reported the first time it is used, whatever
// --limit says. Sizes of all six files are checked before any of them is read, so a truncated file fails
// in milliseconds rather than after reading 180 MB.
#include "dropnet/cifar10.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <system_error>

#include "data/tar_gz.hpp"
#include "dropnet/errors.hpp"
#include "kernels/data_math.hpp"

namespace dropnet::cifar10 {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kPlane = kHeight * kWidth;         // 1024 pixels per colour plane
constexpr std::int64_t kPixelBytes = kPlane * kChannels;  // 3072
constexpr const char* kSubdir = "cifar-10-batches-bin";
constexpr std::array<const char*, 5> kTrainFiles = {
    "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
constexpr const char* kTestFile = "test_batch.bin";
constexpr const char* kExpectedFiles = "data_batch_1.bin ... data_batch_5.bin and test_batch.bin";

void check_limit(std::int64_t limit, const char* name) {
  if (limit == -1 || limit >= 1) return;
  throw InvalidArgument(
      fmt::format("cifar10: {} is {}; expected -1 (all records) or a positive record count", name, limit));
}

// Records in a batch of `bytes` bytes; DataError unless it is a positive whole number of records.
std::int64_t record_count(std::uint64_t bytes, const std::string& what) {
  if (bytes == 0) {
    throw DataError(
        fmt::format("{}: file is empty; expected {}-byte records (a label byte and {} pixel bytes)", what,
                    kRecordBytes, kPixelBytes));
  }
  const auto record = static_cast<std::uint64_t>(kRecordBytes);
  if (bytes % record != 0) {
    throw DataError(
        fmt::format("{}: size {} bytes is not a multiple of the {}-byte record ({} whole records and "
                    "{} bytes left over); the file is truncated or is not a CIFAR-10 binary batch",
                    what, bytes, kRecordBytes, bytes / record, bytes % record));
  }
  return static_cast<std::int64_t>(bytes / record);
}

void check_labels(const std::uint8_t* records, std::int64_t count, const std::string& what) {
  for (std::int64_t r = 0; r < count; ++r) {
    const std::uint8_t label = records[r * kRecordBytes];
    if (label >= kClasses) {
      throw DataError(
          fmt::format("{}: record {} has label byte {}; expected 0-9 (records counted from 0; this "
                      "one starts at byte {})",
                      what, r, label, r * kRecordBytes));
    }
  }
}

Split make_split(std::int64_t n) {
  Split split;
  split.images = Tensor({n, kHeight, kWidth, kChannels}, Device::CPU);
  split.labels = Tensor({n, kClasses}, Device::CPU);
  split.classes.resize(static_cast<std::size_t>(n));
  return split;
}

// Writes `count` validated records into rows [first, first + count) of `split`: the planar record
// (R plane, G plane, B plane, each row-major) becomes NHWC, bytes become floats by kernels/data_math.hpp's
// unit_from_byte (the expression both backends' gather_batch use), through a table of its 256 values.
void decode_into(const std::uint8_t* records, std::int64_t count, Split& split, std::int64_t first) {
  static const std::array<float, 256> scale = [] {
    std::array<float, 256> table{};
    for (int i = 0; i < 256; ++i) table[static_cast<std::size_t>(i)] = kernels::unit_from_byte(static_cast<std::uint8_t>(i));
    return table;
  }();
  float* images = split.images.host().data() + first * kPixelBytes;
  float* labels = split.labels.host().data() + first * kClasses;
  for (std::int64_t r = 0; r < count; ++r) {
    const std::uint8_t* record = records + r * kRecordBytes;
    const std::uint8_t label = record[0];
    split.classes[static_cast<std::size_t>(first + r)] = label;
    labels[r * kClasses + label] = 1.0f;  // the tensor starts zero-filled
    const std::uint8_t* planes = record + 1;
    float* image = images + r * kPixelBytes;
    for (std::int64_t c = 0; c < kChannels; ++c) {
      const std::uint8_t* plane = planes + c * kPlane;
      for (std::int64_t p = 0; p < kPlane; ++p) image[p * kChannels + c] = scale[plane[p]];
    }
  }
}

std::vector<std::uint8_t> read_file(const fs::path& path, const std::string& what) {
  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw IoError(fmt::format("{}: cannot open: {}", what, std::strerror(errno)));
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw IoError(fmt::format("{}: cannot read its size: {}", what, ec.message()));
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  const std::size_t got = std::fread(bytes.data(), 1, bytes.size(), file.get());
  if (got != bytes.size()) {
    throw IoError(fmt::format("{}: read failed after {} of {} bytes: {}", what, got, bytes.size(),
                              std::ferror(file.get()) ? std::strerror(errno) : "file shrank while reading"));
  }
  return bytes;
}

// One batch file: its name for errors, where its bytes come from, and its record count (checked from
// its size before anything is read).
struct Part {
  std::string what;
  fs::path path;                                   // read when needed (directory source)...
  std::optional<std::vector<std::uint8_t>> bytes;  // ...or already in memory (archive source)
  std::int64_t records = 0;
};

Part file_part(const fs::path& dir, const char* name) {
  const fs::path path = dir / name;
  const std::string what = path.string();
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec && status.type() != fs::file_type::not_found) {
    throw IoError(fmt::format("{}: cannot access: {}", what, ec.message()));
  }
  if (!fs::exists(status)) {
    throw IoError(
        fmt::format("{}: file is missing; a CIFAR-10 directory needs all six of {}", what, kExpectedFiles));
  }
  if (!fs::is_regular_file(status)) throw IoError(fmt::format("{}: not a regular file", what));
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw IoError(fmt::format("{}: cannot read its size: {}", what, ec.message()));
  return Part{what, path, std::nullopt, record_count(size, what)};
}

// Decodes the first `limit` records (all for -1) of the parts, in order, validating every part fully.
Split assemble(std::vector<Part>& parts, std::int64_t limit) {
  std::int64_t total = 0;
  for (const Part& part : parts) total += part.records;
  const std::int64_t keep = limit < 0 ? total : std::min(limit, total);
  Split split = make_split(keep);
  std::int64_t at = 0;
  for (Part& part : parts) {
    std::vector<std::uint8_t> bytes = part.bytes ? std::move(*part.bytes) : read_file(part.path, part.what);
    part.bytes.reset();
    if (record_count(bytes.size(), part.what) != part.records) {
      throw IoError(fmt::format("{}: file changed size while being loaded", part.what));
    }
    check_labels(bytes.data(), part.records, part.what);
    const std::int64_t take = std::min(part.records, keep - at);
    decode_into(bytes.data(), take, split, at);
    at += take;
  }
  return split;
}

// The directory that holds the batch files: `dir` itself when any of them is there, else its
// cifar-10-batches-bin/ (the layout the official archive unpacks to).
fs::path batch_directory(const fs::path& dir) {
  std::error_code ec;
  auto has = [&](const fs::path& p) { return fs::exists(p, ec); };
  if (has(dir / kTestFile)) return dir;
  for (const char* name : kTrainFiles) {
    if (has(dir / name)) return dir;
  }
  if (fs::is_directory(dir / kSubdir, ec)) return dir / kSubdir;
  throw IoError(
      fmt::format("{}: no CIFAR-10 batch files here or in {}; expected {} (data/download_cifar10.sh "
                  "fetches them)",
                  dir.string(), (dir / kSubdir).string(), kExpectedFiles));
}

Dataset load_directory(const fs::path& source, const LoadOptions& options) {
  const fs::path dir = batch_directory(source);
  // Every file is located and size-checked before any is read: fail fast, use nothing partial.
  std::vector<Part> train;
  for (const char* name : kTrainFiles) train.push_back(file_part(dir, name));
  std::vector<Part> test;
  test.push_back(file_part(dir, kTestFile));
  Dataset dataset;
  dataset.train = assemble(train, options.train_limit);
  dataset.test = assemble(test, options.test_limit);
  dataset.source = dir.string();
  return dataset;
}

Dataset load_archive(const fs::path& archive, const LoadOptions& options) {
  const std::string prefix = std::string(kSubdir) + "/";
  auto base_name = [&](std::string_view name) -> std::string_view {
    // The official layout is cifar-10-batches-bin/<file>; files at the top level are accepted too.
    if (name.substr(0, prefix.size()) == prefix) name.remove_prefix(prefix.size());
    return name;
  };
  auto is_batch = [&](std::string_view base) {
    return base == kTestFile || std::find_if(kTrainFiles.begin(), kTrainFiles.end(),
                                             [&](const char* f) { return base == f; }) != kTrainFiles.end();
  };
  std::vector<data::TarMember> members =
      data::read_tar_gz(archive, [&](std::string_view name) { return is_batch(base_name(name)); });

  auto part = [&](const char* file) {
    // A name present twice: the later copy wins, as when tar extracts the archive.
    auto it = std::find_if(members.rbegin(), members.rend(),
                           [&](const data::TarMember& m) { return base_name(m.name) == file; });
    if (it == members.rend()) {
      throw IoError(
          fmt::format("{}: archive has no member {}{}; expected the official cifar-10-binary.tar.gz "
                      "holding {}",
                      archive.string(), prefix, file, kExpectedFiles));
    }
    const std::string what = fmt::format("{} (member {})", archive.string(), it->name);
    const std::int64_t records = record_count(it->bytes.size(), what);
    return Part{what, {}, std::move(it->bytes), records};
  };
  std::vector<Part> train;
  for (const char* name : kTrainFiles) train.push_back(part(name));
  std::vector<Part> test;
  test.push_back(part(kTestFile));
  members.clear();
  Dataset dataset;
  dataset.train = assemble(train, options.train_limit);
  dataset.test = assemble(test, options.test_limit);
  dataset.source = archive.string();
  return dataset;
}

}  // namespace

Tensor sparse_labels(const std::vector<std::uint8_t>& classes) {
  std::vector<float> values(classes.begin(), classes.end());
  return Tensor::from_vector({static_cast<std::int64_t>(classes.size())}, values);
}

Dataset load(const std::filesystem::path& source, const LoadOptions& options) {
  check_limit(options.train_limit, "train_limit");
  check_limit(options.test_limit, "test_limit");
  std::error_code ec;
  const fs::file_status status = fs::status(source, ec);
  if (ec && status.type() != fs::file_type::not_found) {
    throw IoError(fmt::format("{}: cannot access: {}", source.string(), ec.message()));
  }
  if (!fs::exists(status)) {
    throw IoError(
        fmt::format("{}: no such file or directory; expected a directory holding {} (or a {}/ below "
                    "it) or cifar-10-binary.tar.gz",
                    source.string(), kExpectedFiles, kSubdir));
  }
  if (fs::is_directory(status) || fs::is_regular_file(status)) {
    Dataset dataset = fs::is_directory(status) ? load_directory(source, options) : load_archive(source, options);
    if (options.sparse_labels) {
      dataset.train.labels = sparse_labels(dataset.train.classes);
      dataset.test.labels = sparse_labels(dataset.test.classes);
    }
    return dataset;
  }
  throw IoError(
      fmt::format("{}: neither a directory nor a regular file; expected a CIFAR-10 directory or "
                  "cifar-10-binary.tar.gz",
                  source.string()));
}

Split decode(const std::vector<std::uint8_t>& bytes, const std::string& what, std::int64_t limit) {
  check_limit(limit, "limit");
  const std::int64_t records = record_count(bytes.size(), what);
  check_labels(bytes.data(), records, what);
  const std::int64_t keep = limit < 0 ? records : std::min(limit, records);
  Split split = make_split(keep);
  decode_into(bytes.data(), keep, split, 0);
  return split;
}

}  // namespace dropnet::cifar10
