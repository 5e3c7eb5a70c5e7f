// tar_gz.cpp: a small streaming tar reader on top of zlib's gzread.
//
// Why not libarchive: one more system dependency for reading six members of one well-known archive.
// Why gzread rather than inflate: it handles the gzip header, multi-member streams and buffering, and it
// reports a stream that ends early (Z_BUF_ERROR), which is exactly the "truncated download" case.
#include "data/tar_gz.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>

#include "dropnet/errors.hpp"

namespace dropnet::data {
namespace {

constexpr std::size_t kBlock = 512;
// GNU long names and pax headers are a few hundred bytes in practice; anything this large is corrupt.
constexpr std::uint64_t kMaxMetaBytes = 1u << 20;
// Sizes beyond this cannot be real members and would overflow the padding arithmetic.
constexpr std::uint64_t kMaxMemberBytes = std::uint64_t{1} << 62;

// Header field offsets and widths (POSIX ustar; GNU shares the first 345 bytes).
struct Field {
  std::size_t offset, width;
};
constexpr Field kName{0, 100}, kSize{124, 12}, kChecksum{148, 8}, kType{156, 1}, kMagic{257, 6},
    kPrefix{345, 155};

// The decompressed byte stream, with errors that name the archive.
class GzStream {
 public:
  explicit GzStream(const std::filesystem::path& path) : path_(path.string()) {
    errno = 0;
    file_ = gzopen(path_.c_str(), "rb");
    if (file_ == nullptr) {
      throw IoError(fmt::format("{}: cannot open archive: {}", path_,
                                errno != 0 ? std::strerror(errno) : "out of memory"));
    }
    gzbuffer(file_, 1u << 17);
  }
  ~GzStream() { gzclose_r(file_); }
  GzStream(const GzStream&) = delete;
  GzStream& operator=(const GzStream&) = delete;

  const std::string& path() const noexcept { return path_; }
  // Bytes of decompressed stream consumed so far (for error messages).
  std::uint64_t offset() const noexcept { return offset_; }

  // Reads up to n bytes into dst; fewer only at the end of the stream. A stream that ends in the middle
  // of the gzip data, or a corrupt one, throws.
  std::size_t read(void* dst, std::size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    std::size_t total = 0;
    while (total < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - total, 1u << 30));
      const int got = gzread(file_, out + total, chunk);
      if (got < 0) fail();
      if (got == 0) break;
      total += static_cast<std::size_t>(got);
    }
    offset_ += total;
    if (total < n) check_clean_end();
    return total;
  }

  // Reads and discards n bytes; returns how many were there.
  std::uint64_t skip(std::uint64_t n) {
    std::array<unsigned char, 1u << 16> sink;
    std::uint64_t done = 0;
    while (done < n) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n - done, sink.size()));
      const std::size_t got = read(sink.data(), want);
      done += got;
      if (got < want) break;
    }
    return done;
  }

 private:
  [[noreturn]] void fail() {
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    if (code == Z_ERRNO) {
      throw IoError(fmt::format("{}: read failed: {}", path_, std::strerror(errno)));
    }
    throw DataError(
        fmt::format("{}: corrupt gzip data after {} uncompressed bytes ({}); expected a valid "
                    ".tar.gz archive",
                    path_, offset_, message != nullptr ? message : "zlib error"));
  }
  void check_clean_end() {
    int code = Z_OK;
    gzerror(file_, &code);
    if (code == Z_BUF_ERROR) {
      throw DataError(
          fmt::format("{}: gzip stream ends early after {} uncompressed bytes; the archive is "
                      "truncated (an interrupted download?)",
                      path_, offset_));
    }
    if (code != Z_OK) fail();
  }

  std::string path_;
  gzFile file_ = nullptr;
  std::uint64_t offset_ = 0;
};

using Block = std::array<unsigned char, kBlock>;

std::string_view field_text(const Block& block, Field f) {
  const char* begin = reinterpret_cast<const char*>(block.data()) + f.offset;
  return {begin, ::strnlen(begin, f.width)};  // NUL-terminated or exactly the field's width
}

