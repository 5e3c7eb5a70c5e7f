// study_variants.cpp: the variants axis of a dropout study (`sweep --variants TYPE[+bn][@SCHEDULE],...`):
// the dropout type in the seed model's Dropout positions, whether the model has BatchNormalization after
// each convolution (+bn), and the schedule of the rate, given in epochs and run in optimizer steps (the
// library's DropoutSchedule counts steps; E epochs are E x batches_per_epoch steps).
#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "dropnet/errors.hpp"
#include "sweep.hpp"

namespace dropnet::bench {
namespace {

constexpr const char* kScheduleForms = "constant, early:E, late:E or linear:START:E (E a number of epochs, START a "
                                       "rate from 0 to 1)";

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::size_t from = 0;
  for (;;) {
    const std::size_t at = text.find(sep, from);
    parts.push_back(text.substr(from, at - from));
    if (at == std::string::npos) return parts;
    from = at + 1;
  }
}

// Throws `fail(why)` unless `field` is a whole number of epochs from 1 to `epochs` (epochs < 0: no bound).
template <typename Fail>
std::uint64_t parse_epochs(const std::string& field, int epochs, Fail fail) {
  if (field.empty() || field[0] == '-' || field[0] == '+') fail("E must be a whole number of epochs");
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(field.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') fail("E must be a whole number of epochs");
  if (v < 1) fail("E must be at least 1 epoch");
  if (epochs >= 0 && v > static_cast<unsigned long long>(epochs))
    fail(fmt::format("{} epochs is more than --epochs {}", v, epochs));
  return v;
}

template <typename Fail>
Variant parse(const std::string& text, int epochs, Fail fail) {
  Variant v;
  const std::size_t at = text.find('@');
  std::string type = text.substr(0, at);
  constexpr std::string_view kBn = "+bn";
  if (type.size() > kBn.size() && type.ends_with(kBn)) {
    v.batch_norm = true;
    type.resize(type.size() - kBn.size());
  }
  try {
    v.type = cli::parse_dropout_type(type);
  } catch (const InvalidArgument&) {
    fail(fmt::format("unknown dropout type '{}'; expected {}, optionally followed by +bn (BatchNormalization "
                     "after each convolution)", type, cli::kDropoutTypeNames));
  }
  if (at == std::string::npos) return v;
  const std::string schedule = text.substr(at + 1);
  const std::vector<std::string> p = split(schedule, ':');
  auto bad = [&](const std::string& why) { fail(fmt::format("schedule '{}': {}; expected {}", schedule, why, kScheduleForms)); };
  if (p[0] == "constant" && p.size() == 1) return v;
  if ((p[0] == "early" || p[0] == "late") && p.size() == 2) {
    const std::uint64_t e = parse_epochs(p[1], epochs, bad);
    v.schedule = p[0] == "early" ? DropoutSchedule::early(e) : DropoutSchedule::late(e);
    return v;
  }
  if (p[0] == "linear" && p.size() == 3) {
    char* end = nullptr;
    const double start = std::strtod(p[1].c_str(), &end);
    if (p[1].empty() || *end != '\0' || !(start >= 0.0 && start <= 1.0)) bad("START must be a rate from 0 to 1");
    v.schedule = DropoutSchedule::linear(start, parse_epochs(p[2], epochs, bad));
    return v;
  }
  bad("unknown form");
  return v;
}

}  // namespace

std::string Variant::text() const {
  std::string t = cli::to_string(type);
  if (batch_norm) t.append("+bn");
  if (schedule.kind != DropoutSchedule::Kind::Constant) t.append("@").append(to_string(schedule));
  return t;
}

DropoutSchedule Variant::in_steps(std::uint64_t batches) const {
  DropoutSchedule s = schedule;
  s.steps *= batches;
  return s;
}

Variant parse_variant(const std::string& text, int epochs, const std::string& flag) {
  return parse(text, epochs, [&](const std::string& why) -> void {
    throw cli::UsageError(fmt::format("{} {}: {}", flag, text, why));
  });
}

std::vector<Variant> parse_variants(const std::string& text, int epochs) {
  std::vector<Variant> out;
  for (const std::string& item : split(text, ',')) {
    if (item.empty())
      throw cli::UsageError(fmt::format("--variants {}: an empty entry; expected TYPE or TYPE@SCHEDULE separated by "
                                        "commas (e.g. dropout,spatial,dropout@early:3)", text));
    const Variant v = parse_variant(item, epochs, "--variants " + text + ":");
    for (const Variant& seen : out)
      if (seen == v)
        throw cli::UsageError(fmt::format("--variants {}: {} is listed twice{}", text, v.text(),
                                          v.text() == item ? "" : fmt::format(" (as {})", item)));
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> variant_axis(const SweepConfig& c) {
  if (c.variants.empty()) return {""};
  std::vector<std::string> out;
  for (const Variant& v : c.variants) out.push_back(v.text());
  return out;
}

namespace {
bool no_dropout_at_rate0(const Variant& v) {
  return !(v.schedule.kind == DropoutSchedule::Kind::Linear && v.schedule.start > 0.0);
}
}  // namespace

std::string rate0_owner(const SweepConfig& c, bool batch_norm) {
  for (const Variant& v : c.variants)
    if (v.batch_norm == batch_norm && no_dropout_at_rate0(v)) return v.text();
  return "";
}

std::string rate0_owner_of(const SweepConfig& c, const std::string& variant) {
  return variant.empty() ? std::string() : rate0_owner(c, variant_from_text(variant).batch_norm);
}

bool shares_rate0(const SweepConfig& c, const std::string& variant, double rate) {
  if (c.variants.empty() || rate != 0.0 || variant == rate0_owner_of(c, variant)) return false;
  return no_dropout_at_rate0(variant_from_text(variant));
}

bool same_architecture(const std::string& a, const std::string& b) {
  auto bn = [](const std::string& v) { return !v.empty() && variant_from_text(v).batch_norm; };
  return bn(a) == bn(b);
}

Variant variant_from_text(const std::string& text) {
  return parse(text, -1, [&](const std::string& why) -> void {
    throw DataError(fmt::format("variant {}: {}", text, why));
  });
}

std::string condition_name(const SweepConfig& c, const std::string& variant, double rate, double max_norm) {
  std::string s = variant.empty() ? fmt::format("rate {}", rate) : fmt::format("{}, rate {}", variant, rate);
  if (c.vary_max_norm) s += fmt::format(" (max-norm {})", max_norm_text(max_norm));
  return s;
}

std::uint64_t batches_per_epoch(std::int64_t train_samples, int batch_size) {
  return std::uint64_t((train_samples + batch_size - 1) / batch_size);
}

}  // namespace dropnet::bench
