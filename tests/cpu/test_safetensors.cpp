// test_safetensors.cpp: the strict safetensors reader and the atomic writer: a round trip, then one case
// per kind of malformed file, each checking that the error names the file and the problem.
#include "support/catch.hpp"

#include "support/temp_dir.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dropnet/cifar10.hpp"
#include "dropnet/errors.hpp"
#include "io/atomic_file.hpp"
#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "support/matchers.hpp"

namespace fs = std::filesystem;
using dropnet::DataError;
using dropnet::IoError;
using dropnet::io::DType;
using dropnet::io::SafetensorsFile;
using dropnet::io::SafetensorsWriter;
using dropnet::testing::MessageContains;

namespace {

using TempDir = dropnet::testing::TempDir;

// A file: the 8-byte little-endian length (`declared`, default the header's size), the header, the data.
std::string make_file(const std::string& header, const std::string& data, std::optional<std::uint64_t> declared = {}) {
  const std::uint64_t n = declared.value_or(header.size());
  std::string out;
  for (int i = 0; i < 8; ++i) out += char((n >> (8 * i)) & 0xFF);
  return out + header + data;
}

SafetensorsFile parse(const std::string& bytes) { return SafetensorsFile::parse(bytes, "bad.safetensors"); }

// Checks that parsing `bytes` throws a DataError naming the file and containing `part`.
void expect_bad(const std::string& bytes, const std::string& part) {
  CHECK_THROWS_MATCHES(parse(bytes), DataError, MessageContains("bad.safetensors: not a valid safetensors file"));
  CHECK_THROWS_MATCHES(parse(bytes), DataError, MessageContains(part));
}

const std::string kEight(8, '\0');  // 8 data bytes: two F32 values

}  // namespace

TEST_CASE("safetensors round trip keeps names, dtypes, shapes, values and metadata", "[safetensors]") {
  SafetensorsWriter w;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
  const std::vector<double> b = {0.1, 1e300};
  const std::vector<std::int64_t> c = {-1, 42};
  w.add_f32("conv2d/kernel", {1, 2, 3, 1}, a);
  w.add_f64("history/loss", {2}, b);
  w.add_i64("dropout/seed_generator_state", {2}, c);
  w.add_f32("empty", {0, 4}, {});
  w.set_metadata("dropnet.format", "weights");
  w.set_metadata("quote\"and\\newline\n", "caf\xC3\xA9");
  const std::string bytes = w.serialize();
  REQUIRE((bytes.size() - 0) % 8 == 0);  // header padded so that the data starts 8-aligned

  const SafetensorsFile f = parse(bytes);
  CHECK(f.tensors().size() == 4);
  const std::vector<std::int64_t> shape = {1, 2, 3, 1};
  CHECK(f.f32("conv2d/kernel", &shape) == a);
  CHECK(f.f64("history/loss") == b);
  CHECK(f.i64("dropout/seed_generator_state") == c);
  CHECK(f.find("empty")->shape == std::vector<std::int64_t>{0, 4});
  CHECK(f.metadata().at("dropnet.format") == "weights");
  CHECK(f.metadata().at("quote\"and\\newline\n") == "caf\xC3\xA9");
  CHECK_THROWS_MATCHES(f.f64("conv2d/kernel"), DataError, MessageContains("has dtype F32, expected F64"));
  CHECK_THROWS_MATCHES(f.f32("nope"), DataError, MessageContains("has no tensor \"nope\""));
}

TEST_CASE("safetensors reads a file written by the Python library layout", "[safetensors]") {
  // What safetensors.numpy.save_file({"a": np.float32([1, 2])}) writes (header padded with spaces).
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string padded = header;
  while ((8 + padded.size()) % 8) padded += ' ';
  const float v[2] = {1.0f, 2.0f};
  const SafetensorsFile f = parse(make_file(padded, std::string(reinterpret_cast<const char*>(v), 8)));
  CHECK(f.f32("a") == std::vector<float>{1.0f, 2.0f});
  CHECK(f.metadata().empty());
}

