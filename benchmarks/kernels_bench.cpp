// kernels_bench.cpp: `dropnet-bench kernels`: the elementwise ops of a training step (dropout forward and
// backward, max-norm, Adam) on one large tensor, as GB/s and as a ratio to a plain copy of the same size
// timed in the same run (memcpy on the CPU, a device-to-device copy on the GPU). These ops are
// memory-bound, so the copy is the ceiling: a ratio near 1 means the op streams memory as fast as a copy.
//
// Bytes counted are the algorithmic minimum: each input read once and each output written once per pass
// (max-norm makes two passes: norms, then scaling). Scratch memory an implementation adds is not counted,
// so it shows up as a lower ratio.
#include <cstring>

#include <fmt/format.h>

#include "backend/backend.hpp"
#include "backend/cpu/isa.hpp"
#include "bench_util.hpp"
#include "programs/args.hpp"
#include "dropnet/dropnet.hpp"
#include "kernels/adam_math.hpp"

namespace dropnet::bench {
namespace {

const std::vector<cli::FlagSpec>& kernel_flags() {
  static const std::vector<cli::FlagSpec> specs = {
      {"device", "auto|cpu|cuda", "auto", "Where to run the ops."},
      {"size", "N", "67108864", "Floats per tensor (default 64M = 256 MiB; Adam uses four such tensors)."},
      {"repeats", "N", "10", "Timed repetitions per op; the median is reported."},
      {"warmup", "N", "2", "Untimed repetitions before timing."},
  };
  return specs;
}

struct Row {
  std::string op;
  double seconds;
  double bytes;
};

}  // namespace

int run_kernels(std::span<const std::string> args) {
  const cli::Flags flags = cli::parse_flags(args, kernel_flags());
  if (flags.help) {
    fmt::print("usage: dropnet-bench kernels [flags]\n\nMicrobenchmarks of dropout, max-norm and Adam against a "
               "copy of the same size.\n\nflags:\n{}", cli::format_flag_help(kernel_flags()));
    return kExitOk;
  }
  const Device device = device_from_flag(flags.get_string("device"));
  const std::int64_t n = flags.get_int("size", 1024, std::int64_t(1) << 32);
  const int repeats = int(flags.get_int("repeats", 1, 100000));
  const int warmup = int(flags.get_int("warmup", 0, 100000));

  const std::unique_ptr<backend::Backend> context = backend::make_backend(device);
  backend::Backend& be = *context;
  fmt::print("device: {}\n", describe(device));
  if (device == Device::CPU) fmt::print("ISA: {}\n", backend::cpu::cpu_isa_name());
  fmt::print("tensor: {} floats ({:.0f} MiB); warm-up {}, median of {}\n\n", n, double(n) * 4 / (1 << 20), warmup,
             repeats);

  // Four buffers: the copy and dropout use the first two, Adam all four. Non-zero contents so that no op
  // can take a shortcut on zeros.
  Tensor a({n}, device), b({n}, device), c({n}, device), d({n}, device);
  be.fill(a.data(), std::size_t(n), 0.5f);
  be.fill(b.data(), std::size_t(n), 0.25f);
  be.fill(c.data(), std::size_t(n), 0.0f);
  be.fill(d.data(), std::size_t(n), 0.0f);
  be.synchronize();
  const double N = double(n), f = sizeof(float);
  std::vector<Row> rows;

  const bool cpu = device == Device::CPU;
  rows.push_back({cpu ? "copy (memcpy)" : "copy (device to device)", median_seconds(warmup, repeats, [&] {
                    if (cpu) std::memcpy(b.data(), a.data(), std::size_t(n) * sizeof(float));
                    else be.copy(b.data(), a.data(), std::size_t(n));
                    be.synchronize();
                  }), 2 * N * f});

  // Dropout at rate 0.5 on a flat tensor (mask shape = input shape): read x, write y.
  std::uint64_t step = 0;
  const auto call = [&] { return backend::DropoutCall{1234, step++, 0.5f, {n}, {n}}; };
  rows.push_back({"dropout forward (rate 0.5)", median_seconds(warmup, repeats, [&] {
                    be.dropout_forward(a, b, call());
                    be.synchronize();
                  }), 2 * N * f});
  rows.push_back({"dropout backward (rate 0.5)", median_seconds(warmup, repeats, [&] {
                    be.dropout_backward(a, b, call());
                    be.synchronize();
                  }), 2 * N * f});

  // Max-norm on a Dense-like kernel (rows, 256), axis 0: 256 column norms, as MaxNorm(axis=0) on Dense.
  const std::int64_t cols = 256, mrows = n / cols;
  const backend::MaxNormCall mcall{{mrows, cols}, {0}, 2.0f};
  rows.push_back({fmt::format("max-norm ({}x{}, axis 0)", mrows, cols), median_seconds(warmup, repeats, [&] {
                    be.maxnorm(a.data(), mcall);
                    be.synchronize();
                  }), 3 * double(mrows * cols) * f});

  // Adam: read params, grads, m, v; write params, m, v.
  long long t = 0;
  rows.push_back({"adam update", median_seconds(warmup, repeats, [&] {
                    const kernels::AdamStep s = kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, ++t);
                    be.adam_update(a.data(), b.data(), c.data(), d.data(), std::size_t(n), s);
                    be.synchronize();
                  }), 7 * N * f});

  const double copy_gbs = rows[0].bytes / rows[0].seconds / 1e9;
  fmt::print("| op | ms | bytes moved | GB/s | ratio to copy |\n|---|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    const double gbs = r.bytes / r.seconds / 1e9;
    fmt::print("| {} | {:.2f} | {:.0f} MiB | {:.2f} | {:.2f} |\n", r.op, r.seconds * 1e3, r.bytes / (1 << 20), gbs,
               gbs / copy_gbs);
  }
  fmt::print("\nGB/s = (bytes read + bytes written) / median time, 1 GB = 1e9 bytes. Ratio = op GB/s / copy GB/s "
             "(1.0: the op moves its bytes as fast as a copy).\n");
  return kExitOk;
}

}  // namespace dropnet::bench
