// test_noise_layers.cpp: GaussianDropout, GaussianNoise and AlphaDropout: Keras' argument checks and names,
// inference and the edge rates, the statistics of the outputs over 2^24 draws (within 5 sigma of theory),
// backward from the regenerated draws, the slot's step and rate, and a checkpoint round trip.
// (Keras' own outputs: test_noise_keras.cpp; the normals themselves: test_normal_math.cpp.)
#include "support/catch.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/checkpoint.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "io/safetensors.hpp"
#include "kernels/noise_math.hpp"
#include "layers/run_context.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"
#include "support/cpu_backend.hpp"
#include "support/testing.hpp"

using namespace dropnet;
using dropnet::testing::MessageContains;
using Kind = backend::NoiseCall::Kind;

namespace {

backend::Backend& cpu() { return testing::cpu_backend(); }

std::vector<float> op(Kind kind, const Tensor& in, std::uint64_t seed, std::uint64_t step, float rate,
                      bool backward = false, Shape mask = {}) {
  Tensor out(in.shape());
  const backend::NoiseCall call{kind, seed, step, rate, in.shape(), std::move(mask)};
  if (backward) cpu().noise_backward(in, out, call);
  else cpu().noise_forward(in, out, call);
  return out.to_vector();
}

Tensor filled(Shape shape, float value) {
  Tensor t(std::move(shape));
  t.fill(value);
  return t;
}

// Mean and the second and fourth central moments, in double.
struct Moments {
  double n, mean, var, m4;
};
Moments moments(const std::vector<float>& y) {
  double s = 0;
  for (float v : y) s += v;
  const double n = double(y.size()), mean = s / n;
  double m2 = 0, m4 = 0;
  for (float v : y) {
    const double d = v - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  return {n, mean, m2 / n, m4 / n};
}

constexpr std::int64_t kDraws = std::int64_t(1) << 24;

}  // namespace

TEST_CASE("noise layers: Keras' argument checks, class names and automatic names", "[noise]") {
  for (double bad : {1.5, -0.1, std::numeric_limits<double>::quiet_NaN()}) {
    CHECK_THROWS_MATCHES(GaussianDropout(bad), InvalidArgument,
                         MessageContains("Invalid value received for argument `rate`. Expected a float value "
                                         "between 0 and 1. Received: rate="));
    CHECK_THROWS_MATCHES(AlphaDropout(bad), InvalidArgument,
                         MessageContains("Invalid value received for argument `rate`. Expected a float value "
                                         "between 0 and 1. Received: rate="));
    CHECK_THROWS_MATCHES(GaussianNoise(bad), InvalidArgument,
                         MessageContains("Invalid value received for argument `stddev`. Expected a float value "
                                         "between 0 and 1. Received: stddev="));
  }
  CHECK_THROWS_MATCHES(GaussianNoise(1.5), InvalidArgument, MessageContains("Received: stddev=1.5"));
  for (double ok : {0.0, 0.5, 1.0}) {
    CHECK_NOTHROW(GaussianDropout(ok));
    CHECK_NOTHROW(GaussianNoise(ok));
    CHECK_NOTHROW(AlphaDropout(ok));
  }
  CHECK_THROWS_AS(AlphaDropout(0.5, {.noise_shape = {std::nullopt, 0}}), InvalidArgument);
  CHECK_THROWS_AS(AlphaDropout(0.5, {.noise_shape = {std::nullopt, 3}}).build({8}, 0), InvalidArgument);
  CHECK_THROWS_AS(AlphaDropout(0.5, {.noise_shape = {std::nullopt, 1, 8}}).build({8}, 0), InvalidArgument);
  CHECK_THROWS_AS(GaussianDropout(0.5, {.schedule = DropoutSchedule::linear(1.5, 10)}), InvalidArgument);

  Sequential m({8});
  m.add(GaussianDropout(0.1));
  m.add(GaussianNoise(0.1));
  m.add(AlphaDropout(0.1));
  m.add(GaussianDropout(0.2));
  CHECK(m.layer(0).type() == "GaussianDropout");
  CHECK(m.layer(1).type() == "GaussianNoise");
  CHECK(m.layer(2).type() == "AlphaDropout");
  CHECK(m.layer(0).name() == "gaussian_dropout");
  CHECK(m.layer(1).name() == "gaussian_noise");
  CHECK(m.layer(2).name() == "alpha_dropout");
  CHECK(m.layer(3).name() == "gaussian_dropout_1");
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(m.layer(i).build({2, 3, 4}, 1) == Shape{2, 3, 4});  // any shape; output = input; no weights
    CHECK(m.layer(i).params().empty());
  }
}

