// summary.cpp: model.summary() in Keras 3's layout: layer (type), output shape with None for the batch,
// parameter counts with thousands separators, then the totals with their size in memory.
#include <fmt/format.h>

#include "model/impl.hpp"

namespace dropnet {
namespace {

std::string with_commas(std::int64_t v) {
  std::string digits = std::to_string(v), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Keras' readable_memory_size: powers of 1024 with B, KB, MB, GB.
std::string memory_size(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 3) {
    bytes /= 1024.0;
    ++u;
  }
  return fmt::format("{:.2f} {}", bytes, units[u]);
}

std::string repeat(const char* s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// Pads to `width` display columns (the strings here are ASCII).
std::string cell(const std::string& s, int width, bool right) {
  const int pad = std::max(0, width - static_cast<int>(s.size()));
  return right ? std::string(std::size_t(pad), ' ') + s : s + std::string(std::size_t(pad), ' ');
}

}  // namespace

std::string Sequential::summary() const {
  const Impl& m = *impl_;
  constexpr int w0 = 31, w1 = 22, w2 = 13;  // column contents; one space of padding either side
  std::string s = fmt::format("Model: \"{}\"\n", m.name);
  const auto rule = [&](const char* l, const char* h, const char* mid, const char* r) {
    return std::string(l) + repeat(h, w0 + 2) + mid + repeat(h, w1 + 2) + mid + repeat(h, w2 + 2) + r + "\n";
  };
  const auto row = [&](const char* v, const std::string& a, const std::string& b, const std::string& c) {
    return std::string(v) + " " + cell(a, w0, false) + " " + v + " " + cell(b, w1, false) + " " + v + " " +
           cell(c, w2, true) + " " + v + "\n";
  };
  s += rule("\u250f", "\u2501", "\u2533", "\u2513");
  s += row("\u2503", "Layer (type)", "Output Shape", "Param #");
  s += rule("\u2521", "\u2501", "\u2547", "\u2529");
  Shape shape = m.input_shape;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = *m.layers[i];
    std::string out = "?";
    if (l.built()) {
      Shape with_batch = l.output_shape();
      std::string dims = to_string(with_batch);  // "(30, 30, 64)" -> "(None, 30, 30, 64)"
      out = "(None, " + dims.substr(1);
      if (with_batch.size() == 1) out = fmt::format("(None, {})", with_batch[0]);
    }
    s += row("\u2502", fmt::format("{} ({})", l.name(), l.type()), out,
             l.built() ? with_commas(l.count_params()) : "0 (unbuilt)");
    if (i + 1 < m.layers.size()) s += rule("\u251c", "\u2500", "\u253c", "\u2524");
  }
  s += rule("\u2514", "\u2500", "\u2534", "\u2518");
  const std::int64_t total = count_params();
  std::int64_t fixed = 0;  // non-trainable (Param::trainable), as Keras counts them apart
  for (const auto& l : m.layers)
    for (const Param& p : l->params())
      if (!p.trainable) fixed += element_count(p.shape);
  s += fmt::format(" Total params: {} ({})\n", with_commas(total), memory_size(double(total) * 4));
  s += fmt::format(" Trainable params: {} ({})\n", with_commas(total - fixed), memory_size(double(total - fixed) * 4));
  s += fmt::format(" Non-trainable params: {} ({})\n", with_commas(fixed), memory_size(double(fixed) * 4));
  return s;
}

}  // namespace dropnet
