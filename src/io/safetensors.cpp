// safetensors.cpp: the strict safetensors reader and the atomic writer (see safetensors.hpp).
#include "io/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "io/atomic_file.hpp"
#include "io/json.hpp"

namespace dropnet::io {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so must the host be");

namespace {

struct DTypeName {
  DType dtype;
  const char* name;
  std::size_t size;
};
constexpr DTypeName kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},     {DType::I8, "I8", 1},     {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::F8_E4M3, "F8_E4M3", 1}, {DType::I16, "I16", 2}, {DType::U16, "U16", 2}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I32, "I32", 4},   {DType::U32, "U32", 4},   {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},   {DType::I64, "I64", 8},   {DType::U64, "U64", 8},
};

// Throws the DataError of a malformed file.
struct Fail {
  const std::string& what;
  [[noreturn]] void operator()(const std::string& problem) const {
    throw DataError(fmt::format("{}: not a valid safetensors file: {}", what, problem));
  }
};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses one tensor's entry {"dtype", "shape", "data_offsets"}; `fail` throws with the file's name.
TensorInfo tensor_info(const std::string& name, const json::Value& v, std::uint64_t buffer_size, const Fail& fail) {
  const std::string q = json::quote(name);
  if (!v.is_object()) fail(fmt::format("tensor {} is {}, expected an object with dtype, shape and data_offsets", q,
                                       json::kind_name(v.kind)));
  TensorInfo info;
  info.name = name;
  for (const auto& [key, _] : v.members)
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail(fmt::format("tensor {} has an unknown field {}; expected only dtype, shape and data_offsets", q,
                       json::quote(key)));

  const json::Value* dtype = v.find("dtype");
  if (dtype == nullptr) fail(fmt::format("tensor {} has no dtype", q));
  if (dtype->kind != json::Value::Kind::String) fail(fmt::format("tensor {}: dtype is {}, expected a string", q, json::kind_name(dtype->kind)));
  const auto* known = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                   [&](const DTypeName& d) { return dtype->text == d.name; });
  if (known == std::end(kDTypes))
    fail(fmt::format("tensor {} has unknown dtype {}; expected one of BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, "
                     "F16, BF16, I32, U32, F32, F64, I64, U64", q, json::quote(dtype->text)));
  info.dtype = known->dtype;

  const json::Value* shape = v.find("shape");
  if (shape == nullptr) fail(fmt::format("tensor {} has no shape", q));
  if (shape->kind != json::Value::Kind::Array) fail(fmt::format("tensor {}: shape is {}, expected an array of integers", q, json::kind_name(shape->kind)));
  if (shape->items.size() > 64) fail(fmt::format("tensor {}: shape has {} dimensions, more than 64", q, shape->items.size()));
  // The element count, computed with overflow checks (a hostile shape can claim 2^200 elements).
  std::uint64_t bytes = known->size;
  bool too_big = false;
  for (const json::Value& d : shape->items) {
    const auto n = d.as_u64();
    if (!n || *n > std::uint64_t(INT64_MAX))
      fail(fmt::format("tensor {}: shape entry {} is not a non-negative integer", q,
                       d.kind == json::Value::Kind::Number ? d.text : json::kind_name(d.kind)));
    info.shape.push_back(static_cast<std::int64_t>(*n));
    if (!too_big && __builtin_mul_overflow(bytes, *n, &bytes)) too_big = true;
  }
  // A zero dimension makes the size 0 whatever came before it.
  if (std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end()) bytes = 0, too_big = false;

  const json::Value* offsets = v.find("data_offsets");
  if (offsets == nullptr) fail(fmt::format("tensor {} has no data_offsets", q));
  if (offsets->kind != json::Value::Kind::Array || offsets->items.size() != 2)
    fail(fmt::format("tensor {}: data_offsets must be an array [begin, end]", q));
  const auto begin = offsets->items[0].as_u64(), end = offsets->items[1].as_u64();
  if (!begin || !end) fail(fmt::format("tensor {}: data_offsets must be two non-negative integers", q));
  if (*begin > *end) fail(fmt::format("tensor {}: data_offsets [{}, {}] end before they begin", q, *begin, *end));
  if (*end > buffer_size)
    fail(fmt::format("tensor {}: data_offsets [{}, {}] run past the end of the {}-byte data buffer", q, *begin, *end,
                     buffer_size));
  if (too_big || bytes != *end - *begin)
    fail(fmt::format("tensor {}: dtype {} and shape {} need {} bytes but data_offsets [{}, {}] span {}", q,
                     known->name, shape_text(info.shape), too_big ? std::string("more than 2^64") : std::to_string(bytes),
                     *begin, *end, *end - *begin));
  info.begin = *begin;
  info.end = *end;
  return info;
}

}  // namespace

