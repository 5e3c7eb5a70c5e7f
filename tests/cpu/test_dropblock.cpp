// DropBlock2D (Ghiasi, Lin, Le 2018) against the paper's formulas. Keras 3 has no DropBlock layer (keras-cv
// had one), so there are no Keras goldens: the tests check the definition in kernels/dropblock_math.hpp
// (seeds where a block fits, P(seed) = gamma, blocks dropped whole, scale total / kept) and its statistics:
// a position covered by m valid seed positions is dropped with probability 1 - (1 - p)^m, where p is the
// exact probability of one seed (the count of Philox words below the gamma threshold / 2^32).
#include "support/catch.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <limits>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/ops.hpp"
#include "dropnet/checkpoint.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "kernels/dropblock_math.hpp"
#include "kernels/dropout_math.hpp"
#include "layers/run_context.hpp"
#include "support/cpu_backend.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

using namespace dropnet;
using dropnet::testing::MessageContains;

namespace {

backend::Backend& cpu() { return testing::cpu_backend(); }

// DROPNET_STATS_REPORT=1 prints the measured distances from theory (docs/keras-parity.md quotes them).
void report_stats(const std::string& line) {
  if (const char* v = std::getenv("DROPNET_STATS_REPORT"); v != nullptr && *v != '\0' && std::string(v) != "0")
    std::printf("stats | %s\n", line.c_str());
}

// The CPU op at (seed, step, rate) on x (N, H, W, C).
std::vector<float> drop_block(const Tensor& x, std::uint64_t seed, std::uint64_t step, float rate, std::int64_t k) {
  Tensor y(x.shape());
  cpu().dropblock_forward(x, y, {seed, step, rate, k, x.shape()});
  return y.to_vector();
}

// P(one seed) exactly: words w with uniform_from_bits(w) < gamma, over 2^32.
double seed_probability(float rate, const kernels::DropBlockGeometry& g) {
  const float gamma = kernels::dropblock_gamma(rate, g);
  return double(kernels::dropout_keep_threshold(gamma)) / 4294967296.0;
}

// The number of valid seed positions whose block covers (h, w).
std::int64_t coverage(const kernels::DropBlockGeometry& g, std::int64_t h, std::int64_t w) {
  const auto rows = kernels::dropblock_cover(h, g.block, kernels::dropblock_seed_rows(g));
  const auto cols = kernels::dropblock_cover(w, g.block, kernels::dropblock_seed_cols(g));
  return (rows.last - rows.first + 1) * (cols.last - cols.first + 1);
}

}  // namespace

TEST_CASE("DropBlock2D: gamma is the paper's and never above the rate", "[dropblock]") {
  const kernels::DropBlockGeometry g{1, 14, 14, 1, 7};  // the paper's ResNet setting: 14x14 maps, block 7
  CHECK(kernels::dropblock_gamma(0.1f, g) == Approx(0.1 / 49.0 * 196.0 / 64.0).epsilon(1e-6));
  for (std::int64_t h : {1, 2, 5, 9, 32})
    for (std::int64_t k = 1; k <= h; ++k)
      for (float rate : {0.05f, 0.5f, 0.999f}) {
        const kernels::DropBlockGeometry gg{2, h, h + 1 > k ? h + 1 : k, 3, k};
        REQUIRE(kernels::dropblock_gamma(rate, gg) <= rate);
      }
  CHECK(kernels::dropblock_gamma(0.3f, {1, 5, 5, 1, 5}) == 0.3f);  // block == map: one seed, gamma == rate
  CHECK(kernels::dropblock_scale<float>(10, 0) == 0.0f);
  CHECK(kernels::dropblock_scale<float>(10, 4) == 2.5f);
}

TEST_CASE("DropBlock2D: the CPU's dilation drops exactly the elements of the definition", "[dropblock]") {
  for (const auto& [shape, k] : {std::pair{Shape{3, 9, 11, 5}, std::int64_t{3}}, std::pair{Shape{2, 6, 6, 4}, std::int64_t{6}},
                                 std::pair{Shape{2, 7, 5, 3}, std::int64_t{1}}, std::pair{Shape{1, 13, 8, 8}, std::int64_t{4}}}) {
    Tensor x(shape);
    x.fill(1.0f);
    const kernels::DropBlockGeometry g{shape[0], shape[1], shape[2], shape[3], k};
    for (std::uint64_t step : {std::uint64_t{0}, std::uint64_t{7}, std::numeric_limits<std::uint64_t>::max()}) {
      const float rate = 0.35f;
      const auto y = drop_block(x, 123, step, rate, k);
      const float gamma = kernels::dropblock_gamma(rate, g);
      std::int64_t kept = 0;
      for (std::size_t i = 0; i < y.size(); ++i) {
        const bool dropped = kernels::dropblock_dropped(123, step, g, std::int64_t(i), gamma);
        REQUIRE(dropped == (y[i] == 0.0f));
        kept += !dropped;
      }
      const float scale = kernels::dropblock_scale<float>(std::uint64_t(x.size()), std::uint64_t(kept));
      for (float v : y) REQUIRE((v == 0.0f || v == scale));
    }
  }
}

