// test_cifar10.cpp: the CIFAR-10 loader and the .tar.gz reader under it, on fixtures written to a temp dir.
//
// Fixture pixels follow a formula of (record, channel, row, column) so every decoded value can be checked,
// and the tar archives are built byte by byte here (not with tar(1)) so the tests control each header field.
#include "support/catch.hpp"

#include "support/temp_dir.hpp"
#include <zlib.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/tar_gz.hpp"
#include "dropnet/cifar10.hpp"
#include "dropnet/errors.hpp"

#ifndef DROPNET_SOURCE_DIR
#error "tests/CMakeLists.txt must define DROPNET_SOURCE_DIR (the repository root) for the bundled-sample test"
#endif

namespace fs = std::filesystem;
namespace cifar10 = dropnet::cifar10;
using Bytes = std::vector<std::uint8_t>;

namespace {

// Matches an exception whose what() contains every one of the given fragments. (Catch2 v2's own
// Message() matcher only compares the whole message.)
class MessageContains : public Catch::MatcherBase<std::exception> {
 public:
  template <typename... Fragments>
  explicit MessageContains(Fragments... fragments) : fragments_{std::string(fragments)...} {}
  bool match(const std::exception& e) const override {
    const std::string message = e.what();
    for (const std::string& f : fragments_)
      if (message.find(f) == std::string::npos) return false;
    return true;
  }
  std::string describe() const override {
    std::string d = "has a message containing";
    for (const std::string& f : fragments_) d += " \"" + f + "\"";
    return d;
  }

 private:
  std::vector<std::string> fragments_;
};

using TempDir = dropnet::testing::TempDir;

// The pixel byte of record `r` at (channel c, row h, column w) in every fixture.
std::uint8_t pixel(int r, int c, int h, int w) {
  return static_cast<std::uint8_t>(r * 7 + c * 85 + h * 3 + w * 5);
}

// `count` records with labels label0, label0+1, ... (mod 10); record numbers start at `first`.
Bytes records(int first, int count, int label0 = 0) {
  Bytes bytes;
  for (int r = first; r < first + count; ++r) {
    bytes.push_back(static_cast<std::uint8_t>((label0 + r - first) % 10));
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 32; ++h)
        for (int w = 0; w < 32; ++w) bytes.push_back(pixel(r, c, h, w));  // planar: R, G, B planes
  }
  return bytes;
}

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Records per file in the standard fixture: data_batch_1..5 then test_batch. Record numbers run on across
// the training files so order can be checked; labels do too.
constexpr std::array<int, 5> kTrainCounts = {2, 3, 1, 2, 2};  // 10 training records
constexpr int kTestCount = 3;

std::vector<std::pair<std::string, Bytes>> fixture_files() {
  std::vector<std::pair<std::string, Bytes>> files;
  int first = 0;
  for (int k = 0; k < 5; ++k) {
    files.emplace_back("data_batch_" + std::to_string(k + 1) + ".bin",
                       records(first, kTrainCounts[k], first));
    first += kTrainCounts[k];
  }
  files.emplace_back("test_batch.bin", records(100, kTestCount, 7));
  return files;
}

void write_fixture(const fs::path& dir) {
  fs::create_directories(dir);
  for (const auto& [name, bytes] : fixture_files()) write_file(dir / name, bytes);
}

// --- tar building -------------------------------------------------------------------------------------

void put(Bytes& header, std::size_t offset, const std::string& text) {
  std::copy(text.begin(), text.end(), header.begin() + static_cast<std::ptrdiff_t>(offset));
}

std::string octal(std::uint64_t value, int digits) {
  std::string s(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0 && value; --i, value >>= 3)
    s[static_cast<std::size_t>(i)] = char('0' + (value & 7));
  return s;
}

// A POSIX ustar header (optionally with a prefix field), checksum filled in.
Bytes tar_header(const std::string& name, std::uint64_t size, char type = '0',
                 const std::string& prefix = "") {
  Bytes h(512, 0);
  put(h, 0, name.substr(0, 100));
  put(h, 100, "0000644");
  put(h, 108, "0000000");
  put(h, 116, "0000000");
  put(h, 124, octal(size, 11));
  put(h, 136, "00000000000");
  h[156] = static_cast<std::uint8_t>(type);
  put(h, 257,
      std::string("ustar\0"
                  "00",
                  8));
  put(h, 345, prefix.substr(0, 155));
  put(h, 148, "        ");
  unsigned sum = 0;
  for (std::uint8_t b : h) sum += b;
  put(h, 148, octal(sum, 6));
  h[154] = 0;
  h[155] = ' ';
  return h;
}