// An octal number, optionally space-padded in front and NUL/space-terminated, or GNU base-256
// (high bit of the first byte set). Returns false when malformed.
bool parse_number(const Block& block, Field f, std::uint64_t& value) {
  const unsigned char* p = block.data() + f.offset;
  const unsigned char* end = p + f.width;
  value = 0;
  if (*p & 0x80) {
    if (*p != 0x80) return false;  // negative (0xff) or a value too large to be sane
    for (++p; p < end; ++p) {
      if (value > (kMaxMemberBytes >> 8)) return false;
      value = (value << 8) | *p;
    }
    return true;
  }
  while (p < end && *p == ' ') ++p;
  const unsigned char* digits = p;
  for (; p < end && *p >= '0' && *p <= '7'; ++p) {
    if (value > (kMaxMemberBytes >> 3)) return false;
    value = (value << 3) | static_cast<std::uint64_t>(*p - '0');
  }
  if (p == digits) return false;
  for (; p < end; ++p) {
    if (*p != ' ' && *p != '\0') return false;
  }
  return true;
}

bool all_zero(const Block& block) {
  return std::all_of(block.begin(), block.end(), [](unsigned char c) { return c == 0; });
}

// The checksum is the sum of the header bytes with the checksum field read as spaces. Historic writers
// summed signed chars, so either sum is accepted (as GNU tar does).
bool checksum_ok(const Block& block) {
  std::uint64_t stored = 0;
  if (!parse_number(block, kChecksum, stored)) return false;
  std::int64_t unsigned_sum = 0, signed_sum = 0;
  for (std::size_t i = 0; i < kBlock; ++i) {
    const bool in_field = i >= kChecksum.offset && i < kChecksum.offset + kChecksum.width;
    const unsigned char c = in_field ? ' ' : block[i];
    unsigned_sum += c;
    signed_sum += static_cast<signed char>(c);
  }
  return static_cast<std::int64_t>(stored) == unsigned_sum || static_cast<std::int64_t>(stored) == signed_sum;
}

std::string normalise(std::string name) {
  while (name.rfind("./", 0) == 0) name.erase(0, 2);
  return name;
}

// The "path" value of a pax extended header ("<len> <key>=<value>\n" records), or "" when absent.
std::string pax_path(const std::vector<std::uint8_t>& data, const std::string& archive, std::uint64_t at) {
  const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  std::string path;
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == '\0') break;  // some writers pad with NULs
    std::size_t len = 0, p = pos;
    while (p < text.size() && text[p] >= '0' && text[p] <= '9' && len <= text.size()) {
      len = len * 10 + static_cast<std::size_t>(text[p] - '0');
      ++p;
    }
    const bool ok = p > pos && p < text.size() && text[p] == ' ' && len > p - pos + 1 &&
                    len <= text.size() - pos && text[pos + len - 1] == '\n';
    if (!ok) {
      throw DataError(
          fmt::format("{}: malformed pax extended header at uncompressed byte {}; expected "
                      "\"<length> <key>=<value>\\n\" records",
                      archive, at));
    }
    const std::string_view record = text.substr(p + 1, pos + len - 1 - (p + 1));  // without the '\n'
    const std::size_t eq = record.find('=');
    if (eq != std::string_view::npos && record.substr(0, eq) == "path") path = record.substr(eq + 1);
    pos += len;
  }
  return path;
}

// Reads a member's data (n bytes plus padding to the block size). The vector grows only as data arrives,
// so a header that lies about its size cannot force a large allocation.
std::vector<std::uint8_t> read_data(GzStream& in, std::uint64_t n, const std::string& name) {
  std::vector<std::uint8_t> bytes;
  bytes.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, 64u << 20)));
  constexpr std::size_t kChunk = 1u << 20;
  while (bytes.size() < n) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n - bytes.size(), kChunk));
    const std::size_t old = bytes.size();
    bytes.resize(old + want);
    const std::size_t got = in.read(bytes.data() + old, want);
    if (got < want) {
      throw DataError(
          fmt::format("{}: archive is truncated: member {} declares {} bytes but the archive "
                      "ends after {}",
                      in.path(), name, n, old + got));
    }
  }
  const std::uint64_t pad = (kBlock - n % kBlock) % kBlock;
  if (in.skip(pad) < pad) {
    throw DataError(
        fmt::format("{}: archive is truncated inside the padding after member {}", in.path(), name));
  }
  return bytes;
}

