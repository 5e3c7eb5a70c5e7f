// matchers.hpp: Catch2 v2 has no "exception message contains" matcher; this is it.
#pragma once

#include "support/catch.hpp"

#include <exception>
#include <string>

namespace dropnet::testing {

class MessageContains : public Catch::MatcherBase<std::exception> {
 public:
  explicit MessageContains(std::string part) : part_(std::move(part)) {}
  bool match(const std::exception& e) const override { return std::string(e.what()).find(part_) != std::string::npos; }
  std::string describe() const override { return "has a message containing \"" + part_ + "\""; }

 private:
  std::string part_;
};

}  // namespace dropnet::testing