void append_member(Bytes& tar, const Bytes& header, const Bytes& data) {
  tar.insert(tar.end(), header.begin(), header.end());
  tar.insert(tar.end(), data.begin(), data.end());
  tar.resize(tar.size() + (512 - data.size() % 512) % 512, 0);
}

void append_file(Bytes& tar, const std::string& name, const Bytes& data) {
  append_member(tar, tar_header(name, data.size()), data);
}

void finish(Bytes& tar) { tar.resize(tar.size() + 1024, 0); }

// The fixture as the official archive lays it out: a directory entry, then cifar-10-batches-bin/<file>.
Bytes fixture_tar() {
  Bytes tar;
  append_member(tar, tar_header("cifar-10-batches-bin/", 0, '5'), {});
  for (const auto& [name, bytes] : fixture_files()) append_file(tar, "cifar-10-batches-bin/" + name, bytes);
  finish(tar);
  return tar;
}

void write_gz(const fs::path& path, const Bytes& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb6");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(gz) == Z_OK);
}

// Exact equality of a decoded split with the fixture formula: pixel (r, c, h, w) at NHWC [n][h][w][c].
void check_pixels(const cifar10::Split& split, int first_record) {
  const auto images = split.images.host();
  bool all_equal = true;
  for (std::int64_t n = 0; n < split.size(); ++n)
    for (int h = 0; h < 32; ++h)
      for (int w = 0; w < 32; ++w)
        for (int c = 0; c < 3; ++c) {
          const float expected =
              static_cast<float>(pixel(first_record + static_cast<int>(n), c, h, w)) / 255.0f;
          all_equal =
              all_equal && images[static_cast<std::size_t>(((n * 32 + h) * 32 + w) * 3 + c)] == expected;
        }
  CHECK(all_equal);
}

void check_one_hot(const cifar10::Split& split) {
  const auto labels = split.labels.host();
  for (std::int64_t n = 0; n < split.size(); ++n)
    for (int k = 0; k < 10; ++k)
      CHECK(labels[static_cast<std::size_t>(n * 10 + k)] ==
            (k == split.classes[static_cast<std::size_t>(n)] ? 1.0f : 0.0f));
}

// The fixture's labels: training records 0..9 have labels 0..9 (in order), test records 7, 8, 9.
void check_fixture(const cifar10::Dataset& d, std::int64_t train = 10, std::int64_t test = kTestCount) {
  REQUIRE(d.train.size() == train);
  REQUIRE(d.test.size() == test);
  CHECK(d.train.images.shape() == dropnet::Shape{train, 32, 32, 3});
  CHECK(d.train.labels.shape() == dropnet::Shape{train, 10});
  for (std::int64_t n = 0; n < train; ++n) CHECK(d.train.classes[static_cast<std::size_t>(n)] == n);
  for (std::int64_t n = 0; n < test; ++n) CHECK(d.test.classes[static_cast<std::size_t>(n)] == 7 + n % 3);
  check_pixels(d.train, 0);
  check_pixels(d.test, 100);
  check_one_hot(d.train);
  check_one_hot(d.test);
}

}  // namespace

// --- decode ---------------------------------------------------------------------------------------------

TEST_CASE("cifar10::decode turns planar records into NHWC floats and one-hot labels", "[cifar10]") {
  Bytes bytes = records(0, 4, 3);
  // A marker pixel: record 2, green channel, row 5, column 7 -> NHWC [2][5][7][1].
  bytes[2 * 3073 + 1 + 1 * 1024 + 5 * 32 + 7] = 200;
  const cifar10::Split s = cifar10::decode(bytes, "fixture");
  REQUIRE(s.size() == 4);
  CHECK(s.images.shape() == dropnet::Shape{4, 32, 32, 3});
  CHECK(s.labels.shape() == dropnet::Shape{4, 10});
  CHECK(s.images.host()[((2 * 32 + 5) * 32 + 7) * 3 + 1] == 200.0f / 255.0f);
  CHECK(s.images.host()[((2 * 32 + 5) * 32 + 7) * 3 + 0] == pixel(2, 0, 5, 7) / 255.0f);  // red untouched
  CHECK(s.classes == std::vector<std::uint8_t>{3, 4, 5, 6});
  check_one_hot(s);
  bytes[2 * 3073 + 1 + 1 * 1024 + 5 * 32 + 7] = pixel(2, 1, 5, 7);
  check_pixels(cifar10::decode(bytes, "fixture"), 0);
}