void skip_data(GzStream& in, std::uint64_t n, const std::string& name) {
  const std::uint64_t padded = n + (kBlock - n % kBlock) % kBlock;
  if (in.skip(padded) < padded) {
    throw DataError(
        fmt::format("{}: archive is truncated: member {} declares {} bytes but the archive ends "
                    "before them",
                    in.path(), name, n));
  }
}

}  // namespace

std::vector<TarMember> read_tar_gz(const std::filesystem::path& archive,
                                   const std::function<bool(std::string_view name)>& wanted) {
  GzStream in(archive);
  std::vector<TarMember> members;
  std::string long_name, pax_name;  // names that override the next header's own
  bool any_header = false;
  Block block;
  for (;;) {
    const std::uint64_t at = in.offset();
    const std::size_t got = in.read(block.data(), kBlock);
    if (got == 0) {
      if (!any_header)
        throw DataError(fmt::format("{}: archive is empty; expected a tar archive", in.path()));
      break;  // ends at a block boundary without the zero blocks: accepted, as GNU tar does
    }
    if (got < kBlock) {
      throw DataError(
          fmt::format("{}: archive is truncated: {} bytes of a 512-byte tar header at uncompressed "
                      "byte {}",
                      in.path(), got, at));
    }
    if (all_zero(block)) break;  // end-of-archive marker
    if (!checksum_ok(block)) {
      throw DataError(
          fmt::format("{}: bad tar header checksum at uncompressed byte {}; the file is corrupt "
                      "or not a tar archive",
                      in.path(), at));
    }
    any_header = true;

    std::string name;
    if (!pax_name.empty()) {
      name = pax_name;
    } else if (!long_name.empty()) {
      name = long_name;
    } else {
      name = std::string(field_text(block, kName));
      // Only POSIX ustar ("ustar\0") has a prefix field; old GNU headers keep other data there.
      const std::string_view magic(reinterpret_cast<const char*>(block.data()) + kMagic.offset, kMagic.width);
      const std::string_view prefix = field_text(block, kPrefix);
      if (magic == std::string_view("ustar\0", 6) && !prefix.empty()) name = std::string(prefix) + "/" + name;
    }
    name = normalise(std::move(name));

    std::uint64_t size = 0;
    if (!parse_number(block, kSize, size)) {
      throw DataError(fmt::format("{}: malformed size field in the tar header of {} at uncompressed byte {}",
                                  in.path(), name, at));
    }
    const char type = static_cast<char>(block[kType.offset]);
    if (type == 'L' || type == 'x') {
      if (size > kMaxMetaBytes) {
        throw DataError(fmt::format("{}: implausible {}-byte {} header at uncompressed byte {}", in.path(),
                                    size, type == 'L' ? "GNU long-name" : "pax", at));
      }
      std::vector<std::uint8_t> data = read_data(in, size, type == 'L' ? "(GNU long name)" : "(pax header)");
      if (type == 'L') {
        const auto* text = reinterpret_cast<const char*>(data.data());
        long_name = data.empty() ? std::string() : std::string(text, ::strnlen(text, data.size()));
      } else {
        pax_name = pax_path(data, in.path(), at);
      }
      continue;  // these describe the next header; keep them for it
    }
    long_name.clear();
    pax_name.clear();
    const bool regular = type == '0' || type == '\0' || type == '7';
    if (regular && wanted(name)) {
      members.push_back({name, read_data(in, size, name)});
    } else {
      skip_data(in, size, name);  // directories, links, 'g' global pax headers, unwanted files
    }
  }
  return members;
}

}  // namespace dropnet::data
