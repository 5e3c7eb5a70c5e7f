// atomic_file.cpp: temporary file + fsync + rename + directory fsync (see atomic_file.hpp).
#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "dropnet/errors.hpp"

namespace dropnet::io {
namespace {

namespace fs = std::filesystem;

std::function<void(const fs::path&)>& hook() {
  static std::function<void(const fs::path&)> h;
  return h;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

void set_before_rename_hook(std::function<void(const fs::path&)> h) { hook() = std::move(h); }

fs::path temporary_path(const fs::path& path) {
  fs::path tmp = path;
  // The thread too: two threads of one process (models trained side by side, sweep --concurrent) saving
  // the same path must not write into one temporary file. The last rename wins, whole.
  tmp += fmt::format(".tmp.{}.{}", static_cast<long>(::getpid()), static_cast<long>(::gettid()));
  return tmp;
}

void write_file_atomic(const fs::path& path, std::initializer_list<std::span<const std::uint8_t>> pieces) {
  if (path.empty()) throw IoError("cannot write a file with an empty path");
  const fs::path tmp = temporary_path(path);
  const std::string what = path.string();
  // Removes the temporary file unless the rename happened.
  struct Cleanup {
    const fs::path& tmp;
    bool armed = true;
    ~Cleanup() {
      if (armed) ::unlink(tmp.c_str());
    }
  } cleanup{tmp};

  std::FILE* raw = std::fopen(tmp.c_str(), "wb");
  if (raw == nullptr) {
    cleanup.armed = false;  // nothing was created
    throw IoError(fmt::format("{}: cannot create the temporary file {}: {}", what, tmp.string(), errno_text(errno)));
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(raw, &std::fclose);
  for (const auto& piece : pieces) {
    if (piece.empty()) continue;
    if (std::fwrite(piece.data(), 1, piece.size(), file.get()) != piece.size())
      throw IoError(fmt::format("{}: writing {} failed: {}", what, tmp.string(), errno_text(errno)));
  }
  if (std::fflush(file.get()) != 0)
    throw IoError(fmt::format("{}: writing {} failed: {}", what, tmp.string(), errno_text(errno)));
  if (::fsync(::fileno(file.get())) != 0)
    throw IoError(fmt::format("{}: fsync of {} failed: {}", what, tmp.string(), errno_text(errno)));
  if (std::fclose(file.release()) != 0)
    throw IoError(fmt::format("{}: closing {} failed: {}", what, tmp.string(), errno_text(errno)));

  if (hook()) hook()(tmp);

  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw IoError(fmt::format("{}: cannot rename {} over it: {}", what, tmp.string(), errno_text(errno)));
  cleanup.armed = false;

  // Make the rename durable: fsync the directory that holds the entry.
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    // Some file systems refuse fsync on a directory (EINVAL); the data itself is already durable.
    if (rc != 0 && err != EINVAL && err != EROFS)
      throw IoError(fmt::format("{}: fsync of the directory {} failed: {}", what, dir.string(), errno_text(err)));
  }
}

void write_file_atomic(const fs::path& path, std::string_view text) {
  write_file_atomic(path, {std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())});
}

std::string read_file(const fs::path& path, std::uint64_t max_bytes) {
  const std::string what = path.string();
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw IoError(fmt::format("{}: no such file", what));
  if (fs::is_directory(status)) throw IoError(fmt::format("{}: is a directory, not a file", what));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw IoError(fmt::format("{}: cannot open: {}", what, errno_text(errno)));
  struct stat st {};
  if (::fstat(::fileno(file.get()), &st) != 0)
    throw IoError(fmt::format("{}: cannot read its size: {}", what, errno_text(errno)));
  if (!S_ISREG(st.st_mode)) throw IoError(fmt::format("{}: not a regular file", what));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes)
    throw DataError(fmt::format("{}: file is {} bytes, more than the {} bytes accepted", what, size, max_bytes));
  std::string bytes(static_cast<std::size_t>(size), '\0');
  const std::size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), file.get());
  if (got != bytes.size())
    throw IoError(fmt::format("{}: read failed after {} of {} bytes: {}", what, got, bytes.size(),
                              std::ferror(file.get()) ? errno_text(errno) : "file shrank while reading"));
  return bytes;
}

}  // namespace dropnet::io
