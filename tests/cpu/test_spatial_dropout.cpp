// SpatialDropout1D/2D/3D: Keras' semantics (whole channels dropped, kept channels scaled by 1 / (1 - rate),
// the identity at inference, Keras' argument and rank checks) and the statistics of the channel draws,
// compared with theory and with Keras' own training outputs (tests/reference/goldens_spatial/, written by
// tests/reference/generate_spatial_goldens.py). Keras draws other random numbers than dropnet, so the
// comparison is of statistics, scaling constants, inference outputs and messages, not of masks.
#include "support/catch.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "layers/run_context.hpp"
#include "support/cpu_backend.hpp"
#include "support/matchers.hpp"
#include "support/testing.hpp"
#include "tests/support/npy.hpp"

using namespace dropnet;
using dropnet::testing::MessageContains;

namespace {

backend::Backend& cpu() { return testing::cpu_backend(); }

// DROPNET_STATS_REPORT=1 prints the measured distances from theory (docs/keras-parity.md quotes them).
void report_stats(const std::string& line) {
  if (const char* v = std::getenv("DROPNET_STATS_REPORT"); v != nullptr && *v != '\0' && std::string(v) != "0")
    std::printf("stats | %s\n", line.c_str());
}

std::string golden_dir() { return std::string(DROPNET_SOURCE_DIR) + "/tests/reference/goldens_spatial/"; }

std::string golden_text(const std::string& file) {
  std::ifstream in(golden_dir() + file);
  std::string line;
  std::getline(in, line);
  return line;
}

std::unique_ptr<Dropout> make(int dims, double rate, RandomLayerOptions o = {}) {
  if (dims == 1) return std::make_unique<SpatialDropout1D>(rate, o);
  if (dims == 2) return std::make_unique<SpatialDropout2D>(rate, o);
  return std::make_unique<SpatialDropout3D>(rate, o);
}

// Per-sample shape (batch excluded) of a spatial dropout of `dims` spatial dims, `spatial` positions each way.
Shape sample_shape(int dims, std::int64_t spatial, std::int64_t channels) {
  Shape s(std::size_t(dims), spatial);
  s.push_back(channels);
  return s;
}

Shape with_batch(std::int64_t n, const Shape& s) {
  Shape b{n};
  b.insert(b.end(), s.begin(), s.end());
  return b;
}

// Channel statistics of a training output y of ones(N, spatial..., C): channels drawn and dropped, whether
// every channel is all 0 or all `kept`.
struct ChannelStats {
  std::int64_t draws = 0, dropped = 0;
  bool all_or_nothing = true;
};
void count_channels(const std::vector<float>& y, std::int64_t n, std::int64_t spatial, std::int64_t c, float kept,
                    ChannelStats& s) {
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const float first = y[std::size_t(b * spatial * c + ch)];
      s.all_or_nothing = s.all_or_nothing && (first == 0.0f || first == kept);
      for (std::int64_t p = 1; p < spatial; ++p)
        s.all_or_nothing = s.all_or_nothing && y[std::size_t((b * spatial + p) * c + ch)] == first;
      s.draws += 1;
      s.dropped += first == 0.0f;
    }
}

}  // namespace

TEST_CASE("SpatialDropout: Keras' class names, automatic names and argument checks", "[spatial_dropout]") {
  Sequential m({4, 4, 3});
  m.add(SpatialDropout2D(0.2));
  m.add(SpatialDropout2D(0.2));
  CHECK(m.layer(0).name() == "spatial_dropout2d");
  CHECK(m.layer(1).name() == "spatial_dropout2d_1");
  CHECK(m.layer(0).type() == "SpatialDropout2D");
  CHECK(SpatialDropout1D(0.1).type() == "SpatialDropout1D");
  CHECK(SpatialDropout1D(0.1).name_stem() == "spatial_dropout1d");
  CHECK(SpatialDropout3D(0.1).type() == "SpatialDropout3D");
  CHECK(SpatialDropout3D(0.1).name_stem() == "spatial_dropout3d");

  // Keras' messages, as its generator recorded them.
  const std::string rate_error = golden_text("rate_error.txt");
  REQUIRE(!rate_error.empty());
  CHECK_THROWS_MATCHES(SpatialDropout2D(1.5), InvalidArgument, MessageContains(rate_error));
  for (double bad : {-0.1, std::numeric_limits<double>::quiet_NaN()})
    for (int d : {1, 2, 3}) CHECK_THROWS_MATCHES(make(d, bad), InvalidArgument, MessageContains("Expected a float value between 0 and 1"));
  CHECK_THROWS_AS(SpatialDropout1D(0.2, {.schedule = DropoutSchedule::linear(-1.0, 5)}), InvalidArgument);

  const std::pair<int, Shape> bad_inputs[] = {{1, Shape{5}}, {2, Shape{8, 8}}, {3, Shape{4, 4, 4}}};
  for (const auto& [d, in] : bad_inputs) {
    auto layer = make(d, 0.3);
    layer->set_name("spatial_dropout" + std::to_string(d) + "d");
    const std::string keras = golden_text("spatial_dropout" + std::to_string(d) + "d__ndim_error.txt");
    REQUIRE(!keras.empty());
    CHECK_THROWS_MATCHES(layer->build(in, 0), InvalidArgument, MessageContains(keras));
  }
  CHECK_THROWS_AS(SpatialDropout2D(0.3).build({2, 3, 4, 5}, 0), InvalidArgument);
  CHECK_NOTHROW(SpatialDropout1D(0.3).build({7, 2}, 0));
  CHECK_NOTHROW(SpatialDropout3D(0.3).build({1, 2, 3, 2}, 0));
}