TEST_CASE("cifar10::decode scales 0 to 0 and 255 to 1 exactly", "[cifar10]") {
  Bytes bytes(3073, 0);
  bytes[1] = 255;
  const cifar10::Split s = cifar10::decode(bytes, "fixture");
  CHECK(s.images.host()[0] == 1.0f);
  CHECK(s.images.host()[1] == 0.0f);
  CHECK(s.labels.host()[0] == 1.0f);
}

TEST_CASE("cifar10::decode limits", "[cifar10]") {
  const Bytes bytes = records(0, 5);
  CHECK(cifar10::decode(bytes, "f", 2).size() == 2);
  check_pixels(cifar10::decode(bytes, "f", 2), 0);
  CHECK(cifar10::decode(bytes, "f", 5).size() == 5);
  CHECK(cifar10::decode(bytes, "f", 100).size() == 5);  // above the count: all records
  REQUIRE_THROWS_MATCHES(cifar10::decode(bytes, "f", 0), dropnet::InvalidArgument,
                         MessageContains("limit is 0"));
  REQUIRE_THROWS_AS(cifar10::decode(bytes, "f", -2), dropnet::InvalidArgument);
}

TEST_CASE("cifar10::decode names the source and the problem in its errors", "[cifar10]") {
  Bytes bytes = records(0, 3);
  SECTION("size not a multiple of the record") {
    bytes.resize(3 * 3073 - 5);
    REQUIRE_THROWS_MATCHES(
        cifar10::decode(bytes, "data_batch_3.bin"), dropnet::DataError,
        MessageContains("data_batch_3.bin: size 9214 bytes is not a multiple of the 3073-byte record"));
  }
  SECTION("label byte above 9") {
    bytes[1 * 3073] = 12;
    REQUIRE_THROWS_MATCHES(cifar10::decode(bytes, "test_batch.bin"), dropnet::DataError,
                           MessageContains("test_batch.bin: record 1 has label byte 12; expected 0-9"));
  }
  SECTION("label byte 10, beyond the kept records") {
    bytes[2 * 3073] = 10;
    REQUIRE_THROWS_MATCHES(cifar10::decode(bytes, "b.bin", 1), dropnet::DataError,
                           MessageContains("record 2 has label byte 10"));
  }
  SECTION("empty") {
    REQUIRE_THROWS_MATCHES(cifar10::decode({}, "e.bin"), dropnet::DataError,
                           MessageContains("e.bin: file is empty"));
  }
}

// --- load from a directory ------------------------------------------------------------------------------

TEST_CASE("cifar10::load reads a directory of batch files in order", "[cifar10]") {
  TempDir tmp;
  write_fixture(tmp.path());
  fs::create_directories(tmp.path() / "cifar-10-batches-bin");  // ignored: the files are right here
  const cifar10::Dataset d = cifar10::load(tmp.path());
  check_fixture(d);
  CHECK(fs::path(d.source) == tmp.path());
}

TEST_CASE("cifar10::load with sparse_labels gives (N) class indices for sparse_categorical_crossentropy",
          "[cifar10]") {
  TempDir tmp;
  write_fixture(tmp.path());
  const cifar10::Dataset one_hot = cifar10::load(tmp.path());
  const cifar10::Dataset d = cifar10::load(tmp.path(), {.sparse_labels = true});
  REQUIRE(d.train.labels.shape() == dropnet::Shape{10});
  REQUIRE(d.test.labels.shape() == dropnet::Shape{kTestCount});
  for (const auto* split : {&d.train, &d.test}) {
    const std::vector<float> labels = split->labels.to_vector();
    for (std::size_t n = 0; n < labels.size(); ++n) CHECK(labels[n] == float(split->classes[n]));
  }
  CHECK(d.train.images.to_vector() == one_hot.train.images.to_vector());  // only the labels differ
  CHECK(d.train.classes == one_hot.train.classes);
  CHECK(cifar10::sparse_labels({3, 0, 9}).to_vector() == std::vector<float>{3, 0, 9});
}

TEST_CASE("cifar10::load finds cifar-10-batches-bin/ below the given directory", "[cifar10]") {
  TempDir tmp;
  write_fixture(tmp.path() / "cifar-10-batches-bin");
  const cifar10::Dataset d = cifar10::load(tmp.path());
  check_fixture(d);
  CHECK(fs::path(d.source) == tmp.path() / "cifar-10-batches-bin");
}

