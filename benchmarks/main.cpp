// main.cpp: dropnet-bench, the benchmark program. Sub-commands:
//   sweep       train the seed model once per dropout rate and compare (tables, CSV, JSON, SVG, HTML)
//   merge       put the shards of a study (sweep --shard I/N) together into its reports
//   slurm       a study as a Slurm job array over its shards and a dependent merge job
//   kernels     dropout / max-norm / Adam microbenchmarks against a copy of the same size
//   throughput  one training step of the seed model: images/s and model FLOP/s against sgemm
// Errors become one line on stderr and a non-zero exit (2: bad command line, 1: failure while running).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench_util.hpp"
#include "programs/args.hpp"
#include "dropnet/errors.hpp"

namespace {

constexpr const char* kUsage =
    "usage: dropnet-bench <command> [flags]\n"
    "\n"
    "commands:\n"
    "  sweep       train the seed model once per dropout rate (same initial weights, same data order)\n"
    "              and write a Markdown table, sweep.csv, sweep.json, SVG plots and report.html\n"
    "              (--shard I/N: only the I-th of N slices of its runs)\n"
    "  merge       put the shards of a study together: the same reports as one sweep\n"
    "  slurm       write (and --submit) a Slurm job array over the shards and a dependent merge job\n"
    "  kernels     microbenchmarks: dropout forward/backward, max-norm and Adam on a large tensor,\n"
    "              in GB/s and as a ratio to a copy of the same size\n"
    "  throughput  one training step of the seed model: images/s, model GFLOP/s, sgemm GFLOP/s and\n"
    "              the efficiency (model FLOP/s / sgemm FLOP/s), with a per-layer profile\n"
    "\n"
    "'dropnet-bench <command> --help' lists the flags of a command. See docs/benchmarks.md.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace dropnet;
  const std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty() || words[0] == "--help" || words[0] == "-h" || words[0] == "help") {
    std::fputs(kUsage, words.empty() ? stderr : stdout);
    return words.empty() ? bench::kExitUsage : bench::kExitOk;
  }
  bench::Command command = nullptr;
  if (words[0] == "sweep") command = bench::run_sweep;
  if (words[0] == "kernels") command = bench::run_kernels;
  if (words[0] == "throughput") command = bench::run_throughput;
  if (words[0] == "merge") command = bench::run_merge;
  if (words[0] == "slurm") command = bench::run_slurm;
  if (command == nullptr) {
    fmt::print(stderr, "dropnet-bench: unknown command '{}'; expected sweep, merge, slurm, kernels or throughput "
                       "(see dropnet-bench --help)\n", words[0]);
    return bench::kExitUsage;
  }
  try {
    return command(std::span(words).subspan(1));
  } catch (const cli::UsageError& e) {
    fmt::print(stderr, "dropnet-bench {}: {}\n", words[0], e.what());
    return bench::kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "dropnet-bench {}: error: {}\n", words[0], e.what());
    return bench::kExitRuntime;
  }
}
