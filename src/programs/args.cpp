// args.cpp: the flag parser and strict number conversion (std::from_chars over the whole string).
#include "programs/args.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>
#include <system_error>

#include <fmt/format.h>

namespace dropnet::cli {
namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// "; did you mean --epochs?" when one flag is close to `name`, else "".
std::string suggestion(std::string_view name, std::span<const FlagSpec> specs) {
  const FlagSpec* best = nullptr;
  std::size_t best_distance = 3;  // suggest only near misses
  for (const FlagSpec& s : specs) {
    const std::size_t d = edit_distance(name, s.name);
    if (d < best_distance) best = &s, best_distance = d;
  }
  return best ? fmt::format("; did you mean --{}?", best->name) : std::string();
}

}  // namespace

std::string suggest_word(std::string_view word, std::span<const std::string_view> candidates) {
  std::string_view best;
  std::size_t best_distance = 3;  // suggest only near misses
  for (const std::string_view c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  return best.empty() ? std::string() : fmt::format("; did you mean {}?", best);
}

Flags parse_flags(std::span<const std::string> args, std::span<const FlagSpec> specs) {
  Flags flags;
  flags.specs_ = specs;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "--help" || word == "-h") {
      flags.help = true;
      return flags;
    }
    if (word.size() < 3 || word.rfind("--", 0) != 0)
      throw UsageError(fmt::format("unexpected argument '{}'; flags look like --name VALUE", word));

    const std::size_t eq = word.find('=');
    const std::string name = word.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const auto spec = std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end())
      throw UsageError(fmt::format("unknown flag '--{}'{} (see --help for the list)", name, suggestion(name, specs)));
    if (flags.given_.count(name))
      throw UsageError(fmt::format("--{} given twice; give it once", name));

    std::string value;
    if (eq != std::string::npos) {
      value = word.substr(eq + 1);
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      value = args[++i];
    } else {
      throw UsageError(fmt::format("--{}: missing value; expected --{} {}", name, name, spec->placeholder));
    }
    if (value.empty())
      throw UsageError(fmt::format("--{}: empty value; expected --{} {}", name, name, spec->placeholder));
    flags.given_.emplace(name, std::move(value));
  }
  return flags;
}

const FlagSpec& Flags::spec(std::string_view name) const {
  for (const FlagSpec& s : specs_)
    if (s.name == name) return s;
  throw std::logic_error(fmt::format("flag --{} is not declared", name));  // a bug in the program
}

std::optional<std::string> Flags::value(std::string_view name) const {
  if (const auto it = given_.find(name); it != given_.end()) return it->second;
  const FlagSpec& s = spec(name);
  if (s.default_value.empty()) return std::nullopt;
  return s.default_value;
}

bool Flags::given(std::string_view name) const { return given_.find(name) != given_.end(); }

std::string Flags::get_string(std::string_view name) const {
  std::optional<std::string> v = value(name);
  if (!v) throw std::logic_error(fmt::format("flag --{} has no value and no default", name));
  return *v;
}

void Flags::require(bool ok, std::string_view name, std::string_view expected) const {
  if (!ok) throw UsageError(fmt::format("--{} {}: expected {}", name, get_string(name), expected));
}

std::int64_t Flags::get_int(std::string_view name, std::int64_t min, std::int64_t max) const {
  const std::string text = get_string(name);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  const bool whole = ec == std::errc() && end == text.data() + text.size();
  const std::string expected =
      max == INT64_MAX ? fmt::format("an integer >= {}", min) : fmt::format("an integer from {} to {}", min, max);
  require(whole && v >= min && v <= max, name, expected);
  return v;
}

double Flags::get_double(std::string_view name) const {
  const std::string text = get_string(name);
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  require(ec == std::errc() && end == text.data() + text.size() && std::isfinite(v), name, "a number");
  return v;
}

std::string format_flag_help(std::span<const FlagSpec> specs) {
  constexpr std::size_t kColumn = 26, kWidth = 100;
  std::string out;
  for (const FlagSpec& s : specs) {
    std::string head = fmt::format("  --{} {}", s.name, s.placeholder);
    std::string text = s.help;
    if (!s.default_value.empty()) text += fmt::format(" (default: {})", s.default_value);
    // Word-wrap the help text into the right-hand column.
    std::istringstream words(text);
    std::string word, line = head.size() + 2 <= kColumn ? head + std::string(kColumn - head.size(), ' ')
                                                        : head + "\n" + std::string(kColumn, ' ');
    std::size_t line_start = line.rfind('\n') == std::string::npos ? 0 : line.rfind('\n') + 1;
    bool first = true;
    while (words >> word) {
      if (!first && line.size() - line_start + 1 + word.size() > kWidth) {
        line += "\n" + std::string(kColumn, ' ');
        line_start = line.size() - kColumn;
        first = true;
      }
      line += (first ? "" : " ") + word;
      first = false;
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace dropnet::cli