TEST_CASE("cifar10::load limits keep the first records across batch files", "[cifar10]") {
  TempDir tmp;
  write_fixture(tmp.path());
  const cifar10::Dataset d = cifar10::load(tmp.path(), {.train_limit = 4, .test_limit = 1});
  check_fixture(d, 4, 1);  // records 0-1 from data_batch_1, 2-3 from data_batch_2
  check_fixture(cifar10::load(tmp.path(), {.train_limit = 1000, .test_limit = 3}));
  REQUIRE_THROWS_MATCHES(cifar10::load(tmp.path(), {.train_limit = 0}), dropnet::InvalidArgument,
                         MessageContains("train_limit is 0; expected -1"));
  REQUIRE_THROWS_MATCHES(cifar10::load(tmp.path(), {.test_limit = -5}), dropnet::InvalidArgument,
                         MessageContains("test_limit is -5"));
}

TEST_CASE("cifar10::load reports a missing file by name", "[cifar10]") {
  TempDir tmp;
  write_fixture(tmp.path());
  SECTION("a training file") {
    fs::remove(tmp.path() / "data_batch_4.bin");
    REQUIRE_THROWS_MATCHES(cifar10::load(tmp.path()), dropnet::IoError,
                           MessageContains("data_batch_4.bin: file is missing"));
  }
  SECTION("the test file") {
    fs::remove(tmp.path() / "test_batch.bin");
    REQUIRE_THROWS_MATCHES(cifar10::load(tmp.path()), dropnet::IoError,
                           MessageContains("test_batch.bin: file is missing"));
  }
  SECTION("no batch files at all") {
    TempDir empty;
    REQUIRE_THROWS_MATCHES(cifar10::load(empty.path()), dropnet::IoError,
                           MessageContains("no CIFAR-10 batch files"));
  }
  SECTION("no such source") {
    REQUIRE_THROWS_MATCHES(cifar10::load(tmp.path() / "nope"), dropnet::IoError,
                           MessageContains("nope: no such file or directory"));
  }
}

TEST_CASE("cifar10::load reports a truncated file and a bad label by file and record", "[cifar10]") {
  TempDir tmp;
  write_fixture(tmp.path());
  SECTION("truncated") {
    Bytes bytes = read_bytes(tmp.path() / "data_batch_3.bin");
    bytes.pop_back();
    write_file(tmp.path() / "data_batch_3.bin", bytes);
    REQUIRE_THROWS_MATCHES(
        cifar10::load(tmp.path()), dropnet::DataError,
        MessageContains("data_batch_3.bin: size 3072 bytes is not a multiple of the 3073-byte record",
                        "truncated"));
  }
  SECTION("label byte above 9") {
    Bytes bytes = read_bytes(tmp.path() / "test_batch.bin");
    bytes[2 * 3073] = 12;
    write_file(tmp.path() / "test_batch.bin", bytes);
    REQUIRE_THROWS_MATCHES(cifar10::load(tmp.path()), dropnet::DataError,
                           MessageContains("test_batch.bin: record 2 has label byte 12; expected 0-9"));
  }
  SECTION("a bad label is reported even when the limit would not reach it") {
    Bytes bytes = read_bytes(tmp.path() / "data_batch_5.bin");
    bytes[3073] = 255;
    write_file(tmp.path() / "data_batch_5.bin", bytes);
    REQUIRE_THROWS_MATCHES(cifar10::load(tmp.path(), {.train_limit = 1}), dropnet::DataError,
                           MessageContains("data_batch_5.bin: record 1 has label byte 255"));
  }
}

// --- load from .tar.gz ----------------------------------------------------------------------------------

TEST_CASE("cifar10::load reads cifar-10-binary.tar.gz directly", "[cifar10]") {
  TempDir tmp;
  const fs::path archive = tmp.path() / "cifar-10-binary.tar.gz";
  write_gz(archive, fixture_tar());
  const cifar10::Dataset d = cifar10::load(archive);
  check_fixture(d);
  CHECK(d.source == archive.string());
  check_fixture(cifar10::load(archive, {.train_limit = 6, .test_limit = 2}), 6, 2);
}

