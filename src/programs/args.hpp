// args.hpp: the command-line flag parser of the dropnet and dropnet-bench programs (dropnet_program_support).
//
// Each command declares its flags as FlagSpecs (name, value placeholder, default, help). parse_flags()
// accepts "--name value" and "--name=value", rejects unknown, repeated and value-less flags, and returns
// the raw strings; the typed getters convert them strictly (the whole string must parse) and range-check
// them. Every problem is a UsageError whose message says what was wrong and what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dropnet::cli {

// A wrong command line. main() prints it as one line and exits with kExitUsage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // the library failed: bad data file, no GPU, ...
inline constexpr int kExitUsage = 2;    // bad command line
inline constexpr int kExitInterrupted = 130;  // Ctrl-C (128 + SIGINT), after saving a checkpoint

struct FlagSpec {
  std::string name;           // without the dashes: "epochs"
  std::string placeholder;    // shown in help: "N", "RATE", "DIR|ARCHIVE"
  std::string default_value;  // "" when the flag has no default (optional)
  std::string help;           // one or more sentences; wrapped by format_flag_help
};

class Flags {
 public:
  // True when the user wrote --help or -h (then nothing else was checked).
  bool help = false;

  // The value given, else the spec's default; std::nullopt when neither exists.
  std::optional<std::string> value(std::string_view name) const;
  // True when the user gave the flag explicitly.
  bool given(std::string_view name) const;

  // Typed views of value(name), which must exist (a default or given). Throw UsageError when the text is
  // not entirely a number of that kind or lies outside [min, max].
  std::int64_t get_int(std::string_view name, std::int64_t min, std::int64_t max) const;
  // A finite decimal number; ranges are checked by the caller (their wording differs per flag).
  double get_double(std::string_view name) const;
  std::string get_string(std::string_view name) const;

  // Throws UsageError("--name VALUE: expected ...") unless ok.
  void require(bool ok, std::string_view name, std::string_view expected) const;

 private:
  friend Flags parse_flags(std::span<const std::string> args, std::span<const FlagSpec> specs);
  std::span<const FlagSpec> specs_;
  std::map<std::string, std::string, std::less<>> given_;
  const FlagSpec& spec(std::string_view name) const;
};

// Parses `args` (the words after the command name) against `specs`. Throws UsageError.
Flags parse_flags(std::span<const std::string> args, std::span<const FlagSpec> specs);

// "; did you mean train?" when one of `candidates` is a near miss of `word` (edit distance 1 or 2,
// the same rule as for flags), else "".
std::string suggest_word(std::string_view word, std::span<const std::string_view> candidates);

// The flags as an aligned, wrapped list: "  --epochs N          Training epochs. (default: 55)".
std::string format_flag_help(std::span<const FlagSpec> specs);

}  // namespace dropnet::cli