TEST_CASE("noise layers: seeds as Dropout's, and seed_generator() reports seed, draws, rate and schedule", "[noise]") {
  GaussianDropout gd(0.3, {.seed = 5, .schedule = DropoutSchedule::late(10)});
  gd.build({4}, 77);
  CHECK(gd.seed() == 5);
  const auto g = gd.seed_generator();
  REQUIRE(g.has_value());
  CHECK(g->seed == 5);
  CHECK(g->draws);
  CHECK(g->rate == 0.3);
  CHECK(g->schedule == DropoutSchedule::late(10));

  GaussianNoise gn(0.2);
  gn.build({4}, 77);
  Dropout d(0.2);
  d.build({4}, 77);
  CHECK(gn.seed() == d.seed());  // derive_seed(layer seed, 3), as Dropout
  CHECK(gn.stddev() == 0.2);
  CHECK(gn.seed_generator()->rate == 0.2);
  CHECK_FALSE(GaussianNoise(0.0).seed_generator()->draws);
  CHECK(GaussianNoise(0.0, {.schedule = DropoutSchedule::linear(0.5, 10)}).seed_generator()->draws);

  AlphaDropout ad(0.25, {.seed = 9});
  ad.build({2, 3}, 1);
  CHECK(ad.rate() == 0.25);
  CHECK(ad.seed_generator()->seed == 9);
  CHECK(ad.mask_shape({4, 2, 3}) == Shape{4, 2, 3});
  CHECK(AlphaDropout(0.2, {.noise_shape = {std::nullopt, 1, std::nullopt}}).mask_shape({4, 2, 3}) == Shape{4, 1, 3});
}

TEST_CASE("noise layers: identity at inference and rate 0, GaussianDropout's rate 1 the identity, AlphaDropout's zeros", "[noise]") {
  const Tensor x = testing::random_tensor({3, 2, 5}, 4);
  backend::StepSlot slot{0, 1, 0.5f, kernels::constant_rate(0.5f)};
  RunContext infer{cpu(), false, &slot}, train{cpu(), true, &slot};
  Tensor y({3, 2, 5}), dx({3, 2, 5});
  const Tensor dy = testing::random_tensor({3, 2, 5}, 5);
  auto run = [&](Layer& l, RunContext& ctx) {
    l.build({2, 5}, 3);
    l.forward(x, y, ctx);
    l.backward(x, y, dy, &dx, ctx);
  };
  for (double r : {0.5, 0.0}) {
    GaussianDropout gd(r);
    GaussianNoise gn(r);
    AlphaDropout ad(r);
    for (Layer* l : std::initializer_list<Layer*>{&gd, &gn, &ad}) {
      INFO(l->type() << " rate " << r);
      run(*l, r == 0.0 ? train : infer);
      CHECK(y.to_vector() == x.to_vector());
      CHECK(dx.to_vector() == dy.to_vector());
    }
  }
  GaussianDropout gd1(1.0);
  run(gd1, train);
  CHECK(y.to_vector() == x.to_vector());
  CHECK(dx.to_vector() == dy.to_vector());
  AlphaDropout ad1(1.0);
  run(ad1, train);
  for (float v : y.to_vector()) CHECK(v == 0.0f);
  for (float v : dx.to_vector()) CHECK(v == 0.0f);
  // A training pass without the layer's slot is refused, as Dropout's.
  RunContext no_slot{cpu(), true};
  GaussianDropout gd(0.5);
  gd.build({2, 5}, 3);
  CHECK_THROWS_AS(gd.forward(x, y, no_slot), InvalidArgument);
}

TEST_CASE("GaussianDropout: on x = 1 the output is Normal(1, rate / (1 - rate)) over 2^24 draws, within 5 sigma", "[noise]") {
  const Tensor ones = filled({kDraws}, 1.0f);
  for (float rate : {0.2f, 0.5f}) {
    const auto y = op(Kind::GaussianDropout, ones, 17, 0, rate);
    const Moments m = moments(y);
    const double var = double(rate) / (1.0 - double(rate));
    const double z_mean = (m.mean - 1.0) / std::sqrt(var / m.n), z_var = (m.var - var) / std::sqrt(2.0 * var * var / m.n);
    INFO("rate " << rate << ": mean " << m.mean << " (" << z_mean << " sigma), var " << m.var << " (" << z_var << " sigma)");
    CHECK(std::abs(z_mean) < 5.0);
    CHECK(std::abs(z_var) < 5.0);
    CHECK(std::abs(m.m4 / (m.var * m.var) - 3.0) < 5.0 * std::sqrt(24.0 / m.n));  // kurtosis of a normal
  }
}

