// one_layer_models.cpp: for each dropout-family layer, a Sequential of just that layer, compiled without a
// loss (an inference-only model) and used for predict, plain and Monte Carlo (dropout=true), through the
// installed libdropnet. Built and run by tests/install/test_install.sh, which checks its output.
//
// On an input of ones each layer's Monte Carlo output has a known law: the dropped fraction (elements
// below 0.5: Dropout's zeros, AlphaDropout's negative alpha', DropBlock's zeros) is about the rate, and the
// mean and standard deviation follow from the layer's formula. Prints one line per layer ending in ": ok"
// when plain predict is the identity, the statistics are within tolerance and two Monte Carlo draws
// differ; exits 1 otherwise.
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <dropnet/dropnet.hpp>

namespace dn = dropnet;

namespace {

// An expected value and how far the measured one may be from it; unchecked when tol < 0.
struct Expect {
  double value = 0, tol = -1;
  bool ok(double measured) const { return tol < 0 || std::abs(measured - value) <= tol; }
};

struct Case {
  std::string name;
  dn::Shape input_shape;  // batch excluded
  std::function<std::unique_ptr<dn::Layer>()> make;
  Expect dropped, mean, stddev;
};

struct Stats {
  double dropped = 0, mean = 0, stddev = 0;
};

Stats stats_of(const std::vector<float>& y) {
  double below = 0, sum = 0, sum2 = 0;
  for (float v : y) {
    below += v < 0.5f;
    sum += v;
  }
  const double n = double(y.size()), mean = sum / n;
  for (float v : y) sum2 += (v - mean) * (v - mean);
  return {below / n, mean, std::sqrt(sum2 / n)};
}

std::string expect_text(const char* what, double measured, const Expect& e) {
  char buf[96];
  if (e.tol < 0) std::snprintf(buf, sizeof buf, "%s %.4f", what, measured);
  else std::snprintf(buf, sizeof buf, "%s %.4f (%.4g +- %.4g)", what, measured, e.value, e.tol);
  return buf;
}

}  // namespace

int main() try {
  const std::int64_t batch = 64;
  const dn::RandomLayerOptions seeded{.seed = 17};
  // Tolerances: about 6 standard errors of each statistic over the draws (elements, or channels for the
  // spatial layers, whose draws are per sample and channel).
  const std::vector<Case> cases = {
      {"Dropout(0.5)", {8, 8, 3}, [] { return std::make_unique<dn::Dropout>(0.5, dn::DropoutOptions{.seed = 17}); },
       {0.5, 0.03}, {1.0, 0.06}, {1.0, 0.03}},
      {"SpatialDropout1D(0.5)", {16, 32}, [&] { return std::make_unique<dn::SpatialDropout1D>(0.5, seeded); },
       {0.5, 0.07}, {1.0, 0.14}, {1.0, 0.03}},
      {"SpatialDropout2D(0.5)", {8, 8, 16}, [&] { return std::make_unique<dn::SpatialDropout2D>(0.5, seeded); },
       {0.5, 0.1}, {1.0, 0.2}, {1.0, 0.03}},
      {"SpatialDropout3D(0.5)", {2, 4, 4, 16}, [&] { return std::make_unique<dn::SpatialDropout3D>(0.5, seeded); },
       {0.5, 0.1}, {1.0, 0.2}, {1.0, 0.03}},
      // Normal(1, sqrt(rate / (1 - rate))) factors: mean 1, stddev 1 at rate 0.5.
      {"GaussianDropout(0.5)", {8, 8, 3}, [&] { return std::make_unique<dn::GaussianDropout>(0.5, seeded); },
       {}, {1.0, 0.06}, {1.0, 0.05}},
      // 1 + 0.3 n < 0.5 for n < -5/3: P = 0.0478.
      {"GaussianNoise(0.3)", {8, 8, 3}, [&] { return std::make_unique<dn::GaussianNoise>(0.3, seeded); },
       {0.0478, 0.012}, {1.0, 0.02}, {0.3, 0.02}},
      // Kept ones become a + b > 0, dropped ones a * alpha' + b < 0.
      {"AlphaDropout(0.2)", {8, 8, 3}, [] { return std::make_unique<dn::AlphaDropout>(0.2, dn::DropoutOptions{.seed = 17}); },
       {0.2, 0.025}, {}, {}},
      // Blocks overlap, so fewer than `rate` are dropped near the edges; the kept ones are rescaled by
      // total / kept of the batch, so the mean is 1 up to rounding.
      {"DropBlock2D(0.2, 3)", {16, 16, 4}, [&] { return std::make_unique<dn::DropBlock2D>(0.2, 3, seeded); },
       {0.2, 0.05}, {1.0, 1e-3}, {}},
  };

  int failed = 0;
  for (const Case& c : cases) {
    dn::Sequential model(c.input_shape);
    model.add(c.make());
    model.compile({.loss = "", .seed = 1});  // no loss: inference only (predict); CUDA when available

    dn::Shape shape{batch};
    shape.insert(shape.end(), c.input_shape.begin(), c.input_shape.end());
    dn::Tensor x(shape);
    x.fill(1.0f);
    const std::vector<float> ones = x.to_vector();
    const bool identity = model.predict(x, {.batch_size = int(batch)}).to_vector() == ones;
    const std::vector<float> first = model.predict(x, {.batch_size = int(batch), .dropout = true}).to_vector();
    const std::vector<float> second = model.predict(x, {.batch_size = int(batch), .dropout = true}).to_vector();
    const Stats s = stats_of(first);
    const bool ok = identity && first != second && c.dropped.ok(s.dropped) && c.mean.ok(s.mean) && c.stddev.ok(s.stddev);
    std::printf("%s on %s: predict %s; Monte Carlo predict: %s, %s, %s, two draws %s: %s\n", c.name.c_str(),
                dn::to_string(shape).c_str(), identity ? "is the identity" : "CHANGES its input",
                expect_text("dropped", s.dropped, c.dropped).c_str(), expect_text("mean", s.mean, c.mean).c_str(),
                expect_text("stddev", s.stddev, c.stddev).c_str(), first != second ? "differ" : "are EQUAL",
                ok ? "ok" : "FAILED");
    failed += !ok;
  }
  std::printf("one_layer_models: %zu layers, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "one_layer_models: error: %s\n", e.what());
  return 1;
}