TEST_CASE("DropBlock2D: dropped regions are unions of whole blocks inside the map", "[dropblock]") {
  const Shape shape{4, 12, 10, 6};
  const std::int64_t k = 4;
  Tensor x(shape);
  x.fill(1.0f);
  const auto y = drop_block(x, 77, 3, 0.3f, k);
  auto dropped = [&](std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c) {
    return y[std::size_t(((n * shape[1] + h) * shape[2] + w) * shape[3] + c)] == 0.0f;
  };
  std::int64_t count = 0;
  for (std::int64_t n = 0; n < shape[0]; ++n)
    for (std::int64_t c = 0; c < shape[3]; ++c)
      for (std::int64_t h = 0; h < shape[1]; ++h)
        for (std::int64_t w = 0; w < shape[2]; ++w) {
          if (!dropped(n, h, w, c)) continue;
          ++count;
          // Some block inside the map that contains (h, w) is dropped entirely.
          bool in_block = false;
          for (std::int64_t h0 = std::max<std::int64_t>(0, h - k + 1); h0 <= std::min(h, shape[1] - k) && !in_block; ++h0)
            for (std::int64_t w0 = std::max<std::int64_t>(0, w - k + 1); w0 <= std::min(w, shape[2] - k) && !in_block; ++w0) {
              bool whole = true;
              for (std::int64_t a = 0; a < k; ++a)
                for (std::int64_t b = 0; b < k; ++b) whole = whole && dropped(n, h0 + a, w0 + b, c);
              in_block = whole;
            }
          REQUIRE(in_block);
        }
  CHECK(count > 0);
  CHECK(count < x.size());
}

TEST_CASE("DropBlock2D: per-position drop frequencies and the kept fraction match 1 - (1 - gamma)^m within 5 sigma",
          "[dropblock][stats]") {
  struct Case {
    Shape shape;
    std::int64_t k;
    float rate;
    int steps;
  };
  // >= 10^7 element draws each: 64*12*12*128*9 and 80*11*13*48*19 (odd sizes, C % 4 != 0 on the GPU).
  for (const Case& cs : {Case{{64, 12, 12, 128}, 3, 0.2f, 9}, Case{{80, 11, 13, 48}, 5, 0.1f, 19}}) {
    const Shape& s = cs.shape;
    const kernels::DropBlockGeometry g{s[0], s[1], s[2], s[3], cs.k};
    const double p = seed_probability(cs.rate, g);
    Tensor x(s);
    x.fill(1.0f);
    const std::int64_t hw = s[1] * s[2], planes_per_step = s[0] * s[3];
    std::vector<std::int64_t> drops(std::size_t(hw), 0);
    std::vector<double> plane_kept;  // each (n, c) map's kept fraction: maps are independent
    for (int step = 0; step < cs.steps; ++step) {
      const auto y = drop_block(x, 2024, std::uint64_t(step), cs.rate, cs.k);
      std::vector<std::int64_t> kept(std::size_t(planes_per_step), 0);
      for (std::int64_t n = 0; n < s[0]; ++n)
        for (std::int64_t pos = 0; pos < hw; ++pos)
          for (std::int64_t c = 0; c < s[3]; ++c) {
            const bool d = y[std::size_t((n * hw + pos) * s[3] + c)] == 0.0f;
            drops[std::size_t(pos)] += d;
            kept[std::size_t(n * s[3] + c)] += !d;
          }
      for (std::int64_t v : kept) plane_kept.push_back(double(v) / double(hw));
    }
    const double samples = double(planes_per_step) * cs.steps;
    REQUIRE(samples * double(hw) >= 1e7);
    double worst = 0, expected_kept = 0;
    for (std::int64_t h = 0; h < s[1]; ++h)
      for (std::int64_t w = 0; w < s[2]; ++w) {
        const double q = 1.0 - std::pow(1.0 - p, double(coverage(g, h, w)));  // P(dropped)
        expected_kept += (1.0 - q) / double(hw);
        const double freq = double(drops[std::size_t(h * s[2] + w)]) / samples;
        const double z = std::abs(freq - q) / std::sqrt(q * (1.0 - q) / samples);
        worst = std::max(worst, z);
      }
    double mean = 0, var = 0;
    for (double v : plane_kept) mean += v / double(plane_kept.size());
    for (double v : plane_kept) var += (v - mean) * (v - mean) / double(plane_kept.size() - 1);
    const double z_kept = std::abs(mean - expected_kept) / std::sqrt(var / double(plane_kept.size()));
    INFO("block " << cs.k << " rate " << cs.rate << ": worst position " << worst << " sigma; kept fraction " << mean
                  << " vs " << expected_kept << " (" << z_kept << " sigma)");
    report_stats("drop_block2d block " + std::to_string(cs.k) + " rate " + std::to_string(cs.rate) + ": " +
                          std::to_string(samples * double(hw)) + " element draws, worst position " +
                          std::to_string(worst) + " sigma, kept " + std::to_string(mean) + " vs " +
                          std::to_string(expected_kept) + " (" + std::to_string(z_kept) + " sigma)");
    CHECK(worst < 5.0);
    CHECK(z_kept < 5.0);
    // The paper's gamma aims at a dropped fraction near the rate (blocks overlap, and edges are covered less).
    CHECK(std::abs((1.0 - mean) - cs.rate) < 0.5 * cs.rate);
  }
}

