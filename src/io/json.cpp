// json.cpp: the strict JSON parser (see json.hpp). Recursive descent over a string_view; every read is
// preceded by a bounds check, so truncated or hostile input ends in a ParseError, never a stray read.
#include "io/json.hpp"

#include <fmt/format.h>

namespace dropnet::io::json {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Value document() {
    skip_ws();
    Value v = value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& what) const { throw ParseError(pos_, what); }
  bool at_end() const noexcept { return pos_ >= s_.size(); }
  char peek() const noexcept { return at_end() ? '\0' : s_[pos_]; }

  void skip_ws() noexcept {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  void expect(char c, const char* context) {
    if (at_end()) fail(fmt::format("unexpected end of text, expected '{}' {}", c, context));
    if (s_[pos_] != c) fail(fmt::format("expected '{}' {}, found {}", c, context, describe_here()));
    ++pos_;
  }

  std::string describe_here() const {
    if (at_end()) return "the end of the text";
    const auto c = static_cast<unsigned char>(s_[pos_]);
    if (c >= 0x20 && c < 0x7F) return fmt::format("'{}'", char(c));
    return fmt::format("byte 0x{:02X}", c);
  }

  void literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) fail(fmt::format("invalid literal; expected '{}'", word));
    pos_ += word.size();
  }

  Value value(int depth) {
    if (depth >= kMaxDepth) fail(fmt::format("nesting deeper than {} levels", kMaxDepth));
    if (at_end()) fail("unexpected end of text, expected a value");
    Value v;
    switch (s_[pos_]) {
      case '{': v.kind = Value::Kind::Object; object(v, depth); break;
      case '[': v.kind = Value::Kind::Array; array(v, depth); break;
      case '"': v.kind = Value::Kind::String; v.text = string(); break;
      case 't': literal("true"); v.kind = Value::Kind::Bool; v.boolean = true; break;
      case 'f': literal("false"); v.kind = Value::Kind::Bool; break;
      case 'n': literal("null"); break;
      default:
        if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) {
          v.kind = Value::Kind::Number;
          v.text = number();
        } else {
          fail(fmt::format("expected a value, found {}", describe_here()));
        }
    }
    return v;
  }

  void object(Value& v, int depth) {
    ++pos_;  // '{'
    skip_ws();
    if (peek() == '}') { ++pos_; return; }
    for (;;) {
      skip_ws();
      if (peek() != '"') fail(fmt::format("expected a string key in an object, found {}", describe_here()));
      const std::size_t key_at = pos_;
      std::string key = string();
      for (const auto& m : v.members)
        if (m.first == key) throw ParseError(key_at, fmt::format("duplicate key {}", quote(key)));
      skip_ws();
      expect(':', "after an object key");
      skip_ws();
      Value member = value(depth + 1);
      v.members.push_back(Member{std::move(key), std::move(member)});
      skip_ws();
      if (peek() == ',') { ++pos_; continue; }
      if (peek() == '}') { ++pos_; return; }
      fail(fmt::format("expected ',' or '}}' in an object, found {}", describe_here()));
    }
  }

  void array(Value& v, int depth) {
    ++pos_;  // '['
    skip_ws();
    if (peek() == ']') { ++pos_; return; }
    for (;;) {
      skip_ws();
      v.items.push_back(value(depth + 1));
      skip_ws();
      if (peek() == ',') { ++pos_; continue; }
      if (peek() == ']') { ++pos_; return; }
      fail(fmt::format("expected ',' or ']' in an array, found {}", describe_here()));
    }
  }

  std::string number() {
    const std::size_t begin = pos_;
    auto digits = [&] {
      const std::size_t d = pos_;
      while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - d;
    };
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') fail("a number may not have leading zeros");
    } else if (digits() == 0) {
      fail("expected digits in a number");
    }
    if (peek() == '.') {
      ++pos_;
      if (digits() == 0) fail("expected digits after the decimal point");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits() == 0) fail("expected digits in the exponent");
    }
    return std::string(s_.substr(begin, pos_ - begin));
  }

  unsigned hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned u = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      u <<= 4;
      if (c >= '0' && c <= '9') u |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') u |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') u |= unsigned(c - 'A' + 10);
      else { --pos_; fail("invalid hex digit in a \\u escape"); }
    }
    return u;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  // One UTF-8 sequence starting at pos_, validated (no overlongs, surrogates or values past U+10FFFF).
  void utf8(std::string& out) {
    const auto b0 = static_cast<unsigned char>(s_[pos_]);
    int len = 0;
    unsigned cp = 0, min = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, cp = b0 & 0x1F, min = 0x80;
    else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3, cp = b0 & 0x0F, min = 0x800;
    else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4, cp = b0 & 0x07, min = 0x10000;
    else fail(fmt::format("invalid UTF-8 byte 0x{:02X} in a string", b0));
    if (s_.size() - pos_ < std::size_t(len)) fail("truncated UTF-8 sequence in a string");
    for (int i = 1; i < len; ++i) {
      const auto b = static_cast<unsigned char>(s_[pos_ + std::size_t(i)]);
      if ((b & 0xC0) != 0x80) fail("invalid UTF-8 continuation byte in a string");
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("invalid UTF-8 sequence in a string");
    out.append(s_.substr(pos_, std::size_t(len)));
    pos_ += std::size_t(len);
  }

  std::string string() {
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') { ++pos_; return out; }
      if (c < 0x20) fail(fmt::format("raw control character 0x{:02X} in a string", c));
      if (c >= 0x80) { utf8(out); continue; }
      if (c != '\\') { out += char(c); ++pos_; continue; }
      ++pos_;
      if (at_end()) fail("unterminated escape in a string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") fail("high surrogate not followed by a low surrogate");
            pos_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          --pos_;
          fail(fmt::format("invalid escape '\\{}' in a string", describe_here()));
      }
    }
  }
};

}  // namespace

const Value* Value::find(std::string_view key) const noexcept {
  for (const auto& m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

std::optional<std::uint64_t> Value::as_u64() const noexcept {
  if (kind != Kind::Number || text.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;  // '-', '.', 'e': not a plain non-negative integer
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

const char* kind_name(Value::Kind kind) noexcept {
  switch (kind) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return "true/false";
    case Value::Kind::Number: return "a number";
    case Value::Kind::String: return "a string";
    case Value::Kind::Array: return "an array";
    case Value::Kind::Object: return "an object";
  }
  return "?";
}

Value parse(std::string_view text) { return Parser(text).document(); }

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += ch;
    }
  }
  out += '"';
  return out;
}

}  // namespace dropnet::io::json
