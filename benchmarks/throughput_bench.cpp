// throughput_bench.cpp: `dropnet-bench throughput`: one training step of the seed model (train_on_batch
// on a fixed random batch), in images/s and model GFLOP/s, against OpenBLAS sgemm measured in the same
// run. Efficiency = model FLOP/s / sgemm FLOP/s; the project's target on the CPU is 0.4.
//
// Model FLOPs are counted analytically from the layer shapes: the Conv2D and Dense GEMMs only (2 FLOPs per
// multiply-add), forward once plus the two backward GEMMs (weight gradient and input gradient), i.e.
// forward x 3, minus the first layer's input gradient, which training never computes. Pooling, ReLU,
// dropout, softmax and Adam are not counted (they are memory-bound and small in FLOPs).
//
// The per-layer profile then times each layer's forward and backward through the same backend calls the
// model makes, and on the CPU the bare GEMMs of each layer's shapes on the whole batch, for comparison with
// the layers' blocked GEMMs (and their im2col, col2im, bias and activation around them).
#include <chrono>
#include <optional>
#include <random>
#include <thread>

#include <cblas.h>
#include <fmt/format.h>

#include "backend/backend.hpp"
#include "backend/cpu/isa.hpp"
#include "backend/cpu/conv_path.hpp"
#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "bench_util.hpp"
#include "programs/args.hpp"
#include "programs/seed_model.hpp"
#include "dropnet/dropnet.hpp"
#include "kernels/adam_math.hpp"
#include "layers/layer_util.hpp"
#include "model/impl.hpp"
#include "throughput_concurrent.hpp"

namespace dropnet::bench {
namespace {

constexpr double kTargetEfficiency = 0.4;

const std::vector<cli::FlagSpec>& throughput_flags() {
  static const std::vector<cli::FlagSpec> specs = {
      {"device", "auto|cpu|cuda", "auto", "Where to train."},
      {"batch-size", "N", "250", "Images per training step (the seed's batch size)."},
      {"steps", "N", "10", "Timed training steps; the median step time is reported."},
      {"warmup", "N", "2", "Untimed steps first (buffers are sized and caches warmed)."},
      {"gemm-size", "N", "2048", "M = N = K of the reference sgemm."},
      {"profile", "0|1", "1", "Print the per-layer profile."},
      {"cuda-graphs", "on|off", "on", "On the GPU: replay the training step as a recorded CUDA graph (on) or "
                                      "launch every op (off)."},
      {"runs", "N", "1", "Models training at once, each on its own thread (on a GPU its own stream; on the CPU "
                         "--threads-per-run threads each), as 'sweep --concurrent N' runs them: their total images/s "
                         "against one model with the whole machine, both measured in this run. N > 1 skips the "
                         "sgemm reference and the per-layer profile."},
      {"threads-per-run", "T", "", "With --runs: each model's CPU threads (default: the CPU threads divided by "
                                   "--runs, at least 1)."},
  };
  return specs;
}

// The GEMMs one layer runs in a training step, as (m, n, k) of C (m x n) = A (m x k) B (k x n).
struct LayerGemms {
  std::int64_t m = 0, n = 0, k = 0;  // forward
  bool has = false;
  double forward_flops() const { return 2.0 * double(m) * double(n) * double(k); }
};

LayerGemms layer_gemms(const Layer& layer, std::int64_t batch) {
  LayerGemms g;
  if (layer.type() == "Conv2D") {
    const Shape& out = layer.output_shape();
    const Shape& kernel = layer.params()[0].shape;  // (KH, KW, C, K)
    g = {batch * out[0] * out[1], kernel[3], kernel[0] * kernel[1] * kernel[2], true};
  } else if (layer.type() == "Dense") {
    const Shape& kernel = layer.params()[0].shape;  // (IN, OUT)
    g = {batch, kernel[1], kernel[0], true};
  }
  return g;
}

// The ConvGeometry a Conv2D layer gives the backend for a batch (as Conv2D::geometry does).
backend::ConvGeometry conv_geometry(const Layer& layer, std::int64_t batch) {
  const auto& conv = dynamic_cast<const Conv2D&>(layer);
  const Shape& in = conv.input_shape();
  const Shape& kernel = conv.params()[0].shape;  // (KH, KW, C, K)
  const bool same = layer_util::parse_padding(conv.options().padding);
  const auto gy = backend::axis_geometry(in[0], kernel[0], conv.options().strides[0], same);
  const auto gx = backend::axis_geometry(in[1], kernel[1], conv.options().strides[1], same);
  return {batch, in[0], in[1], in[2], kernel[0], kernel[1], kernel[3], conv.options().strides[0],
          conv.options().strides[1], gy.pad_before, gx.pad_before, gy.out, gx.out};
}

// FLOPs of one training step of `layer` (index i): forward, weight gradient, input gradient (not for i = 0).
double step_flops(const LayerGemms& g, std::size_t i) { return g.has ? g.forward_flops() * (i == 0 ? 2 : 3) : 0.0; }

// The sgemm reference: size^3, median and best of 5 runs, each way OpenBLAS can use the cores: its own
// threads (openblas_set_num_threads(threads)), and dropnet's split of C's rows over single-threaded OpenBLAS
// calls (backend::cpu::gemm, what the layers use). The better of the two is the baseline, so the efficiency
// is never flattered by a slow reference.
struct SgemmReference {
  double median = 0, best = 0;     // GFLOP/s of the better way
  double openblas_threads = 0;     // median GFLOP/s of each way
  double dropnet_split = 0;
};

SgemmReference sgemm_reference(std::int64_t size) {
  std::vector<float> a(std::size_t(size * size)), b(a.size()), c(a.size());
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& v : a) v = u(rng);
  for (auto& v : b) v = u(rng);
  const double flops = 2.0 * double(size) * double(size) * double(size);
  openblas_set_num_threads(int(backend::cpu::cpu_threads()));
  const Timing own = time_repeats(1, 5, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(size), int(size), int(size), 1.0f, a.data(), int(size),
                b.data(), int(size), 0.0f, c.data(), int(size));
  });
  // Back to the library's setting. OpenBLAS's idle threads spin for a while after a threaded call; the wait
  // lets them go to sleep before anything else is timed.
  openblas_set_num_threads(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const Timing split = time_repeats(1, 5, [&] {
    backend::cpu::gemm<float>(false, false, size, size, size, 1.0f, a.data(), size, b.data(), size, 0.0f, c.data(), size);
  });
  SgemmReference r;
  r.openblas_threads = flops / own.median / 1e9;
  r.dropnet_split = flops / split.median / 1e9;
  const Timing& better = own.median <= split.median ? own : split;
  r.median = flops / better.median / 1e9;
  r.best = flops / std::min(own.min, split.min) / 1e9;
  return r;
}