TEST_CASE("cifar10::load from .tar.gz reports missing and bad members", "[cifar10]") {
  TempDir tmp;
  const fs::path archive = tmp.path() / "cifar-10-binary.tar.gz";
  SECTION("a missing member") {
    Bytes tar;
    for (const auto& [name, bytes] : fixture_files())
      if (name != "data_batch_2.bin") append_file(tar, "cifar-10-batches-bin/" + name, bytes);
    finish(tar);
    write_gz(archive, tar);
    REQUIRE_THROWS_MATCHES(cifar10::load(archive), dropnet::IoError,
                           MessageContains("has no member cifar-10-batches-bin/data_batch_2.bin"));
  }
  SECTION("a truncated member file") {
    Bytes tar;
    for (auto [name, bytes] : fixture_files()) {
      if (name == "test_batch.bin") bytes.erase(bytes.end() - 10, bytes.end());
      append_file(tar, "cifar-10-batches-bin/" + name, bytes);
    }
    finish(tar);
    write_gz(archive, tar);
    REQUIRE_THROWS_MATCHES(
        cifar10::load(archive), dropnet::DataError,
        MessageContains("member cifar-10-batches-bin/test_batch.bin): size 9209 bytes is not a multiple"));
  }
}

TEST_CASE("cifar10::load rejects a truncated or garbage archive with a DataError", "[cifar10]") {
  TempDir tmp;
  const fs::path archive = tmp.path() / "cifar-10-binary.tar.gz";
  write_gz(archive, fixture_tar());
  const Bytes good = read_bytes(archive);
  SECTION("gzip stream cut in half (an interrupted download)") {
    write_file(archive, Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2)));
    REQUIRE_THROWS_MATCHES(cifar10::load(archive), dropnet::DataError,
                           MessageContains("cifar-10-binary.tar.gz", "truncated"));
  }
  SECTION("corrupt compressed bytes") {
    Bytes bad = good;
    for (std::size_t i = 40; i < bad.size() - 20; i += 97) bad[i] ^= 0x5a;
    write_file(archive, bad);
    REQUIRE_THROWS_MATCHES(cifar10::load(archive), dropnet::DataError,
                           MessageContains("cifar-10-binary.tar.gz"));
  }
  SECTION("random bytes, not gzip at all") {
    std::mt19937 rng(7);
    Bytes junk(5000);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    junk[0] = 'x';  // never the gzip magic
    write_file(archive, junk);
    REQUIRE_THROWS_MATCHES(cifar10::load(archive), dropnet::DataError,
                           MessageContains("cifar-10-binary.tar.gz: bad tar header checksum"));
  }
  SECTION("valid gzip of a tar cut inside a member") {
    const Bytes tar = fixture_tar();
    write_gz(archive, Bytes(tar.begin(), tar.begin() + 512 + 512 + 3000));
    REQUIRE_THROWS_MATCHES(
        cifar10::load(archive), dropnet::DataError,
        MessageContains("archive is truncated: member cifar-10-batches-bin/data_batch_1.bin declares 6146 "
                        "bytes"));
  }
  SECTION("empty file") {
    write_file(archive, {});
    REQUIRE_THROWS_MATCHES(cifar10::load(archive), dropnet::DataError, MessageContains("archive is empty"));
  }
}

// --- the tar reader on its own --------------------------------------------------------------------------

TEST_CASE("read_tar_gz handles ustar prefixes and GNU long names and pax paths", "[cifar10][tar]") {
  TempDir tmp;
  const std::string long_name = "deep/" + std::string(150, 'd') + "/file.bin";
  Bytes tar;
  append_file(tar, "./plain.txt", {'a', 'b'});
  append_member(tar, tar_header("prefixed.bin", 3, '0', "some/dir"), {1, 2, 3});
  Bytes long_data(long_name.begin(), long_name.end());
  long_data.push_back(0);
  append_member(tar, tar_header("././@LongLink", long_data.size(), 'L'), long_data);
  append_member(tar, tar_header(long_name.substr(0, 100), 1), {42});
  const std::string record = "path=pax/named.bin\n";
  const std::string pax = std::to_string(record.size() + 3) + " " + record;  // 2 digits + space
  append_member(tar, tar_header("PaxHeaders/x", pax.size(), 'x'), Bytes(pax.begin(), pax.end()));
  append_member(tar, tar_header("truncated-name", 2), {7, 8});
  append_member(tar, tar_header("link", 0, '2'), {});
  append_file(tar, "skipped.bin", Bytes(1000, 9));
  finish(tar);
  write_gz(tmp.path() / "t.tar.gz", tar);

  const auto members = dropnet::data::read_tar_gz(
      tmp.path() / "t.tar.gz", [](std::string_view name) { return name != "skipped.bin"; });
  REQUIRE(members.size() == 4);
  CHECK(members[0].name == "plain.txt");
  CHECK(members[0].bytes == Bytes{'a', 'b'});
  CHECK(members[1].name == "some/dir/prefixed.bin");
  CHECK(members[1].bytes == Bytes{1, 2, 3});
  CHECK(members[2].name == long_name);
  CHECK(members[2].bytes == Bytes{42});
  CHECK(members[3].name == "pax/named.bin");
  CHECK(members[3].bytes == Bytes{7, 8});

  // zlib reads an uncompressed stream transparently: a plain .tar works too.
  write_file(tmp.path() / "t.tar", tar);
  CHECK(dropnet::data::read_tar_gz(tmp.path() / "t.tar", [](std::string_view) { return true; }).size() == 5);
}