TEST_CASE("SpatialDropout: the noise shape keeps batch and channels only", "[spatial_dropout]") {
  CHECK(SpatialDropout1D(0.3).mask_shape({5, 7, 3}) == Shape{5, 1, 3});
  CHECK(SpatialDropout2D(0.3).mask_shape({5, 7, 6, 3}) == Shape{5, 1, 1, 3});
  CHECK(SpatialDropout3D(0.3).mask_shape({5, 7, 6, 2, 3}) == Shape{5, 1, 1, 1, 3});
}

TEST_CASE("SpatialDropout: the inference output is Keras' (the identity)", "[spatial_dropout][keras_parity]") {
  for (int d : {1, 2, 3}) {
    const std::string name = "spatial_dropout" + std::to_string(d) + "d";
    const npy::Array gx = npy::load(golden_dir() + name + "__x.npy"), gy = npy::load(golden_dir() + name + "__y.npy");
    const Shape shape(gx.shape.begin(), gx.shape.end());
    auto layer = make(d, 0.3, {.seed = 1});
    layer->build(Shape(shape.begin() + 1, shape.end()), 0);
    const Tensor x = Tensor::from_vector(shape, gx.as_float());
    Tensor y(shape);
    RunContext infer{cpu(), false};
    layer->forward(x, y, infer);
    INFO(name);
    CHECK(y.to_vector() == gy.as_float());
  }
}

TEST_CASE("SpatialDropout2D drops a fraction `rate` of channels over 10^7 draws (5 sigma), whole channels, scaled by "
          "1 / (1 - rate)", "[spatial_dropout][stats]") {
  const float rate = 0.3f;
  const float kept = 1.0f / (1.0f - rate);
  const std::int64_t n = 1000, c = 1000;
  SpatialDropout2D layer(rate, {.seed = 42});
  layer.build({2, 2, c}, 0);
  Tensor x(Shape{n, 2, 2, c}), y(Shape{n, 2, 2, c});
  x.fill(1.0f);
  backend::StepSlot slot{0, 1, rate, kernels::constant_rate(rate)};
  RunContext train{cpu(), true, &slot};
  ChannelStats s;
  std::vector<float> previous;
  for (std::uint64_t step = 0; step < 10; ++step) {
    slot.step = step;
    layer.forward(x, y, train);
    const std::vector<float> v = y.to_vector();
    count_channels(v, n, 4, c, kept, s);
    const bool changed = v != previous;
    CHECK(changed);  // each step draws a new mask
    previous = v;
  }
  REQUIRE(s.draws >= 10'000'000);
  const double frac = double(s.dropped) / double(s.draws), sigma = std::sqrt(rate * (1.0 - rate) / double(s.draws));
  report_stats("spatial_dropout2d: dropped " + std::to_string(frac) + " of " + std::to_string(s.draws) +
                        " channels: " + std::to_string(std::abs(frac - rate) / sigma) + " sigma");
  INFO("dropped " << frac << " of " << s.draws << " channels: " << std::abs(frac - rate) / sigma << " sigma");
  CHECK(std::abs(frac - rate) < 5.0 * sigma);
  CHECK(s.all_or_nothing);
}

