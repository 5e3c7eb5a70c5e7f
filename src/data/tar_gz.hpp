// tar_gz.hpp: reads chosen regular-file members out of a .tar.gz archive (internal, used by the CIFAR-10
// loader to read cifar-10-binary.tar.gz without unpacking it to disk).
//
// Supported: gzip-compressed (or, since zlib reads non-gzip input transparently, plain) tar streams in the
// ustar/POSIX, GNU and pax formats: 512-byte headers with octal (or GNU base-256) size fields, the ustar
// name prefix, GNU long names (type 'L') and pax "path" records (type 'x'). Members other than regular
// files (directories, links, devices...) are skipped.
//
// The archive is untrusted input: every field is read within its bounds, header checksums are verified,
// and a member's declared size never drives an allocation by itself (data is appended as it arrives), so a
// lying header yields a DataError rather than a huge allocation or an out-of-bounds read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace dropnet::data {

struct TarMember {
  std::string name;                 // path inside the archive, a leading "./" removed
  std::vector<std::uint8_t> bytes;  // the member's content
};

// Streams `archive` once and returns, in archive order, the regular-file members whose name satisfies
// `wanted` (called with the normalised name). A name that occurs twice is returned twice (tar semantics:
// the later copy wins; the caller decides). Throws IoError when the file cannot be opened or read, and
// DataError, naming the archive and what was wrong, for a corrupt gzip stream, a truncated archive, a bad
// header checksum or a malformed size/long-name/pax field.
std::vector<TarMember> read_tar_gz(const std::filesystem::path& archive,
                                   const std::function<bool(std::string_view name)>& wanted);

}  // namespace dropnet::data
