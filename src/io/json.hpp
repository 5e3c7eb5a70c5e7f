// json.hpp: a minimal, strict JSON (RFC 8259) parser and string escaper for the safetensors header.
//
// Strict means: one value and nothing after it but whitespace; no comments, trailing commas, NaN, single
// quotes or duplicate object keys; strings must be valid UTF-8 with no raw control characters; nesting
// is limited (kMaxDepth) so that a hostile header cannot exhaust the stack. Numbers keep their text: the
// caller converts the ones it needs (as_u64) and so decides what range and form it accepts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dropnet::io::json {

inline constexpr int kMaxDepth = 64;

// A syntax error: `offset` is the byte offset (from the start of the parsed text) where it was found.
class ParseError : public std::runtime_error {
 public:
  ParseError(std::size_t offset, const std::string& what) : std::runtime_error(what), offset(offset) {}
  std::size_t offset;
};

struct Member;

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  std::string text;                                 // a String's decoded value, or a Number's source text
  std::vector<Value> items;                         // Array
  std::vector<Member> members;                      // Object, in source order, keys unique

  bool is_object() const noexcept { return kind == Kind::Object; }
  // The member named `key` of an object, or nullptr.
  const Value* find(std::string_view key) const noexcept;
  // A Number that is a non-negative integer written without fraction or exponent, fitting 64 bits.
  std::optional<std::uint64_t> as_u64() const noexcept;
};

struct Member {
  std::string first;  // the key
  Value second;
};

// "object", "array", "string", "number", "true/false", "null".
const char* kind_name(Value::Kind kind) noexcept;

// Parses `text` (one JSON value, surrounded by optional whitespace). Throws ParseError.
Value parse(std::string_view text);

// `s` as a JSON string literal, quotes included (control characters escaped as \uXXXX).
std::string quote(std::string_view s);

}  // namespace dropnet::io::json