TEST_CASE("GaussianNoise: on x = 0 the output is Normal(0, stddev^2) over 2^24 draws, within 5 sigma", "[noise]") {
  const Tensor zeros = filled({kDraws}, 0.0f);
  for (float stddev : {0.1f, 0.7f}) {
    const auto y = op(Kind::GaussianNoise, zeros, 23, 4, stddev);
    const Moments m = moments(y);
    const double var = double(stddev) * stddev;
    const double z_mean = m.mean / std::sqrt(var / m.n), z_var = (m.var - var) / std::sqrt(2.0 * var * var / m.n);
    INFO("stddev " << stddev << ": mean " << m.mean << " (" << z_mean << " sigma), var " << m.var << " (" << z_var << " sigma)");
    CHECK(std::abs(z_mean) < 5.0);
    CHECK(std::abs(z_var) < 5.0);
  }
}

TEST_CASE("AlphaDropout: a standard normal input keeps mean 0 and variance 1, drops a fraction rate, over 2^24 draws", "[noise]") {
  // The input: dropnet's own normals at another seed (GaussianNoise, stddev 1, on zeros).
  const auto normals = op(Kind::GaussianNoise, filled({kDraws}, 0.0f), 999, 0, 1.0f);
  const Tensor x = Tensor::from_vector({kDraws}, normals);
  for (float rate : {0.1f, 0.4f}) {
    const auto y = op(Kind::AlphaDropout, x, 31, 2, rate);
    const kernels::NoiseParams p = kernels::noise_params(kernels::NoiseKind::AlphaDropout, rate);
    const float dropped_value = fmaf(p.a, p.alpha_p, p.b);
    std::int64_t dropped = 0;
    for (float v : y) dropped += v == dropped_value;
    const Moments m = moments(y);
    // Theory (x ~ N(0, 1) independent of the mask): E y = 0, Var y = 1, and the fourth central moment
    // a^4 [(1 - r)(3 + 6 c^2 + c^4) + r (alpha_p (1 - r))^4] with c = r alpha_p.
    const double r = rate, a = p.a, ap = p.alpha_p, c = r * ap;
    const double mu4 = a * a * a * a * ((1 - r) * (3 + 6 * c * c + c * c * c * c) + r * std::pow(ap * (1 - r), 4));
    const double z_mean = m.mean / std::sqrt(1.0 / m.n), z_var = (m.var - 1.0) / std::sqrt((mu4 - 1.0) / m.n);
    const double z_drop = (double(dropped) / m.n - r) / std::sqrt(r * (1 - r) / m.n);
    INFO("rate " << rate << ": mean " << m.mean << " (" << z_mean << " sigma), var " << m.var << " (" << z_var
                 << " sigma), dropped " << double(dropped) / m.n << " (" << z_drop << " sigma)");
    CHECK(std::abs(z_mean) < 5.0);
    CHECK(std::abs(z_var) < 5.0);
    CHECK(std::abs(z_drop) < 5.0);
  }
}

TEST_CASE("AlphaDropout keeps exactly the elements Dropout keeps at the same seed, step and rate", "[noise]") {
  const Shape shape{5, 6, 7};
  const Tensor ones = filled(shape, 1.0f);
  for (const Shape& mask : {shape, Shape{5, 1, 7}}) {
    const auto alpha = op(Kind::AlphaDropout, ones, 8, 3, 0.35f, false, mask);
    Tensor dropout_y(shape);
    cpu().dropout_forward(ones, dropout_y, {8, 3, 0.35f, shape, mask});
    const auto dv = dropout_y.to_vector();
    const kernels::NoiseParams p = kernels::noise_params(kernels::NoiseKind::AlphaDropout, 0.35f);
    for (std::size_t i = 0; i < dv.size(); ++i) {
      const bool kept = dv[i] != 0.0f;
      REQUIRE(alpha[i] == (kept ? fmaf(p.a, 1.0f, p.b) : fmaf(p.a, p.alpha_p, p.b)));
    }
  }
}

