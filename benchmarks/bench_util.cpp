// bench_util.cpp: shared helpers of dropnet-bench (see bench_util.hpp).
#include "bench_util.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

#include <fmt/format.h>
#include <sys/resource.h>

#include "programs/args.hpp"
#include "programs/data_source.hpp"
#include "dropnet/errors.hpp"

namespace dropnet::bench {

Timing time_repeats(int warmup, int repeats, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < std::max(repeats, 1); ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(seconds_since(start));
  }
  return summarize(std::move(times));
}

Timing summarize(std::vector<double> times) {
  std::sort(times.begin(), times.end());
  const std::size_t n = times.size();
  return {n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]), times.front()};
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  const auto total = static_cast<long long>(std::llround(s));
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
}

std::vector<double> parse_number_list(const std::string& flag, const std::string& text) {
  if (text.find_first_not_of(", ") == std::string::npos)
    throw cli::UsageError(fmt::format("--{} '{}': the list is empty; give at least one number", flag, text));
  std::vector<double> values;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    std::size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(begin, end - begin);
    double v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || !std::isfinite(v))
      throw cli::UsageError(fmt::format("--{} {}: expected a comma-separated list of numbers such as 0,0.25,0.5; "
                                        "'{}' is not a number", flag, text, item));
    values.push_back(v);
    begin = end + 1;
  }
  return values;
}

std::filesystem::path default_data_dir() { return cli::find_data(std::nullopt).path; }

Device device_from_flag(const std::string& name) {
  try {
    return resolve_device(name);
  } catch (const InvalidArgument& e) {
    throw cli::UsageError(fmt::format("--device {}: {}", name, e.what()));
  }
}

}  // namespace dropnet::bench