const char* dtype_name(DType dtype) noexcept {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

std::size_t dtype_size(DType dtype) noexcept {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

SafetensorsFile SafetensorsFile::read(const std::filesystem::path& path) {
  // The file is read whole: checkpoints are tens of MB. The cap only guards against a wrong path.
  return parse(read_file(path, std::uint64_t(1) << 36), path.string());
}

SafetensorsFile SafetensorsFile::parse(std::string bytes, std::string what) {
  SafetensorsFile f;
  f.what_ = std::move(what);
  const Fail fail{f.what_};
  if (bytes.size() < 8)
    fail(fmt::format("file is {} bytes, too short for the 8-byte header length (truncated?)", bytes.size()));
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[std::size_t(i)]);
  if (n > kMaxHeaderBytes)
    fail(fmt::format("header length {} is larger than the {} bytes allowed", n, kMaxHeaderBytes));
  if (n > bytes.size() - 8)
    fail(fmt::format("header length {} runs past the end of the {}-byte file (truncated?)", n, bytes.size()));
  if (n < 2) fail(fmt::format("header length {} is too small for a JSON object", n));
  std::string_view header(bytes.data() + 8, std::size_t(n));
  if (header.front() != '{') fail("header does not start with '{'");
  // Trailing spaces are padding (the Python writer aligns the data to 8 bytes).
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);

  json::Value root;
  try {
    root = json::parse(header);
  } catch (const json::ParseError& e) {
    fail(fmt::format("header is not valid JSON: {} at byte {} of the header", e.what(), e.offset));
  }
  if (!root.is_object()) fail("header is not a JSON object");

  const std::uint64_t buffer_size = bytes.size() - 8 - n;
  for (const auto& [name, value] : root.members) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(fmt::format("__metadata__ is {}, expected an object of strings", json::kind_name(value.kind)));
      for (const auto& [key, item] : value.members) {
        if (item.kind != json::Value::Kind::String)
          fail(fmt::format("__metadata__ entry {} is {}, expected a string", json::quote(key), json::kind_name(item.kind)));
        f.metadata_[key] = item.text;
      }
      continue;
    }
    // Names are unique: the JSON parser rejects duplicate keys.
    f.tensors_.push_back(tensor_info(name, value, buffer_size, fail));
  }

  // The tensors must tile the buffer: sorted by offset, each begins where the previous ended.
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t at = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : f.tensors_) {
    if (t.begin < at)
      fail(fmt::format("tensors {} and {} overlap (data_offsets [{}, {}] and [{}, {}])", json::quote(previous->name),
                       json::quote(t.name), previous->begin, previous->end, t.begin, t.end));
    if (t.begin > at)
      fail(fmt::format("bytes [{}, {}) of the data buffer belong to no tensor (before {})", at, t.begin,
                       json::quote(t.name)));
    at = t.end;
    previous = &t;
  }
  if (at != buffer_size)
    fail(fmt::format("the tensors cover {} bytes but the data buffer has {} (truncated file or trailing bytes)", at,
                     buffer_size));
  f.data_begin_ = 8 + std::size_t(n);
  f.bytes_ = std::move(bytes);
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const noexcept {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::span<const std::uint8_t> SafetensorsFile::bytes(const TensorInfo& info) const noexcept {
  const auto* base = reinterpret_cast<const std::uint8_t*>(bytes_.data()) + data_begin_;
  return {base + info.begin, std::size_t(info.end - info.begin)};
}

const TensorInfo& SafetensorsFile::require(std::string_view name, DType dtype,
                                           const std::vector<std::int64_t>* shape) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) throw DataError(fmt::format("{}: has no tensor {}", what_, json::quote(name)));
  if (t->dtype != dtype)
    throw DataError(fmt::format("{}: tensor {} has dtype {}, expected {}", what_, json::quote(name),
                                dtype_name(t->dtype), dtype_name(dtype)));
  if (shape != nullptr && t->shape != *shape)
    throw DataError(fmt::format("{}: tensor {} has shape {}, expected {}", what_, json::quote(name),
                                shape_text(t->shape), shape_text(*shape)));
  return *t;
}