// --runs N: one model with the whole machine, then N at once, in this run.
int report_concurrent(int runs, unsigned threads_per_run, Device device, bool graphs, const Tensor& x, const Tensor& y,
                      std::int64_t batch, int warmup) {
  const ConcurrentSetup one{.runs = 1, .threads_per_run = 0, .device = device, .cuda_graphs = graphs, .x = x, .y = y,
                            .batch = batch, .warmup = warmup};
  ConcurrentSetup many = one;
  many.runs = runs, many.threads_per_run = threads_per_run;
  const ConcurrentThroughput base = measure_concurrent_throughput(one);
  const ConcurrentThroughput all = measure_concurrent_throughput(many);
  auto cpu = [&](unsigned t) -> std::string {
    return device == Device::CPU ? fmt::format(", {} CPU thread{}", t, t == 1 ? "" : "s") : "";
  };
  fmt::print("\nseed model, batch {}, training steps by fit ({}):\n"
             "  1 model{}: {:.1f} images/s ({} steps in {:.2f} s)\n"
             "  {} models at once{} each: {:.1f} images/s in total, {:.1f} per model ({} steps in {:.2f} s)\n"
             "  gain: {:.2f} x one model's images/s\n",
             batch, all.step_mode, cpu(backend::cpu::default_cpu_threads()), base.images_per_second, base.steps,
             base.window_seconds, runs, cpu(threads_per_run), all.images_per_second, all.images_per_second / runs,
             all.steps, all.window_seconds, all.images_per_second / base.images_per_second);
  return kExitOk;
}

}  // namespace