TEST_CASE("DropBlock2D: the output's mean is the input's on average (scale total / kept)", "[dropblock][stats]") {
  const Shape s{16, 8, 8, 16};
  const kernels::DropBlockGeometry g{s[0], s[1], s[2], s[3], 3};
  // Constant input: kept * scale == total up to float rounding, at every step.
  Tensor ones(s);
  ones.fill(1.0f);
  for (std::uint64_t step = 0; step < 5; ++step) {
    const auto y = drop_block(ones, 5, step, 0.3f, g.block);
    double sum = 0;
    for (float v : y) sum += v;
    CHECK(sum / double(ones.size()) == Approx(1.0).epsilon(1e-6));
  }
  // Values constant over each (n, c) map, random across maps: the maps are exchangeable given the kept
  // count, so E[mean(y) / mean(x)] == 1 exactly.
  std::vector<float> xv(std::size_t(ones.size()));
  const auto level = testing::uniform<float>(std::size_t(s[0] * s[3]), 0.5, 1.5, 9);
  for (std::size_t i = 0; i < xv.size(); ++i)
    xv[i] = level[(i / std::size_t(s[1] * s[2] * s[3])) * std::size_t(s[3]) + i % std::size_t(s[3])];
  const Tensor x = Tensor::from_vector(s, xv);
  double xmean = 0;
  for (float v : xv) xmean += v / double(xv.size());
  const int steps = 400;
  double m = 0, m2 = 0;
  for (int t = 0; t < steps; ++t) {
    const auto y = drop_block(x, 6, std::uint64_t(t), 0.3f, g.block);
    double sum = 0;
    for (float v : y) sum += v;
    const double r = sum / double(y.size()) / xmean;
    m += r / steps;
    m2 += r * r / steps;
  }
  const double se = std::sqrt((m2 - m * m) / (steps - 1));
  report_stats("drop_block2d mean ratio " + std::to_string(m) + " (" + std::to_string(std::abs(m - 1.0) / se) +
                        " standard errors)");
  INFO("mean ratio " << m << " standard error " << se);
  CHECK(std::abs(m - 1.0) < 5.0 * se + 1e-9);
}

