// dropout_schedule.cpp: DropoutSchedule's text form and its translation into the step state's
// RateSchedule (kernels/rate_schedule.hpp), the one formula both backends evaluate.
#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "layers/layer_util.hpp"

namespace dropnet {
namespace {

constexpr const char* kForms = "constant, linear:START:STEPS, early:STEPS or late:STEPS (START a rate from 0 to 1, "
                               "STEPS a count of optimizer steps)";

[[noreturn]] void bad_schedule(const std::string& text, const std::string& why) {
  throw InvalidArgument(fmt::format("invalid dropout schedule '{}': {}; expected {}", text, why, kForms));
}

std::uint64_t parse_steps(const std::string& text, const std::string& field) {
  if (field.empty() || field[0] == '-' || field[0] == '+') bad_schedule(text, "STEPS must be a count");
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(field.c_str(), &end, 10);
  if (errno != 0 || end == field.c_str() || *end != '\0') bad_schedule(text, "STEPS must be a count");
  return v;
}

}  // namespace

DropoutSchedule parse_schedule(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t from = 0;
  for (;;) {
    const std::size_t colon = text.find(':', from);
    parts.push_back(text.substr(from, colon - from));
    if (colon == std::string::npos) break;
    from = colon + 1;
  }
  const std::string& kind = parts[0];
  if (kind == "constant" && parts.size() == 1) return DropoutSchedule::constant();
  if (kind == "linear" && parts.size() == 3) {
    char* end = nullptr;
    const double start = std::strtod(parts[1].c_str(), &end);
    if (parts[1].empty() || *end != '\0' || !(start >= 0.0 && start <= 1.0))
      bad_schedule(text, "START must be a rate from 0 to 1");
    return DropoutSchedule::linear(start, parse_steps(text, parts[2]));
  }
  if (kind == "early" && parts.size() == 2) return DropoutSchedule::early(parse_steps(text, parts[1]));
  if (kind == "late" && parts.size() == 2) return DropoutSchedule::late(parse_steps(text, parts[1]));
  bad_schedule(text, "unknown form");
}

std::string to_string(const DropoutSchedule& s) {
  switch (s.kind) {
    case DropoutSchedule::Kind::Constant: return "constant";
    case DropoutSchedule::Kind::Linear: return fmt::format("linear:{}:{}", s.start, s.steps);
    case DropoutSchedule::Kind::Early: return fmt::format("early:{}", s.steps);
    case DropoutSchedule::Kind::Late: return fmt::format("late:{}", s.steps);
  }
  return "constant";
}

namespace layer_util {

void check_unit_interval(double value, const char* argument) {
  if (!(value >= 0.0 && value <= 1.0))
    throw InvalidArgument(fmt::format("Invalid value received for argument `{0}`. Expected a float value "
                                      "between 0 and 1. Received: {0}={1}", argument, value));
}

void check_schedule(const DropoutSchedule& s) {
  if (s.kind == DropoutSchedule::Kind::Linear && !(s.start >= 0.0 && s.start <= 1.0))
    throw InvalidArgument(fmt::format("Invalid value received for the schedule's start rate. Expected a float "
                                      "value between 0 and 1. Received: start={}", s.start));
}

kernels::RateSchedule rate_schedule(double rate, const DropoutSchedule& s) {
  const float r = float(rate);
  switch (s.kind) {
    case DropoutSchedule::Kind::Constant: return kernels::constant_rate(r);
    case DropoutSchedule::Kind::Linear: return {float(s.start), r, 0, s.steps};
    case DropoutSchedule::Kind::Early: return {r, 0.0f, s.steps, s.steps};
    case DropoutSchedule::Kind::Late: return {0.0f, r, s.steps, s.steps};
  }
  return kernels::constant_rate(r);
}

bool schedule_draws(double rate, const DropoutSchedule& s) {
  return rate > 0.0 || (s.kind == DropoutSchedule::Kind::Linear && s.start > 0.0 && s.steps > 0);
}

}  // namespace layer_util
}  // namespace dropnet