int run_throughput(std::span<const std::string> args) {
  const cli::Flags flags = cli::parse_flags(args, throughput_flags());
  if (flags.help) {
    fmt::print("usage: dropnet-bench throughput [flags]\n\nOne training step of the seed model: images/s, model "
               "GFLOP/s and the efficiency against OpenBLAS sgemm.\n\nflags:\n{}",
               cli::format_flag_help(throughput_flags()));
    return kExitOk;
  }
  const Device device = device_from_flag(flags.get_string("device"));
  const std::int64_t batch = flags.get_int("batch-size", 1, 1 << 16);
  const int steps = int(flags.get_int("steps", 1, 100000));
  const int warmup = int(flags.get_int("warmup", 0, 100000));
  const std::int64_t gemm_size = flags.get_int("gemm-size", 64, 16384);
  const bool profile = flags.get_int("profile", 0, 1) == 1;
  const std::string graphs = flags.get_string("cuda-graphs");
  flags.require(graphs == "on" || graphs == "off", "cuda-graphs", "on or off");
  const int runs = int(flags.get_int("runs", 1, 256));
  if (flags.given("threads-per-run") && runs == 1)
    throw cli::UsageError("--threads-per-run: only with --runs N > 1 (one model uses the CPU threads)");
  const unsigned threads_per_run =
      flags.given("threads-per-run") ? unsigned(flags.get_int("threads-per-run", 1, 16))
                                     : std::max(1u, backend::cpu::default_cpu_threads() / unsigned(runs));

  fmt::print("device: {}\n", describe(device));
  if (device == Device::CPU)
    fmt::print("CPU threads: {} (DROPNET_CPU_THREADS; each runs single-threaded OpenBLAS calls); ISA: {}\n",
               backend::cpu::cpu_threads(), backend::cpu::cpu_isa_name());

  // The seed model as dropnet train builds it (dropout 0.5, max-norm 2), trained by fit (the path dropnet
  // train takes: batches gathered on the device from a byte-valued data set, and on a GPU the step recorded
  // as a CUDA graph) for warmup + steps batches of random images, one epoch, no validation.
  const std::int64_t records = batch * (warmup + steps);
  std::mt19937 rng(1);
  std::vector<float> xs(std::size_t(records * 32 * 32 * 3)), ys(std::size_t(records * 10), 0.0f);
  for (auto& v : xs) v = float(rng() % 256) / 255.0f;  // as the CIFAR-10 loader makes pixels
  for (std::int64_t i = 0; i < records; ++i) ys[std::size_t(i * 10 + std::int64_t(rng() % 10))] = 1.0f;
  const Tensor x_all = Tensor::from_vector({records, 32, 32, 3}, xs);
  const Tensor y_all = Tensor::from_vector({records, 10}, ys);
  if (runs > 1) return report_concurrent(runs, threads_per_run, device, graphs == "on", x_all, y_all, batch, warmup);
  Sequential model = cli::build_seed_model({});
  model.compile({.loss = "categorical_crossentropy", .device = device, .seed = 1, .cuda_graphs = graphs == "on"});
  // One fixed batch for the per-layer profile.
  const Tensor x = x_all.rows(0, batch).to(device);
  const Tensor y = y_all.rows(0, batch).to(device);

  // On the CPU the reference sgemm runs first: timed after the model, OpenBLAS's threads would start cold,
  // and the wait that follows it (see sgemm_reference) must come before the model's steps.
  SgemmReference blas;
  if (device == Device::CPU) blas = sgemm_reference(gemm_size);

  // The model's own backend context: the per-layer profile below issues its ops there, as fit does.
  backend::Backend& be = ModelInternals::backend(model);
  StepClock clock;  // when each step ended (throughput_concurrent.hpp)
  model.fit(x_all, y_all, {.batch_size = int(batch), .epochs = 1, .verbose = 0, .callbacks = {&clock}});
  std::vector<double> times;
  for (std::size_t i = std::size_t(warmup) + 1; i < clock.ends.size(); ++i)
    times.push_back(std::chrono::duration<double>(clock.ends[i] - clock.ends[i - 1]).count());
  const Timing step = summarize(std::move(times));
  const double step_s = step.median;
  fmt::print("training step: fit, {}\n", model.step_mode());

  double model_flops = 0;
  for (std::size_t i = 0; i < model.layer_count(); ++i) model_flops += step_flops(layer_gemms(model.layer(i), batch), i);
  const double model_gflops = model_flops / step_s / 1e9;
  fmt::print("\nseed model, batch {}: median step {:.1f} ms over {} steps ({} warm-up) = {:.1f} images/s "
             "(best step {:.1f} ms = {:.1f} images/s)\n", batch, step_s * 1e3, steps, warmup, double(batch) / step_s,
             step.min * 1e3, double(batch) / step.min);
  fmt::print("model FLOPs per step: {:.2f} GFLOP (direct convolution and dense GEMMs: forward x 3 for forward + backward, less "
             "conv1's input gradient, which is not computed) = {:.1f} GFLOP/s\n", model_flops / 1e9, model_gflops);

  // Inference: predict (dropout off, no backward) over the same records in batches of the step's size, three
  // times; the median pass gives images/s. Its ratio to the training step says what one validation or
  // Monte Carlo pass costs against a step.
  const Tensor x_infer = x_all.rows(0, std::min<std::int64_t>(records, batch * steps));
  (void)model.predict(x_infer.rows(0, batch), {.batch_size = int(batch)});  // buffers sized, caches warm
  const double infer_s = median_seconds(0, 3, [&] { (void)model.predict(x_infer, {.batch_size = int(batch)}); });
  const double infer_batch_s = infer_s * double(batch) / double(x_infer.dim(0));
  fmt::print("inference (predict, dropout off), batch {}: {:.1f} ms per batch = {:.1f} images/s; {:.2f} of a "
             "training step's time\n", batch, infer_batch_s * 1e3, double(x_infer.dim(0)) / infer_s,
             infer_batch_s / step_s);

  double efficiency = 0;
  if (device == Device::CPU) {
    efficiency = model_gflops / blas.median;
    fmt::print("OpenBLAS sgemm {0}x{0}x{0} (measured before the steps): {1:.1f} GFLOP/s median, {2:.1f} best of 5 "
               "(the better of OpenBLAS's own {3} threads, {4:.1f} GFLOP/s, and dropnet's row split over "
               "single-threaded calls, {5:.1f} GFLOP/s)\n",
               gemm_size, blas.median, blas.best, backend::cpu::cpu_threads(), blas.openblas_threads,
               blas.dropnet_split);
    fmt::print("efficiency = model FLOP/s / sgemm FLOP/s = {:.2f} (target >= {:.1f}: {}); best against best: {:.2f}\n",
               efficiency, kTargetEfficiency, efficiency >= kTargetEfficiency ? "met" : "NOT met",
               model_flops / step.min / 1e9 / blas.best);
  } else {
    fmt::print("(efficiency against OpenBLAS is defined for --device cpu only)\n");
  }
  if (!profile) return kExitOk;

  // ---- per-layer profile: the same backend calls as a training step, timed one by one --------------
  const std::size_t L = model.layer_count();
  std::vector<Tensor> outs, grads;
  for (std::size_t i = 0; i < L; ++i) {
    Shape s{batch};
    s.insert(s.end(), model.layer(i).output_shape().begin(), model.layer(i).output_shape().end());
    outs.emplace_back(s, device);
    grads.emplace_back(s, device);
  }
  // The Dropout layers draw their masks at the step and rate of one slot on the device (any step takes as
  // long; the rate is the seed model's 0.5, since at a rate of 0 the op would only copy).
  const backend::StepSlot slot_value{.step = 0, .advances = 1, .rate = 0.5f, .schedule = {}};
  const backend::DeviceArray<backend::StepSlot> slot(std::span(&slot_value, 1), device);
  RunContext ctx{be, true, slot.data()};
  Tensor stats({2}, device);
  auto input = [&](std::size_t i) { return i == 0 ? x : outs[i - 1]; };
  std::vector<double> fwd(L), bwd(L);
  for (std::size_t i = 0; i < L; ++i)
    fwd[i] = median_seconds(1, steps, [&] {
      model.layer(i).forward(input(i), outs[i], ctx);
      be.synchronize();
    });
  Tensor dz = grads[L - 1];
  const double loss_s = median_seconds(1, steps, [&] {
    be.fill(stats.data(), 2, 0.0f);
    be.softmax_cross_entropy(model.layer(L - 1).logits().rows(0, batch), y, &dz, 1.0f / float(batch), stats);
    be.synchronize();
  });
  for (std::size_t i = L; i-- > 0;) {
    bwd[i] = median_seconds(1, steps, [&] {
      Tensor* dx = i > 0 ? &grads[i - 1] : nullptr;
      if (i == L - 1) model.layer(i).backward_from_logits(input(i), dz, dx, ctx);
      else model.layer(i).backward(input(i), outs[i], grads[i], dx, ctx);
      be.synchronize();
    });
  }
  // The fused blocks' op (model/fused_blocks.hpp; the CPU's training step runs it instead of the relu inside
  // each Conv2D(relu), the MaxPooling2D and the Dropout after it): timed on the conv's output, with the
  // dropout's call when a Dropout follows.
  struct FusedTime { std::string layers; double forward, backward; };
  std::vector<FusedTime> fused_times;
  if (be.fuses_relu_pool()) {
    for (std::size_t i = 1; i < L; ++i) {
      const auto* pool = dynamic_cast<const MaxPooling2D*>(&model.layer(i));
      const auto* conv = dynamic_cast<const Conv2D*>(&model.layer(i - 1));
      if (pool == nullptr || conv == nullptr || conv->options().activation != "relu") continue;
      const auto* drop = i + 1 < L ? dynamic_cast<const Dropout*>(&model.layer(i + 1)) : nullptr;
      const backend::PoolGeometry g = layer_util::pool_geometry(pool->options(), pool->input_shape(), batch);
      std::optional<backend::DropoutCall> call;
      if (drop != nullptr) call = layer_util::dropout_call(*drop, outs[i].shape(), ctx);
      const backend::DropoutCall* c = call ? &*call : nullptr;
      backend::DeviceArray<std::uint8_t> route(std::size_t(outs[i].size()), device);
      Tensor& y = drop != nullptr ? outs[i + 1] : outs[i];
      Tensor& dy = drop != nullptr ? grads[i + 1] : grads[i];
      const double f = median_seconds(1, steps, [&] {
        be.relu_pool_forward(outs[i - 1], y, route.data(), g, c);
        be.synchronize();
      });
      const double b = median_seconds(1, steps, [&] {
        be.relu_pool_backward(dy, route.data(), grads[i - 1], g, c);
        be.synchronize();
      });
      fused_times.push_back({fmt::format("relu of {} + {}{}", conv->name(), pool->name(),
                                         drop != nullptr ? " + " + drop->name() : ""), f, b});
    }
  }

  // The optimizer: Adam over every parameter (on buffers of the model's size), then the MaxNorm projections.
  const auto params = std::size_t(model.count_params());
  Tensor pw({std::int64_t(params)}, device), pg({std::int64_t(params)}, device), pm({std::int64_t(params)}, device),
      pv({std::int64_t(params)}, device);
  const double adam_s = median_seconds(1, steps, [&] {
    be.adam_update(pw.data(), pg.data(), pm.data(), pv.data(), params, kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, 1));
    be.synchronize();
  });
  const double maxnorm_s = median_seconds(1, steps, [&] {
    for (std::size_t i = 0; i < L; ++i)
      for (Param& p : model.layer(i).params())
        if (p.constraint)
          be.maxnorm(p.value.data(), {p.shape, layer_util::normalize_axes(*p.constraint, p.shape, model.layer(i).name()),
                                      float(p.constraint->max_value)});
    be.synchronize();
  });

  // On the CPU, the bare GEMMs of each conv/dense layer (same m, n, k and transposes as the backend),
  // each timed on its own: forward y = x w, weight gradient dw = x^T dy, input gradient dx = dy w^T.
  struct GemmTime { std::string layer, what; std::int64_t m, n, k; double seconds; };
  std::vector<GemmTime> gemm_times;
  std::vector<double> gemm_s(L, 0.0);
  if (device == Device::CPU) {
    for (std::size_t i = 0; i < L; ++i) {
      const LayerGemms g = layer_gemms(model.layer(i), batch);
      if (!g.has) continue;
      std::vector<float> A(std::size_t(g.m * g.k), 0.1f), B(std::size_t(g.k * g.n), 0.1f), C(std::size_t(g.m * g.n));
      std::vector<float> dA(A.size());
      auto timed = [&](const char* what, std::int64_t m, std::int64_t n, std::int64_t k, auto fn) {
        const double t = median_seconds(1, steps, fn);
        gemm_times.push_back({model.layer(i).name(), what, m, n, k, t});
        gemm_s[i] += t;
      };
      timed("forward x w", g.m, g.n, g.k, [&] {
        backend::cpu::gemm<float>(false, false, g.m, g.n, g.k, 1.0f, A.data(), g.k, B.data(), g.n, 0.0f, C.data(), g.n);
      });
      timed("weight grad x^T dy", g.k, g.n, g.m, [&] {
        backend::cpu::gemm<float>(true, false, g.k, g.n, g.m, 1.0f, A.data(), g.k, C.data(), g.n, 0.0f, B.data(), g.n);
      });
      if (i > 0)
        timed("input grad dy w^T", g.m, g.k, g.n, [&] {
          backend::cpu::gemm<float>(false, true, g.m, g.k, g.n, 1.0f, C.data(), g.n, B.data(), g.n, 0.0f, dA.data(), g.k);
        });
    }
  }

  double total = loss_s + adam_s + maxnorm_s, forward_total = 0;
  for (std::size_t i = 0; i < L; ++i) total += fwd[i] + bwd[i];
  for (std::size_t i = 0; i < L; ++i) forward_total += fwd[i];
  fmt::print("\ninference batch against the training forward (the layers' forward calls below, dropout on): "
             "{:.1f} ms / {:.1f} ms = {:.2f}\n", infer_batch_s * 1e3, forward_total * 1e3, infer_batch_s / forward_total);
  fmt::print("\nper-layer profile (median of {} calls each; {:.1f} ms in total against a {:.1f} ms step; the rest "
             "is batch gathering and reading the loss back):\n\n", steps, total * 1e3, step_s * 1e3);
  fmt::print("| layer | output | forward ms | backward ms | % of step | GFLOP | GFLOP/s | bare GEMMs ms |\n"
             "|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < L; ++i) {
    const Layer& l = model.layer(i);
    const LayerGemms g = layer_gemms(l, batch);
    const double flops = step_flops(g, i), t = fwd[i] + bwd[i];
    fmt::print("| {} ({}) | {} | {:.2f} | {:.2f} | {:.1f} | {} | {} | {} |\n", l.name(), l.type(),
               to_string(l.output_shape()), fwd[i] * 1e3, bwd[i] * 1e3, 100 * t / step_s,
               g.has ? fmt::format("{:.2f}", flops / 1e9) : "", g.has ? fmt::format("{:.1f}", flops / t / 1e9) : "",
               g.has && gemm_s[i] > 0 ? fmt::format("{:.2f}", gemm_s[i] * 1e3) : "");
  }
  fmt::print("| softmax + cross-entropy | | {:.2f} | | {:.1f} | | | |\n", loss_s * 1e3, 100 * loss_s / step_s);
  fmt::print("| adam ({} params) | | {:.2f} | | {:.1f} | | | |\n", params, adam_s * 1e3, 100 * adam_s / step_s);
  fmt::print("| max-norm (3 kernels) | | {:.2f} | | {:.1f} | | | |\n", maxnorm_s * 1e3, 100 * maxnorm_s / step_s);
  if (!fused_times.empty()) {
    fmt::print("\nfused blocks (what the training step runs in place of the relu inside the Conv2D and the "
               "pool and dropout rows above; the conv's row still counts its relu):\n\n"
               "| layers | forward ms | backward ms |\n|---|---:|---:|\n");
    for (const FusedTime& f : fused_times)
      fmt::print("| {} | {:.2f} | {:.2f} |\n", f.layers, f.forward * 1e3, f.backward * 1e3);
  }
  if (device == Device::CPU) {
    // Which algorithm each convolution pass took (backend/cpu/conv_path.hpp; DROPNET_CPU_CONV pins it).
    fmt::print("\nCPU convolution paths (forward / input gradient / weight gradient):\n");
    for (std::size_t i = 0; i < L; ++i) {
      if (model.layer(i).type() != "Conv2D") continue;
      using backend::cpu::ConvPass;
      const backend::ConvGeometry g = conv_geometry(model.layer(i), batch);
      fmt::print("  {}: {} / {} / {}\n", model.layer(i).name(), backend::cpu::conv_path_name(g, ConvPass::Forward),
                 i > 0 ? backend::cpu::conv_path_name(g, ConvPass::InputGrad) : "not computed",
                 backend::cpu::conv_path_name(g, ConvPass::WeightGrad));
    }
    fmt::print("\nbare GEMMs: forward, weight-gradient and input-gradient GEMMs of the layer's shapes on the whole "
               "batch at once (backend::cpu::gemm: C's rows split over the threads), without im2col/col2im, bias "
               "or activation. The Conv2D layers instead run them block by block on patches still in cache (or, "
               "on a Winograd path, far fewer products), so a layer can beat its bare GEMMs. One by one (C = m x n, inner dimension k):\n\n"
               "| layer | GEMM | m | n | k | ms | GFLOP/s |\n|---|---|---:|---:|---:|---:|---:|\n");
    for (const GemmTime& g : gemm_times)
      fmt::print("| {} | {} | {} | {} | {} | {:.2f} | {:.1f} |\n", g.layer, g.what, g.m, g.n, g.k, g.seconds * 1e3,
                 2.0 * double(g.m) * double(g.n) * double(g.k) / g.seconds / 1e9);
  }
  return kExitOk;
}

}  // namespace dropnet::bench