TEST_CASE("DropBlock2D: backward regenerates the forward's mask and scale (exact gradient)", "[dropblock][gradient]") {
  const Shape s{3, 7, 6, 5};
  const Tensor x = testing::random_tensor(s, 31, 0.5, 1.5), dy = testing::random_tensor(s, 32);
  const backend::StepSlot slot{11, 1, 0.4f, kernels::constant_rate(0.4f)};
  backend::DropBlockCall call{9, 0, 0.4f, 3, s};
  call.slot = &slot;
  Tensor y(s), dx(s);
  cpu().dropblock_forward(x, y, call);
  cpu().dropblock_backward(dy, dx, call);
  const auto xv = x.to_vector(), yv = y.to_vector(), dyv = dy.to_vector(), dxv = dx.to_vector();
  std::uint64_t kept = 0;
  for (float v : yv) kept += v != 0.0f;
  REQUIRE(kept > 0);
  REQUIRE(kept < yv.size());
  const float scale = kernels::dropblock_scale<float>(yv.size(), kept);
  for (std::size_t i = 0; i < yv.size(); ++i) {
    REQUIRE(yv[i] == (yv[i] == 0.0f ? 0.0f : xv[i] * scale));
    REQUIRE(dxv[i] == (yv[i] == 0.0f ? 0.0f : dyv[i] * scale));
  }
  // Central differences of L = sum(y * G) in double (the map is linear in x for a fixed mask).
  std::vector<double> xd(xv.begin(), xv.end()), g(dyv.begin(), dyv.end()), grad(xd.size()), out(xd.size());
  const kernels::DropBlockGeometry geo{s[0], s[1], s[2], s[3], 3};
  backend::cpu::dropblock_apply(g.data(), grad.data(), call, geo);
  auto loss = [&](const std::vector<double>& in) {
    backend::cpu::dropblock_apply(in.data(), out.data(), call, geo);
    double l = 0;
    for (std::size_t i = 0; i < out.size(); ++i) l += out[i] * g[i];
    return l;
  };
  for (std::size_t i = 0; i < xd.size(); i += 7) {
    std::vector<double> plus = xd, minus = xd;
    plus[i] += 1e-4;
    minus[i] -= 1e-4;
    REQUIRE((loss(plus) - loss(minus)) / 2e-4 == Approx(grad[i]).margin(1e-8));
  }
}

TEST_CASE("DropBlock2D layer: Keras' argument checks, names, inference identity, rates 0 and 1", "[dropblock]") {
  for (double bad : {1.5, -0.1, std::numeric_limits<double>::quiet_NaN()})
    REQUIRE_THROWS_MATCHES(DropBlock2D(bad, 3), InvalidArgument,
                           MessageContains("Invalid value received for argument `rate`. Expected a float value between 0 "
                                           "and 1. Received: rate="));
  REQUIRE_THROWS_MATCHES(DropBlock2D(0.1, 0), InvalidArgument,
                         MessageContains("The `block_size` argument must be a tuple of 2 integers. Received "
                                         "block_size=0, including values {0} that do not satisfy `value > 0`"));
  REQUIRE_THROWS_AS(DropBlock2D(0.1, -2), InvalidArgument);
  REQUIRE_THROWS_AS(DropBlock2D(0.1, 3, {.schedule = DropoutSchedule::linear(2.0, 10)}), InvalidArgument);
  DropBlock2D named(0.1, 3);
  named.set_name("db");
  REQUIRE_THROWS_MATCHES(named.build({8, 8}, 0), InvalidArgument, MessageContains("layer 'db'"));
  REQUIRE_THROWS_MATCHES(DropBlock2D(0.1, 3).build({2, 8, 8, 1}, 0), InvalidArgument, MessageContains("(None, 2, 8, 8, 1)"));
  REQUIRE_THROWS_MATCHES(named.build({8, 2, 4}, 0), InvalidArgument, MessageContains("block_size 3 is larger"));
  REQUIRE_NOTHROW(DropBlock2D(0.1, 3).build({3, 3, 1}, 0));

  Sequential m({8, 8, 2});
  m.add(DropBlock2D(0.1, 3));
  m.add(DropBlock2D(0.1, 3));
  CHECK(m.layer(0).name() == "drop_block2d");
  CHECK(m.layer(1).name() == "drop_block2d_1");
  CHECK(m.layer(0).type() == "DropBlock2D");

  const Tensor x = testing::random_tensor({2, 6, 6, 3}, 3);
  backend::StepSlot slot{0, 1, 0.5f, kernels::constant_rate(0.5f)};
  RunContext infer{cpu(), false}, train{cpu(), true, &slot};
  DropBlock2D layer(0.5, 3, {.seed = 4});
  layer.build({6, 6, 3}, 0);
  REQUIRE(layer.seed_generator());
  CHECK(layer.seed_generator()->seed == 4);
  CHECK_FALSE(DropBlock2D(0.0, 2).seed_generator()->draws);
  Tensor y({2, 6, 6, 3}), dx({2, 6, 6, 3});
  layer.forward(x, y, infer);
  CHECK(y.to_vector() == x.to_vector());
  layer.backward(x, y, x, &dx, infer);
  CHECK(dx.to_vector() == x.to_vector());
  layer.forward(x, y, train);
  CHECK(y.to_vector() != x.to_vector());
  RunContext no_slot{cpu(), true};
  CHECK_THROWS_AS(layer.forward(x, y, no_slot), InvalidArgument);

  DropBlock2D zero(0.0, 3), one(1.0, 3);
  zero.build({6, 6, 3}, 0);
  one.build({6, 6, 3}, 0);
  zero.forward(x, y, train);
  CHECK(y.to_vector() == x.to_vector());
  one.forward(x, y, train);
  for (float v : y.to_vector()) CHECK(v == 0.0f);
}

