// bench_util.hpp: what every dropnet-bench subcommand shares: timing (warm-up then median), peak memory,
// number lists on the command line, the default data directory and the sub-command signature.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "dropnet/device.hpp"

namespace dropnet::bench {

// Exit codes, the same as the dropnet CLI's.
inline constexpr int kExitOk = 0, kExitRuntime = 1, kExitUsage = 2;

// A sub-command: the words after its name; returns the exit code. Throws cli::UsageError for a bad
// command line, dropnet::Error (or std::exception) for a failure while running.
using Command = int (*)(std::span<const std::string> args);
int run_sweep(std::span<const std::string> args);
int run_kernels(std::span<const std::string> args);
int run_throughput(std::span<const std::string> args);
int run_merge(std::span<const std::string> args);   // study_merge.cpp
int run_slurm(std::span<const std::string> args);   // slurm.cpp

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs `fn` `warmup` times untimed, then `repeats` times timed. `fn` must finish its work before
// returning (call the backend's synchronize()).
struct Timing {
  double median = 0;  // seconds: the figure reported
  double min = 0;     // seconds: the best run, closest to an idle machine when others share the cores
};
Timing time_repeats(int warmup, int repeats, const std::function<void()>& fn);
// The median and the best of measured times (seconds; at least one).
Timing summarize(std::vector<double> times);
inline double median_seconds(int warmup, int repeats, const std::function<void()>& fn) {
  return time_repeats(warmup, repeats, fn).median;
}

// The largest resident set of this whole process so far, in MiB (getrusage ru_maxrss). It never goes
// down, so in a sweep it is the peak of the runs so far, not of one run.
double peak_rss_mib();

// "1m05s", "3.2s", "2h01m".
std::string format_duration(double seconds);

// A comma-separated list of numbers, strictly parsed ("0,0.1,0.5"). Throws cli::UsageError naming the flag.
std::vector<double> parse_number_list(const std::string& flag, const std::string& text);

// The data dropnet train uses without --data (programs/data_source.hpp's find_data): the full dataset, else
// the bundled sample, in the current directory first, then in the source tree. Throws IoError if none.
std::filesystem::path default_data_dir();

// The device a --device flag names, with its error as a UsageError-friendly exception (see resolve_device).
Device device_from_flag(const std::string& name);

}  // namespace dropnet::bench
