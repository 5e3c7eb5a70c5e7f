// npy.hpp: a tiny reader for the .npy files numpy.save writes (format versions 1.0 to 3.0), for the tests'
// goldens. Little-endian C-order arrays of float32, float64, int8, uint8, int32, int64 and bool; the
// values are returned converted to float or double (exactly, for the integer types these goldens use).
// Header-only; throws std::runtime_error, naming the file, for anything else.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace npy {

struct Array {
  std::vector<std::int64_t> shape;
  std::string descr;               // numpy's dtype string, e.g. "<f4", "|u1"
  std::vector<double> values;      // every element, C order, converted to double

  std::int64_t size() const noexcept { return static_cast<std::int64_t>(values.size()); }
  std::vector<float> as_float() const { return {values.begin(), values.end()}; }
};

namespace detail {

inline std::string header_value(const std::string& header, const std::string& key, const std::string& path) {
  const auto at = header.find("'" + key + "'");
  if (at == std::string::npos) throw std::runtime_error(path + ": npy header has no '" + key + "'");
  auto colon = header.find(':', at);
  if (colon == std::string::npos) throw std::runtime_error(path + ": malformed npy header");
  auto begin = header.find_first_not_of(' ', colon + 1);
  std::size_t end;
  if (header[begin] == '\'') {
    end = header.find('\'', begin + 1);
    return header.substr(begin + 1, end - begin - 1);
  }
  if (header[begin] == '(') {
    end = header.find(')', begin);
    return header.substr(begin, end - begin + 1);
  }
  end = header.find_first_of(",}", begin);
  return header.substr(begin, end - begin);
}

template <typename T>
void convert(const char* bytes, std::size_t count, std::vector<double>& out) {
  static_assert(std::endian::native == std::endian::little, "npy.hpp assumes a little-endian host");
  out.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, bytes + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
}

}  // namespace detail

inline Array load(const std::filesystem::path& file) {
  const std::string path = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open (run tests/reference/generate_goldens.sh?)");
  std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 10 || std::memcmp(data.data(), "\x93NUMPY", 6) != 0)
    throw std::runtime_error(path + ": not an .npy file");
  const int major = static_cast<unsigned char>(data[6]);
  std::size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(data[8]) | (static_cast<unsigned char>(data[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (data.size() < 12) throw std::runtime_error(path + ": truncated npy header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= std::size_t(static_cast<unsigned char>(data[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw std::runtime_error(path + ": unsupported npy version " + std::to_string(major));
  }
  if (data.size() < offset + header_len) throw std::runtime_error(path + ": truncated npy header");
  const std::string header(data.data() + offset, header_len);
  offset += header_len;

  Array a;
  a.descr = detail::header_value(header, "descr", path);
  if (detail::header_value(header, "fortran_order", path) != "False")
    throw std::runtime_error(path + ": Fortran-order arrays are not supported");
  const std::string shape = detail::header_value(header, "shape", path);
  std::size_t count = 1;
  for (std::size_t i = 1; i < shape.size();) {
    const std::size_t j = shape.find_first_of(",)", i);
    const std::string item = shape.substr(i, j - i);
    if (item.find_first_not_of(' ') != std::string::npos) {
      a.shape.push_back(std::stoll(item));
      count *= static_cast<std::size_t>(a.shape.back());
    }
    i = j + 1;
  }

  const char* bytes = data.data() + offset;
  const std::size_t available = data.size() - offset;
  auto need = [&](std::size_t item) {
    if (available < count * item) throw std::runtime_error(path + ": truncated npy data");
  };
  const std::string& d = a.descr;
  if (d == "<f4") { need(4); detail::convert<float>(bytes, count, a.values); }
  else if (d == "<f8") { need(8); detail::convert<double>(bytes, count, a.values); }
  else if (d == "|i1") { need(1); detail::convert<std::int8_t>(bytes, count, a.values); }
  else if (d == "|u1") { need(1); detail::convert<std::uint8_t>(bytes, count, a.values); }
  else if (d == "|b1") { need(1); detail::convert<std::uint8_t>(bytes, count, a.values); }
  else if (d == "<i4") { need(4); detail::convert<std::int32_t>(bytes, count, a.values); }
  else if (d == "<i8") { need(8); detail::convert<std::int64_t>(bytes, count, a.values); }
  else throw std::runtime_error(path + ": unsupported npy dtype " + d);
  return a;
}

}  // namespace npy