TEST_CASE("safetensors rejects truncated files and bad header lengths", "[safetensors]") {
  SECTION("shorter than the length field") { expect_bad("abc", "3 bytes, too short for the 8-byte header length"); }
  SECTION("empty") { expect_bad("", "0 bytes, too short"); }
  SECTION("header length past the end of the file") {
    expect_bad(make_file("{}", "", 500), "header length 500 runs past the end of the 10-byte file");
  }
  SECTION("absurd header length") {
    expect_bad(make_file("{}", "", 100'000'001), "header length 100000001 is larger than the 100000000 bytes allowed");
  }
  SECTION("header length of 2^64 - 1") { expect_bad(make_file("{}", "", UINT64_MAX), "is larger than"); }
  SECTION("a valid file cut short") {
    SafetensorsWriter w;
    const std::vector<float> a(16, 1.0f);
    w.add_f32("w", {16}, a);
    const std::string whole = w.serialize();
    expect_bad(whole.substr(0, whole.size() - 1), "data_offsets [0, 64] run past the end of the 63-byte data buffer");
    expect_bad(whole.substr(0, 20), "runs past the end of the 20-byte file");
  }
  SECTION("trailing bytes after the tensors") {
    expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", kEight + "xx"),
               "the tensors cover 8 bytes but the data buffer has 10");
  }
}

TEST_CASE("safetensors rejects malformed JSON headers", "[safetensors]") {
  SECTION("not starting with a brace") { expect_bad(make_file("[1, 2]", ""), "header does not start with '{'"); }
  SECTION("trailing comma") {
    expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},})", kEight),
               "header is not valid JSON: expected a string key in an object");
  }
  SECTION("unterminated string") { expect_bad(make_file(R"({"a)", ""), "unterminated string"); }
  SECTION("unterminated object") { expect_bad(make_file(R"({"a":{"dtype":"F32")", ""), "expected ',' or '}'"); }
  SECTION("text after the object") { expect_bad(make_file(R"({} {})", ""), "unexpected text after the JSON value"); }
  SECTION("single quotes") { expect_bad(make_file(R"({'a':1})", ""), "expected a string key"); }
  SECTION("invalid UTF-8 in a name") { expect_bad(make_file("{\"\xFF\":1}", ""), "invalid UTF-8 byte 0xFF"); }
  SECTION("overlong UTF-8") { expect_bad(make_file("{\"\xC0\xAF\":1}", ""), "invalid UTF-8"); }
  SECTION("raw control character") { expect_bad(make_file("{\"a\nb\":1}", ""), "raw control character 0x0A"); }
  SECTION("bad escape") { expect_bad(make_file(R"({"a\q":1})", ""), "invalid escape"); }
  SECTION("lone surrogate") { expect_bad(make_file(R"({"\udc00":1})", ""), "unpaired low surrogate"); }
  SECTION("leading zeros") {
    expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}})", kEight), "leading zeros");
  }
  SECTION("nesting too deep") {
    expect_bad(make_file("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}", ""),
               "nesting deeper than 64 levels");
  }
  SECTION("the error gives the byte offset") { expect_bad(make_file(R"({"a":tru})", ""), "at byte 5 of the header"); }
  SECTION("duplicate tensor names") {
    expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         kEight),
               "duplicate key \"a\"");
  }
}