TEST_CASE("noise ops: forward is the per-element definition and backward regenerates the same draws", "[noise]") {
  const Shape shape{3, 7, 5};
  const std::int64_t n = element_count(shape);
  const Tensor x = testing::random_tensor(shape, 41, 0.5, 2.0), dy = testing::random_tensor(shape, 42);
  const auto xv = x.to_vector(), dyv = dy.to_vector();
  const std::uint64_t seed = 1234, step = 56;
  const float rate = 0.3f;
  {
    const auto y = op(Kind::GaussianDropout, x, seed, step, rate), dx = op(Kind::GaussianDropout, dy, seed, step, rate, true);
    const float stddev = kernels::gaussian_dropout_stddev(rate);
    for (std::int64_t i = 0; i < n; ++i) {
      const float g = fmaf(kernels::normal_at(seed, step, std::uint64_t(i)), stddev, 1.0f);
      REQUIRE(y[std::size_t(i)] == xv[std::size_t(i)] * g);
      REQUIRE(dx[std::size_t(i)] == dyv[std::size_t(i)] * g);  // d(x g)/dx = g, the forward's g
    }
  }
  {
    const auto y = op(Kind::GaussianNoise, x, seed, step, rate), dx = op(Kind::GaussianNoise, dy, seed, step, rate, true);
    for (std::int64_t i = 0; i < n; ++i)
      REQUIRE(y[std::size_t(i)] == fmaf(rate, kernels::normal_at(seed, step, std::uint64_t(i)), xv[std::size_t(i)]));
    CHECK(dx == dyv);
  }
  for (const Shape& mask : {shape, Shape{1, 7, 1}}) {
    const auto y = op(Kind::AlphaDropout, x, seed, step, rate, false, mask);
    const auto dx = op(Kind::AlphaDropout, dy, seed, step, rate, true, mask);
    const kernels::NoiseParams p = kernels::noise_params(kernels::NoiseKind::AlphaDropout, rate);
    const kernels::DropoutBroadcast b = kernels::dropout_broadcast(shape.data(), mask.data(), 3);
    std::int64_t kept_count = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const bool kept = kernels::dropout_keep_at(seed, step, std::uint64_t(kernels::dropout_mask_index(i, b)), 1.0f - rate);
      kept_count += kept;
      REQUIRE(y[std::size_t(i)] == fmaf(p.a, kept ? xv[std::size_t(i)] : p.alpha_p, p.b));
      REQUIRE(dx[std::size_t(i)] == (kept ? dyv[std::size_t(i)] * p.a : 0.0f));
    }
    CHECK(kept_count > 0);
    CHECK(kept_count < n);
  }
}

TEST_CASE("noise ops: finite differences of the forward match backward", "[noise]") {
  // For fixed draws each layer is affine in x, so central differences are exact up to float rounding.
  const Shape shape{2, 9};
  const Tensor x = testing::random_tensor(shape, 3), dy = testing::random_tensor(shape, 4);
  for (Kind kind : {Kind::GaussianDropout, Kind::GaussianNoise, Kind::AlphaDropout}) {
    const auto dx = op(kind, dy, 77, 5, 0.4f, true);
    auto xv = x.to_vector();
    const auto dyv = dy.to_vector();
    for (std::size_t i = 0; i < xv.size(); ++i) {
      const float h = 1e-2f, x0 = xv[i];
      xv[i] = x0 + h;
      const auto yp = op(kind, Tensor::from_vector(shape, xv), 77, 5, 0.4f);
      xv[i] = x0 - h;
      const auto ym = op(kind, Tensor::from_vector(shape, xv), 77, 5, 0.4f);
      xv[i] = x0;
      const double numeric = (double(yp[i]) - double(ym[i])) / (2.0 * h) * dyv[i];
      INFO("kind " << int(kind) << " element " << i);
      CHECK(std::abs(numeric - dx[i]) <= 1e-4 * (1.0 + std::abs(numeric)));
    }
  }
}