TEST_CASE("read_tar_gz rejects corrupt headers", "[cifar10][tar]") {
  TempDir tmp;
  const fs::path path = tmp.path() / "bad.tar.gz";
  auto all = [](std::string_view) { return true; };
  SECTION("checksum") {
    Bytes tar;
    append_file(tar, "a.bin", {1});
    tar[0] = 'b';  // name changed after the checksum was computed
    finish(tar);
    write_gz(path, tar);
    REQUIRE_THROWS_MATCHES(dropnet::data::read_tar_gz(path, all), dropnet::DataError,
                           MessageContains("bad tar header checksum at uncompressed byte 0"));
  }
  SECTION("size field") {
    Bytes h = tar_header("a.bin", 1);
    put(h, 124, "9999");  // not octal; checksum recomputed so only the size is wrong
    put(h, 148, "        ");
    unsigned sum = 0;
    for (std::uint8_t b : h) sum += b;
    put(h, 148, octal(sum, 6));
    h[154] = 0;
    Bytes tar;
    append_member(tar, h, {1});
    finish(tar);
    write_gz(path, tar);
    REQUIRE_THROWS_MATCHES(dropnet::data::read_tar_gz(path, all), dropnet::DataError,
                           MessageContains("malformed size field in the tar header of a.bin"));
  }
  SECTION("partial header") {
    Bytes tar;
    append_file(tar, "a.bin", {1});
    tar.resize(tar.size() + 100, 0);
    write_gz(path, tar);
    REQUIRE_THROWS_MATCHES(dropnet::data::read_tar_gz(path, all), dropnet::DataError,
                           MessageContains("100 bytes of a 512-byte tar header"));
  }
  SECTION("pax record whose length runs past the header") {
    const std::string pax = "99 path=x\n";
    Bytes tar;
    append_member(tar, tar_header("PaxHeaders/x", pax.size(), 'x'), Bytes(pax.begin(), pax.end()));
    append_file(tar, "a.bin", {1});
    finish(tar);
    write_gz(path, tar);
    REQUIRE_THROWS_MATCHES(dropnet::data::read_tar_gz(path, all), dropnet::DataError,
                           MessageContains("malformed pax extended header"));
  }
  SECTION("missing file") {
    REQUIRE_THROWS_MATCHES(dropnet::data::read_tar_gz(tmp.path() / "none.tar.gz", all), dropnet::IoError,
                           MessageContains("none.tar.gz: cannot open archive"));
  }
}

// --- the bundled sample ---------------------------------------------------------------------------------

TEST_CASE("the bundled sample in data/cifar10-sample loads 500 train and 200 test records", "[cifar10]") {
  const fs::path sample = fs::path(DROPNET_SOURCE_DIR) / "data" / "cifar10-sample";
  const cifar10::Dataset d = cifar10::load(sample);
  REQUIRE(d.train.size() == 500);
  REQUIRE(d.test.size() == 200);
  std::array<int, 10> seen{};
  for (std::uint8_t c : d.train.classes) {
    REQUIRE(c <= 9);
    ++seen[c];
  }
  for (std::uint8_t c : d.test.classes) REQUIRE(c <= 9);
  for (int k = 0; k < 10; ++k) CHECK(seen[static_cast<std::size_t>(k)] > 0);
  check_one_hot(d.test);
  // Test record 0's pixel (row 31, column 0, blue) against the file's planar byte.
  const Bytes raw = read_bytes(sample / "test_batch.bin");
  CHECK(d.test.images.host()[(31 * 32 + 0) * 3 + 2] == raw[1 + 2 * 1024 + 31 * 32] / 255.0f);
  CHECK(d.test.classes[0] == raw[0]);
}