TEST_CASE("safetensors rejects bad tensor entries", "[safetensors]") {
  auto one = [](const std::string& entry, const std::string& data = kEight) {
    return make_file(R"({"w":)" + entry + "}", data);
  };
  SECTION("unknown dtype") {
    expect_bad(one(R"({"dtype":"F31","shape":[2],"data_offsets":[0,8]})"), "tensor \"w\" has unknown dtype \"F31\"");
  }
  SECTION("dtype not a string") {
    expect_bad(one(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"), "dtype is a number, expected a string");
  }
  SECTION("shape and offsets disagree") {
    expect_bad(one(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,8]})"),
               "dtype F32 and shape [2, 3] need 24 bytes but data_offsets [0, 8] span 8");
  }
  SECTION("shape whose byte size overflows") {
    expect_bad(one(R"({"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]})"), "more than 2^64");
  }
  SECTION("negative dimension") {
    expect_bad(one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), "shape entry -2 is not a non-negative integer");
  }
  SECTION("fractional dimension") {
    expect_bad(one(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), "shape entry 2.0 is not");
  }
  SECTION("offsets past the buffer") {
    expect_bad(one(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"),
               "data_offsets [0, 16] run past the end of the 8-byte data buffer");
  }
  SECTION("offsets past 2^64") {
    expect_bad(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]})"),
               "data_offsets must be two non-negative integers");
  }
  SECTION("end before begin") {
    expect_bad(one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), "end before they begin");
  }
  SECTION("offsets not a pair") {
    expect_bad(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,9]})"), "data_offsets must be an array [begin, end]");
  }
  SECTION("missing fields") {
    expect_bad(one(R"({"shape":[2],"data_offsets":[0,8]})"), "tensor \"w\" has no dtype");
    expect_bad(one(R"({"dtype":"F32","data_offsets":[0,8]})"), "tensor \"w\" has no shape");
    expect_bad(one(R"({"dtype":"F32","shape":[2]})"), "tensor \"w\" has no data_offsets");
  }
  SECTION("unknown field") {
    expect_bad(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1})"), "unknown field \"x\"");
  }
  SECTION("entry not an object") { expect_bad(one("[1]"), "tensor \"w\" is an array, expected an object"); }
  SECTION("overlapping tensors") {
    expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         kEight),
               "tensors \"a\" and \"b\" overlap");
  }
  SECTION("a gap between tensors") {
    expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         kEight + "abcd"),
               "bytes [4, 8) of the data buffer belong to no tensor");
  }
  SECTION("metadata values must be strings") {
    expect_bad(make_file(R"({"__metadata__":{"epoch":3}})", ""), "__metadata__ entry \"epoch\" is a number");
    expect_bad(make_file(R"({"__metadata__":[]})", ""), "__metadata__ is an array");
  }
}

TEST_CASE("safetensors read names a missing file or a directory", "[safetensors]") {
  TempDir dir;
  CHECK_THROWS_MATCHES(SafetensorsFile::read(dir.path() / "none.safetensors"), IoError,
                       MessageContains("none.safetensors: no such file"));
  CHECK_THROWS_MATCHES(SafetensorsFile::read(dir.path()), IoError, MessageContains("is a directory"));
  std::ofstream(dir.path() / "bad.safetensors") << "garbage!garbage!";
  CHECK_THROWS_MATCHES(SafetensorsFile::read(dir.path() / "bad.safetensors"), DataError,
                       MessageContains((dir.path() / "bad.safetensors").string() + ": not a valid safetensors file"));
}

// --- atomic writes --------------------------------------------------------------------------------------

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

SafetensorsWriter writer_with(float value) {
  SafetensorsWriter w;
  const std::vector<float> v(1000, value);
  w.add_f32("w", {1000}, v);
  return w;
}

struct HookReset {
  ~HookReset() { dropnet::io::set_before_rename_hook(nullptr); }
};

}  // namespace

TEST_CASE("an atomic write that fails before the rename leaves the previous file intact", "[safetensors][atomic]") {
  TempDir dir;
  const fs::path path = dir.path() / "ckpt.safetensors";
  writer_with(1.0f).write(path);
  const std::string before = slurp(path);
  HookReset reset;
  dropnet::io::set_before_rename_hook([](const fs::path& tmp) {
    REQUIRE(fs::exists(tmp));  // the new content was fully written to the temporary file...
    throw IoError("injected failure between write and rename");
  });
  CHECK_THROWS_MATCHES(writer_with(2.0f).write(path), IoError, MessageContains("injected failure"));
  CHECK(slurp(path) == before);                                   // ...but the target is unchanged
  CHECK_FALSE(fs::exists(dropnet::io::temporary_path(path)));    // and the temporary is cleaned up
  CHECK(SafetensorsFile::read(path).f32("w")[0] == 1.0f);
}