TEST_CASE("noise layers: the slot's step draws (same step, same values), and its rate rules, 0, 1 and between", "[noise]") {
  const Tensor x = testing::random_tensor({4, 16}, 9, 0.5, 1.5);
  Tensor y1({4, 16}), y2({4, 16}), y3({4, 16});
  backend::StepSlot slot{0, 1, 0.3f, kernels::constant_rate(0.3f)};
  RunContext train{cpu(), true, &slot};
  GaussianDropout gd(0.3, {.seed = 4, .schedule = DropoutSchedule::linear(0.0, 100)});
  GaussianNoise gn(0.3, {.seed = 4, .schedule = DropoutSchedule::linear(0.0, 100)});
  AlphaDropout ad(0.3, {.seed = 4, .schedule = DropoutSchedule::linear(0.0, 100)});
  for (Layer* l : std::initializer_list<Layer*>{&gd, &gn, &ad}) {
    INFO(l->type());
    l->build({16}, 0);
    slot.rate = 0.3f;
    slot.step = 0;
    l->forward(x, y1, train);
    l->forward(x, y3, train);
    slot.step = 1;
    l->forward(x, y2, train);
    CHECK(y1.to_vector() == y3.to_vector());
    CHECK(y1.to_vector() != y2.to_vector());
    // The slot's rate, not the layer's: a plain op call at the slot's step and rate gives the same bits.
    slot.rate = 0.15f;
    l->forward(x, y2, train);
    const Kind kind = l == &gd ? Kind::GaussianDropout : l == &gn ? Kind::GaussianNoise : Kind::AlphaDropout;
    CHECK(y2.to_vector() == op(kind, x, 4, 1, 0.15f));
    // A schedule's 0: the identity for all three.
    slot.rate = 0.0f;
    l->forward(x, y2, train);
    CHECK(y2.to_vector() == x.to_vector());
    // A schedule's 1: GaussianDropout the identity, AlphaDropout zeros, GaussianNoise stddev 1.
    slot.rate = 1.0f;
    l->forward(x, y2, train);
    if (l == &gd) CHECK(y2.to_vector() == x.to_vector());
    if (l == &ad) CHECK(y2.to_vector() == std::vector<float>(64, 0.0f));
    if (l == &gn) CHECK(y2.to_vector() == op(Kind::GaussianNoise, x, 4, 1, 1.0f));
  }
}

TEST_CASE("noise layers: a checkpoint restores the seed generators and training continues bit-identically", "[noise][checkpoint]") {
  testing::TempDir dir;
  auto model = [] {
    Sequential m({12});
    m.add(Dense(16, {.activation = "relu"}));
    m.add(GaussianNoise(0.2));
    m.add(GaussianDropout(0.3));
    m.add(Dense(8, {.activation = "linear"}));
    m.add(AlphaDropout(0.2, {.noise_shape = {std::nullopt, 1}}));
    m.add(AlphaDropout(0.1));
    m.add(Dense(3, {.activation = "softmax"}));
    m.compile({.optimizer = Adam{.learning_rate = 0.01}, .loss = "categorical_crossentropy",
               .device = Device::CPU, .seed = 5});
    return m;
  };
  const std::int64_t rows = 40;
  const Tensor x = testing::random_tensor({rows, 12}, 1);
  std::vector<float> yv(std::size_t(rows * 3), 0.0f);
  for (std::int64_t i = 0; i < rows; ++i) yv[std::size_t(i * 3 + i % 3)] = 1.0f;
  const Tensor y = Tensor::from_vector({rows, 3}, yv);
  FitOptions o;
  o.batch_size = 8;
  o.verbose = 0;
  o.shuffle = true;

  Sequential straight = model();
  o.epochs = 4;
  straight.fit(x, y, o);
  save_checkpoint(straight, dir / "straight.safetensors");

  Sequential first = model();
  o.epochs = 2;
  first.fit(x, y, o);
  save_checkpoint(first, dir / "epoch2.safetensors");
  // Each noise layer's generator state is (seed, training calls so far): 2 epochs of 5 batches.
  const auto file = io::SafetensorsFile::read(dir / "epoch2.safetensors");
  for (const char* name : {"gaussian_noise", "gaussian_dropout", "alpha_dropout", "alpha_dropout_1"}) {
    INFO(name);
    const auto state = file.i64(std::string(name) + "/seed_generator_state");
    REQUIRE(state.size() == 2);
    CHECK(state[1] == 10);
  }
  const auto* gd = dynamic_cast<const GaussianDropout*>(&first.layer(2));
  REQUIRE(gd != nullptr);
  CHECK(std::uint64_t(file.i64("gaussian_dropout/seed_generator_state")[0]) == gd->seed());

  const TrainingState s = read_training_state(dir / "epoch2.safetensors");
  Sequential resumed = model();
  const TrainingState loaded = load_checkpoint(resumed, dir / "epoch2.safetensors");
  FitOptions r = o;
  r.epochs = 4;
  resume_from(r, loaded);
  resumed.fit(x, y, r);
  save_checkpoint(resumed, dir / "resumed.safetensors");
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  CHECK(s.epoch == 2);
  // Weights, Adam moments, iterations, every generator's step and the history: byte for byte.
  CHECK(slurp(dir / "straight.safetensors") == slurp(dir / "resumed.safetensors"));
}
