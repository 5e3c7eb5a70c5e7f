// atomic_file.hpp: replace a file so that readers (and a crash) see either the old or the new content.
//
//   write_file_atomic(path, {header, data});
//
// writes the pieces to "<path>.tmp.<pid>.<tid>" in the same directory, fflush + fsync, renames it over `path`
// (atomic on POSIX file systems) and fsyncs the directory so that the rename itself is durable. On any
// failure the temporary file is removed and `path` is untouched. A process killed between the write and
// the rename (kill -9, power loss) leaves `path` as it was and a stale "<path>.tmp.<pid>.<tid>" behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace dropnet::io {

// Throws dropnet::IoError naming `path` and the system error.
void write_file_atomic(const std::filesystem::path& path, std::initializer_list<std::span<const std::uint8_t>> pieces);
// The same for one piece of text (reports, CSV and JSON summaries, SVG plots).
void write_file_atomic(const std::filesystem::path& path, std::string_view text);

// Test hook: when set, called with the temporary file's path after it is written and synced, just before
// the rename. It may throw (an injected failure) or kill the process (a crash mid-save).
// Not thread-safe; tests only.
void set_before_rename_hook(std::function<void(const std::filesystem::path& temporary)> hook);

// "<path>.tmp.<pid>.<tid>": where write_file_atomic stages `path` in this process and thread.
std::filesystem::path temporary_path(const std::filesystem::path& path);

// Reads a whole regular file (at most `max_bytes`, else a DataError). Throws IoError naming it.
std::string read_file(const std::filesystem::path& path, std::uint64_t max_bytes);

}  // namespace dropnet::io