TEST_CASE("a process killed with SIGKILL mid-save leaves the previous file intact and loadable", "[safetensors][atomic]") {
  TempDir dir;
  const fs::path path = dir.path() / "ckpt.safetensors";
  writer_with(1.0f).write(path);
  const std::string before = slurp(path);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child dies between writing the new file and renaming it: a crash or kill -9 mid-save.
    dropnet::io::set_before_rename_hook([](const fs::path&) { ::kill(::getpid(), SIGKILL); });
    try {
      writer_with(2.0f).write(path);
    } catch (...) {
    }
    ::_exit(0);  // not reached
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(slurp(path) == before);
  CHECK(SafetensorsFile::read(path).f32("w")[0] == 1.0f);
  // The stale temporary of the killed process is left behind, complete but never renamed.
  fs::path stale = path;
  stale += ".tmp." + std::to_string(child) + "." + std::to_string(child);  // the child's main thread: tid == pid
  CHECK(fs::exists(stale));
  CHECK(SafetensorsFile::read(stale).f32("w")[0] == 2.0f);
}

TEST_CASE("two threads saving one path leave one whole file, never a mix", "[safetensors][atomic]") {
  // Models trained side by side (sweep --concurrent) may save to one path; each thread stages its own
  // temporary file, so the last rename wins and the file is always one of the writes, whole.
  TempDir dir;
  const fs::path path = dir.path() / "shared.safetensors";
  CHECK(dropnet::io::temporary_path(path) != [&] {
    fs::path other;
    std::thread([&] { other = dropnet::io::temporary_path(path); }).join();
    return other;
  }());
  {
    std::jthread a([&] { for (int i = 0; i < 30; ++i) writer_with(1.0f).write(path); });
    std::jthread b([&] { for (int i = 0; i < 30; ++i) writer_with(2.0f).write(path); });
  }
  const float w = SafetensorsFile::read(path).f32("w")[0];
  CHECK((w == 1.0f || w == 2.0f));
  for (const auto& entry : fs::directory_iterator(dir.path())) CHECK(entry.path() == path);  // no temporaries left
}

TEST_CASE("an atomic write whose target is a directory fails cleanly", "[safetensors][atomic]") {
  TempDir dir;
  const fs::path path = dir.path() / "target";
  fs::create_directories(path / "inside");
  CHECK_THROWS_MATCHES(writer_with(1.0f).write(path), IoError, MessageContains("cannot rename"));
  CHECK(fs::is_directory(path / "inside"));
  CHECK_FALSE(fs::exists(dropnet::io::temporary_path(path)));
  CHECK_THROWS_MATCHES(writer_with(1.0f).write(dir.path() / "no" / "such" / "dir.safetensors"), IoError,
                       MessageContains("cannot create the temporary file"));
}

// --- CIFAR-10 cases beyond tests/cpu/test_cifar10.cpp ---------------------------------------------------

TEST_CASE("cifar10::load names a batch path that is a directory", "[cifar10]") {
  TempDir dir;
  for (const char* name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                           "data_batch_5.bin", "test_batch.bin"})
    std::ofstream(dir.path() / name, std::ios::binary) << std::string(3073, '\0');
  fs::remove(dir.path() / "data_batch_3.bin");
  fs::create_directories(dir.path() / "data_batch_3.bin");
  CHECK_THROWS_MATCHES(dropnet::cifar10::load(dir.path()), IoError,
                       MessageContains("data_batch_3.bin: not a regular file"));
}

TEST_CASE("cifar10::decode rejects a label byte of 255 and a single stray byte", "[cifar10]") {
  std::vector<std::uint8_t> one(3073, 0);
  one[0] = 255;
  CHECK_THROWS_MATCHES(dropnet::cifar10::decode(one, "x.bin"), DataError, MessageContains("label byte 255"));
  CHECK_THROWS_MATCHES(dropnet::cifar10::decode(std::vector<std::uint8_t>(1, 0), "x.bin"), DataError,
                       MessageContains("x.bin: size 1 bytes is not a multiple"));
}