TEST_CASE("SpatialDropout: statistics against Keras' own training outputs", "[spatial_dropout][stats][keras_parity]") {
  for (int d : {1, 2, 3}) {
    const std::string name = "spatial_dropout" + std::to_string(d) + "d";
    const std::vector<double> k = npy::load(golden_dir() + name + "__stats.npy").values;
    REQUIRE(k.size() == 6);
    const float rate = float(k[0]);
    const double keras_draws = k[1], keras_frac = k[2] / k[1];
    const float keep = 1.0f - rate;
    // Keras divides by keep_prob in float32: the kept value on a constant 1 is dropnet's too, bit for bit.
    CHECK(float(k[3]) == 1.0f / keep);
    CHECK(k[4] == 1.0);  // Keras' channels are all-or-nothing
    // dropnet: the same layer and rate, about as many channel draws.
    const std::int64_t spatial = 3, c = 250, n = 1000;
    auto layer = make(d, rate, {.seed = 77});
    const Shape sample = sample_shape(d, spatial, c);
    layer->build(sample, 0);
    const Shape shape = with_batch(n, sample);
    Tensor x(shape), y(shape);
    x.fill(1.0f);
    backend::StepSlot slot{0, 1, rate, kernels::constant_rate(rate)};
    RunContext train{cpu(), true, &slot};
    ChannelStats s;
    std::int64_t positions = 1;
    for (int i = 0; i < d; ++i) positions *= spatial;
    for (std::uint64_t step = 0; s.draws < std::int64_t(keras_draws); ++step) {
      slot.step = step;
      layer->forward(x, y, train);
      count_channels(y.to_vector(), n, positions, c, 1.0f / keep, s);
    }
    const double frac = double(s.dropped) / double(s.draws);
    const double p = rate;
    const double combined = std::sqrt(p * (1 - p) / double(s.draws) + p * (1 - p) / keras_draws);
    INFO(name << ": dropnet drops " << frac << " of " << s.draws << " channels, Keras " << keras_frac << " of "
              << keras_draws << ": " << std::abs(frac - keras_frac) / combined << " combined standard errors");
    report_stats(name + ": dropnet " + std::to_string(frac) + " of " + std::to_string(s.draws) + ", Keras " +
                          std::to_string(keras_frac) + " of " + std::to_string(std::int64_t(keras_draws)) + ": " +
                          std::to_string(std::abs(frac - keras_frac) / combined) + " combined SE; dropnet vs rate " +
                          std::to_string(std::abs(frac - p) / std::sqrt(p * (1 - p) / double(s.draws))) + " sigma");
    CHECK(std::abs(frac - keras_frac) < 5.0 * combined);
    CHECK(s.all_or_nothing);
  }
}

TEST_CASE("SpatialDropout: backward regenerates the forward's channel mask", "[spatial_dropout][gradient]") {
  for (int d : {1, 2, 3}) {
    const Shape sample = sample_shape(d, 3, 7), shape = with_batch(4, sample);
    const Tensor x = testing::random_tensor(shape, 3, 0.5, 1.5), dy = testing::random_tensor(shape, 4);
    auto layer = make(d, 0.4, {.seed = 5});
    layer->build(sample, 0);
    backend::StepSlot slot{9, 1, 0.4f, kernels::constant_rate(0.4f)};
    RunContext train{cpu(), true, &slot};
    Tensor y(shape), dx(shape);
    layer->forward(x, y, train);
    layer->backward(x, y, dy, &dx, train);
    const auto xv = x.to_vector(), yv = y.to_vector(), dyv = dy.to_vector(), dxv = dx.to_vector();
    const float keep = 1.0f - 0.4f;
    std::int64_t dropped = 0;
    for (std::size_t i = 0; i < yv.size(); ++i) {
      REQUIRE(yv[i] == (yv[i] == 0.0f ? 0.0f : xv[i] / keep));
      REQUIRE(dxv[i] == (yv[i] == 0.0f ? 0.0f : dyv[i] / keep));  // d(x / keep)/dx on the same mask
      dropped += yv[i] == 0.0f;
    }
    CHECK(dropped > 0);
    CHECK(dropped < std::int64_t(yv.size()));
  }
}

TEST_CASE("SpatialDropout: identity at inference and rate 0, zeros at rate 1, a schedule's rates from the slot",
          "[spatial_dropout]") {
  const Shape sample{4, 4, 6}, shape{3, 4, 4, 6};
  const Tensor x = testing::random_tensor(shape, 8, 0.5, 1.5);
  backend::StepSlot slot{2, 1, 0.5f, kernels::constant_rate(0.5f)};
  RunContext infer{cpu(), false}, train{cpu(), true, &slot};
  Tensor y(shape);
  SpatialDropout2D half(0.5, {.seed = 3});
  half.build(sample, 0);
  half.forward(x, y, infer);
  CHECK(y.to_vector() == x.to_vector());
  SpatialDropout2D zero(0.0), one(1.0);
  zero.build(sample, 0);
  one.build(sample, 0);
  CHECK_FALSE(zero.seed_generator()->draws);
  zero.forward(x, y, train);
  CHECK(y.to_vector() == x.to_vector());
  one.forward(x, y, train);
  for (float v : y.to_vector()) CHECK(v == 0.0f);

  // Late dropout: the layer cannot skip the op; the op reads 0, 1 or 0.25 from the slot.
  SpatialDropout2D late(0.5, {.seed = 3, .schedule = DropoutSchedule::late(10)});
  late.build(sample, 0);
  slot.rate = 0.0f;
  late.forward(x, y, train);
  CHECK(y.to_vector() == x.to_vector());
  slot.rate = 1.0f;
  late.forward(x, y, train);
  for (float v : y.to_vector()) CHECK(v == 0.0f);
  slot.rate = 0.25f;
  late.forward(x, y, train);
  const auto xv = x.to_vector(), yv = y.to_vector();
  for (std::size_t i = 0; i < yv.size(); ++i) REQUIRE((yv[i] == 0.0f || yv[i] == xv[i] / 0.75f));
}
