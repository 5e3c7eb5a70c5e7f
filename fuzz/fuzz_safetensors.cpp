// fuzz_safetensors.cpp: libFuzzer target for the safetensors reader and the checkpoint loaders.
//
// Each input is parsed as a whole file. A file the reader accepts must survive a write/re-read round trip
// unchanged and is then offered to load_weights and load_checkpoint on a tiny model (which check names,
// shapes, dtypes and seeds). Only dropnet::Error may come out; a crash, a sanitizer report or a round-trip
// mismatch is a finding.
//
// With DROPNET_FUZZ_SEEDS=DIR set, the first run writes a real checkpoint and weights file of the tiny
// model into DIR (scripts/fuzz.sh uses them as the seed corpus).
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "dropnet/checkpoint.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "io/checkpoint_detail.hpp"
#include "io/safetensors.hpp"

namespace {

dropnet::Sequential& model() {
  static dropnet::Sequential* m = [] {
    auto* s = new dropnet::Sequential({2, 2, 1});
    s->add(dropnet::Conv2D(2, {1, 1}));
    s->add(dropnet::Dropout(0.5));
    s->add(dropnet::Flatten());
    s->add(dropnet::Dense(2, {.activation = "softmax"}));
    s->compile({.loss = "categorical_crossentropy", .device = dropnet::Device::CPU, .seed = 1});
    return s;
  }();
  return *m;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("DROPNET_FUZZ_SEEDS")) {
    std::filesystem::create_directories(dir);
    dropnet::save_checkpoint(model(), std::filesystem::path(dir) / "checkpoint.safetensors");
    dropnet::save_weights(model(), std::filesystem::path(dir) / "weights.safetensors", {{"note", "seed"}});
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using dropnet::io::SafetensorsFile;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  std::optional<SafetensorsFile> file;
  try {
    file = SafetensorsFile::parse(std::move(bytes), "fuzz.safetensors");
  } catch (const dropnet::DataError&) {
    return 0;
  }
  // Round trip: what was accepted, written again, must read back the same.
  dropnet::io::SafetensorsWriter w;
  bool writable = true;
  try {
    for (const auto& t : file->tensors()) w.add(t.name, t.dtype, t.shape, file->bytes(t));
  } catch (const dropnet::InvalidArgument&) {
    writable = false;  // e.g. shape [0, 2^62]: accepted (0 bytes) but not re-creatable by the writer
  }
  if (writable) {
    for (const auto& [k, v] : file->metadata()) w.set_metadata(k, v);
    const SafetensorsFile again = SafetensorsFile::parse(w.serialize(), "roundtrip");  // must not throw
    if (again.tensors().size() != file->tensors().size() || again.metadata() != file->metadata()) std::abort();
    for (std::size_t i = 0; i < again.tensors().size(); ++i) {
      const auto& a = again.tensors()[i];
      const auto* b = file->find(a.name);
      if (b == nullptr || a.dtype != b->dtype || a.shape != b->shape) std::abort();
      const auto ba = again.bytes(a), bb = file->bytes(*b);
      if (!std::equal(ba.begin(), ba.end(), bb.begin(), bb.end())) std::abort();
    }
  }
  try {
    dropnet::detail::load_weights_from(model(), *file);
  } catch (const dropnet::DataError&) {
  }
  try {
    dropnet::detail::load_checkpoint_from(model(), *file);
  } catch (const dropnet::DataError&) {
  }
  return 0;
}
