// safetensors.hpp: reading and writing the safetensors format (Hugging Face), strictly.
//
// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// (optionally padded with trailing spaces), then the data buffer; offsets are relative to the buffer and
// the tensors tile it exactly (no gaps, no overlap, nothing past its end), as the reference implementation
// requires. Data is little-endian and row-major.
//
// Files are untrusted: parse() checks every field and bound and throws dropnet::DataError naming the file
// (`what`) and the problem; it never reads outside the bytes it was given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dropnet::io {

// Header lengths above this are rejected before anything is allocated (the reference implementation's
// limit).
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

enum class DType { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

const char* dtype_name(DType dtype) noexcept;
std::size_t dtype_size(DType dtype) noexcept;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte offsets in the data buffer
};

class SafetensorsFile {
 public:
  // Parses a whole file already in memory; `what` (usually the path) prefixes every error.
  static SafetensorsFile parse(std::string bytes, std::string what);
  // Reads and parses `path` (IoError when it cannot be read).
  static SafetensorsFile read(const std::filesystem::path& path);

  const std::string& what() const noexcept { return what_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  // Every tensor, in data-offset order.
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  const TensorInfo* find(std::string_view name) const noexcept;
  // The raw bytes of a tensor of this file.
  std::span<const std::uint8_t> bytes(const TensorInfo& info) const noexcept;

  // Typed copies, checked: `name` must exist with this dtype (and, when given, this shape); DataError
  // otherwise, naming the file, the tensor and what it has.
  std::vector<float> f32(std::string_view name, const std::vector<std::int64_t>* shape = nullptr) const;
  std::vector<double> f64(std::string_view name, const std::vector<std::int64_t>* shape = nullptr) const;
  std::vector<std::int64_t> i64(std::string_view name, const std::vector<std::int64_t>* shape = nullptr) const;
  const TensorInfo& require(std::string_view name, DType dtype, const std::vector<std::int64_t>* shape) const;

 private:
  std::string what_;
  std::string bytes_;  // the whole file
  std::size_t data_begin_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors (copied) and metadata, then writes them atomically (io/atomic_file.hpp).
class SafetensorsWriter {
 public:
  void add(std::string name, DType dtype, std::vector<std::int64_t> shape, std::span<const std::uint8_t> data);
  void add_f32(std::string name, std::vector<std::int64_t> shape, std::span<const float> values);
  void add_f64(std::string name, std::vector<std::int64_t> shape, std::span<const double> values);
  void add_i64(std::string name, std::vector<std::int64_t> shape, std::span<const std::int64_t> values);
  void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

  // The file's bytes (header padded with spaces to a multiple of 8, as the Python writer does).
  std::string serialize() const;
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> data;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace dropnet::io