TEST_CASE("DropBlock2D layer: the slot's step and rate (a schedule's 0, 1 and values between)", "[dropblock]") {
  const Shape s{2, 8, 8, 4};
  const Tensor x = testing::random_tensor(s, 41, 0.5, 1.5);
  // The paper's linear ramp from 0: the layer cannot skip the op, the op reads the slot's rate.
  DropBlock2D layer(0.3, 3, {.seed = 8, .schedule = DropoutSchedule::linear(0.0, 100)});
  layer.build({8, 8, 4}, 0);
  REQUIRE(layer.seed_generator()->draws);
  backend::StepSlot slot{5, 1, 0.0f, kernels::constant_rate(0.0f)};
  RunContext train{cpu(), true, &slot};
  Tensor y(s);
  layer.forward(x, y, train);
  CHECK(y.to_vector() == x.to_vector());
  slot.rate = 1.0f;
  layer.forward(x, y, train);
  for (float v : y.to_vector()) REQUIRE(v == 0.0f);
  slot.rate = 0.25f;
  layer.forward(x, y, train);
  CHECK(y.to_vector() == drop_block(x, 8, 5, 0.25f, 3));
  const auto at5 = y.to_vector();
  layer.forward(x, y, train);
  CHECK(y.to_vector() == at5);  // same step, same mask
  slot.step = 6;
  layer.forward(x, y, train);
  CHECK(y.to_vector() != at5);  // next step, new mask
}

TEST_CASE("SpatialDropout2D and DropBlock2D: a checkpoint round trip restores their seed generators", "[dropblock][spatial_dropout][checkpoint]") {
  auto make = [] {
    Sequential m({8, 8, 2});
    m.add(Conv2D(4, {3, 3}, {.activation = "relu"}));
    m.add(SpatialDropout2D(0.3));
    m.add(DropBlock2D(0.2, 3, {.schedule = DropoutSchedule::linear(0.0, 6)}));
    m.add(Flatten());
    m.add(Dense(3, {.activation = "softmax"}));
    m.compile({.optimizer = Adam{.learning_rate = 0.01}, .loss = "categorical_crossentropy",
               .device = Device::CPU, .seed = 5});
    return m;
  };
  const std::int64_t n = 32;
  const Tensor x = testing::random_tensor({n, 8, 8, 2}, 1, 0.0, 1.0);
  std::vector<float> yv(std::size_t(n * 3), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) yv[std::size_t(i * 3 + i % 3)] = 1.0f;
  const Tensor y = Tensor::from_vector({n, 3}, yv);
  FitOptions o;
  o.batch_size = 8;
  o.verbose = 0;
  o.epochs = 4;
  Sequential straight = make();
  straight.fit(x, y, o);

  dropnet::testing::TempDir dir;
  Sequential first = make();
  o.epochs = 2;
  first.fit(x, y, o);
  save_checkpoint(first, dir / "half.safetensors");
  Sequential resumed = make();
  const TrainingState s = load_checkpoint(resumed, dir / "half.safetensors");
  FitOptions o2 = o;
  o2.epochs = 4;
  resume_from(o2, s);
  resumed.fit(x, y, o2);
  for (std::size_t i = 0; i < straight.layer_count(); ++i)
    for (std::size_t j = 0; j < straight.layer(i).params().size(); ++j) {
      const auto a = straight.layer(i).params()[j].value.to_vector(), b = resumed.layer(i).params()[j].value.to_vector();
      REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  save_checkpoint(straight, dir / "a.safetensors");
  save_checkpoint(resumed, dir / "b.safetensors");
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string a = slurp(dir / "a.safetensors");
  CHECK(a == slurp(dir / "b.safetensors"));
  CHECK(a.find("spatial_dropout2d/seed_generator_state") != std::string::npos);
  CHECK(a.find("drop_block2d/seed_generator_state") != std::string::npos);
}