namespace {
template <typename T>
std::vector<T> copy_out(std::span<const std::uint8_t> bytes) {
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}
}  // namespace

std::vector<float> SafetensorsFile::f32(std::string_view name, const std::vector<std::int64_t>* shape) const {
  return copy_out<float>(bytes(require(name, DType::F32, shape)));
}
std::vector<double> SafetensorsFile::f64(std::string_view name, const std::vector<std::int64_t>* shape) const {
  return copy_out<double>(bytes(require(name, DType::F64, shape)));
}
std::vector<std::int64_t> SafetensorsFile::i64(std::string_view name, const std::vector<std::int64_t>* shape) const {
  return copy_out<std::int64_t>(bytes(require(name, DType::I64, shape)));
}

// --- writer ------------------------------------------------------------------------------------------

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<std::int64_t> shape,
                            std::span<const std::uint8_t> data) {
  std::uint64_t count = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw InvalidArgument(fmt::format("safetensors: tensor '{}' has a negative dimension", name));
    count *= std::uint64_t(d);
  }
  if (count * dtype_size(dtype) != data.size())
    throw InvalidArgument(fmt::format("safetensors: tensor '{}' of shape {} has {} bytes of data, expected {}", name,
                                      shape_text(shape), data.size(), count * dtype_size(dtype)));
  if (name == "__metadata__") throw InvalidArgument("safetensors: '__metadata__' cannot name a tensor");
  for (const Entry& e : entries_)
    if (e.name == name) throw InvalidArgument(fmt::format("safetensors: tensor '{}' added twice", name));
  entries_.push_back({std::move(name), dtype, std::move(shape), std::vector<std::uint8_t>(data.begin(), data.end())});
}

void SafetensorsWriter::add_f32(std::string name, std::vector<std::int64_t> shape, std::span<const float> values) {
  add(std::move(name), DType::F32, std::move(shape), std::span(reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()));
}
void SafetensorsWriter::add_f64(std::string name, std::vector<std::int64_t> shape, std::span<const double> values) {
  add(std::move(name), DType::F64, std::move(shape), std::span(reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()));
}
void SafetensorsWriter::add_i64(std::string name, std::vector<std::int64_t> shape,
                                std::span<const std::int64_t> values) {
  add(std::move(name), DType::I64, std::move(shape), std::span(reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()));
}

std::string SafetensorsWriter::serialize() const {
  std::string header = "{";
  bool first = true;
  if (!metadata_.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata_) {
      if (!first) header += ',';
      header += json::quote(k);
      header += ':';
      header += json::quote(v);
      first = false;
    }
    header += "}";
  }
  std::uint64_t offset = 0;
  for (const Entry& e : entries_) {
    header += fmt::format("{}{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{},{}]}}",
                          header.size() > 1 ? "," : "", json::quote(e.name), dtype_name(e.dtype),
                          fmt::format("[{}]", fmt::join(e.shape, ",")), offset, offset + e.data.size());
    offset += e.data.size();
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  std::string out;
  out.reserve(8 + header.size() + offset);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out += char((n >> (8 * i)) & 0xFF);
  out += header;
  for (const Entry& e : entries_) out.append(reinterpret_cast<const char*>(e.data.data()), e.data.size());
  return out;
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  const std::string bytes = serialize();
  write_file_atomic(path, {std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())});
}

}  // namespace dropnet::io
