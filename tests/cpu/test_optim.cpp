// MaxNorm, Adam, initializers and cross-entropy against values computed by hand from Keras' formulas.
#include "support/catch.hpp"

#include <cmath>
#include <map>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/initializers.hpp"
#include "kernels/adam_math.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {
// A CPU backend context of its own for the op tests (models make theirs at compile).
backend::Backend& cpu() {
  static const std::unique_ptr<backend::Backend> context = backend::make_backend(Device::CPU);
  return *context;
}
}  // namespace

TEST_CASE("MaxNorm on a Dense kernel, axis 0: one norm per unit", "[maxnorm]") {
  // (in=2, out=3): column norms 5, 1 and 2 exactly.
  std::vector<float> w = {3, 0.6f, 0, 4, 0.8f, 2};
  cpu().maxnorm(w.data(), {{2, 3}, {0}, 2.0f});
  const double shrink5 = 2.0 / (5.0 + 1e-7), shrink1 = 1.0 / (1.0 + 1e-7), shrink2 = 2.0 / (2.0 + 1e-7);
  CHECK(w[0] == Approx(3 * shrink5).epsilon(1e-6));
  CHECK(w[3] == Approx(4 * shrink5).epsilon(1e-6));
  CHECK(w[1] == Approx(0.6 * shrink1).epsilon(1e-6));  // inside the ball: only the n/(n+1e-7) shrink
  CHECK(w[4] == Approx(0.8 * shrink1).epsilon(1e-6));
  CHECK(w[2] == 0.0f);
  CHECK(w[5] == Approx(2 * shrink2).epsilon(1e-6));
}

TEST_CASE("MaxNorm on a Conv2D kernel with the axis forms Keras documents", "[maxnorm]") {
  const Shape shape{3, 3, 2, 4};  // (rows, cols, in, out)
  const auto original = testing::uniform<float>(72, -1, 1, 3);
  const auto reference = [&](std::vector<int> axes) {
    // Double-precision reference: group by the coordinates on the axes not reduced.
    std::vector<double> out(original.begin(), original.end());
    std::map<std::int64_t, double> sums;
    auto key = [&](std::int64_t i) {
      std::int64_t coord[4] = {i / 24, (i / 8) % 3, (i / 4) % 2, i % 4}, k = 0;
      for (int d = 0; d < 4; ++d)
        if (std::find(axes.begin(), axes.end(), d) == axes.end()) k = k * 10 + coord[d] + 1;
      return k;
    };
    for (std::int64_t i = 0; i < 72; ++i) sums[key(i)] += out[std::size_t(i)] * out[std::size_t(i)];
    for (std::int64_t i = 0; i < 72; ++i) {
      const double n = std::sqrt(sums[key(i)]);
      out[std::size_t(i)] *= std::min(n, 1.0) / (1e-7 + n);
    }
    return out;
  };
  for (std::vector<int> axes : {std::vector<int>{0, 1, 2}, {0, 1}, {0}, {3}}) {
    std::vector<float> w = original;
    cpu().maxnorm(w.data(), {shape, axes, 1.0f});
    const auto ref = reference(axes);
    INFO("axes size " << axes.size());
    CHECK(testing::worst_ratio(w, ref, 1e-7, 1e-5) <= 1.0);
  }
}

TEST_CASE("Adam follows Keras' update", "[adam]") {
  // One parameter, constant gradient 0.5, Keras defaults. Step 1 by hand:
  //   m = 0.05, v = 0.00025, alpha = 1e-3 * sqrt(1 - 0.999) / (1 - 0.9) = 3.16227766e-4
  //   theta -= 0.05 * 3.16227766e-4 / (sqrt(0.00025) + 1e-7) = 1e-3 * 0.0158113883 / (0.0158113883 + 1e-7)
  float theta = 1.0f, m = 0, v = 0;
  const float g = 0.5f;
  cpu().adam_update(&theta, &g, &m, &v, 1, kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, 1));
  CHECK(m == Approx(0.05).epsilon(1e-6));
  CHECK(v == Approx(0.00025).epsilon(1e-6));
  CHECK(theta == Approx(1.0 - 1e-3 * 0.0158113883 / (0.0158113883 + 1e-7)).epsilon(1e-7));

  // Five steps against the formula in double.
  double th = 1.0, md = 0, vd = 0;
  float thf = 1.0f, mf = 0, vf = 0;
  const double grads[] = {0.5, -0.3, 0.2, 0.9, -1.1};
  for (int t = 1; t <= 5; ++t) {
    const double gd = grads[t - 1];
    md += (gd - md) * 0.1;
    vd += (gd * gd - vd) * 0.001;
    th -= md * (1e-3 * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t))) / (std::sqrt(vd) + 1e-7);
    const float gf = float(gd);
    cpu().adam_update(&thf, &gf, &mf, &vf, 1, kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, t));
    CHECK(thf == Approx(th).epsilon(1e-6));
  }
}

TEST_CASE("compute_fans and he_uniform / glorot_uniform bounds", "[init]") {
  CHECK(compute_fans({3, 3, 3, 64}) == std::pair<double, double>(27, 576));
  CHECK(compute_fans({2304, 256}) == std::pair<double, double>(2304, 256));
  for (const Shape& shape : {Shape{3, 3, 64, 64}, Shape{2304, 256}}) {
    Tensor w(shape);
    initialize("he_uniform", w, 7);
    const double limit = std::sqrt(6.0 / compute_fans(shape).first);
    const auto v = w.to_vector();
    double lo = 1e9, hi = -1e9, sum = 0, sq = 0;
    for (float x : v) {
      lo = std::min(lo, double(x));
      hi = std::max(hi, double(x));
      sum += x;
      sq += double(x) * x;
    }
    const double n = double(v.size()), mean = sum / n, var = sq / n - mean * mean;
    INFO("shape of " << v.size() << " limit " << limit);
    CHECK(lo >= -limit);
    CHECK(hi <= limit);
    CHECK(lo < -0.99 * limit);
    CHECK(hi > 0.99 * limit);
    CHECK(std::abs(mean) < 5 * limit / std::sqrt(3 * n));
    CHECK(var == Approx(limit * limit / 3).epsilon(0.02));
  }
  Tensor g({100, 50});
  initialize("glorot_uniform", g, 1);
  for (float x : g.to_vector()) REQUIRE(std::abs(x) <= std::sqrt(6.0 / 150.0));
  REQUIRE_THROWS_AS(initialize("lecun_uniform", g, 1), InvalidArgument);
}

TEST_CASE("softmax cross-entropy and accuracy against hand-computed values", "[loss]") {
  // Row 0: logits (1, 2, 3), target class 2: loss = log(e + e^2 + e^3) - 3 = 0.40760596444...
  // Row 1: logits (0, 0, 0), target class 0: loss = log 3, argmax of z is class 0 (first max).
  const Tensor z = testing::tensor({2, 3}, {1, 2, 3, 0, 0, 0});
  const Tensor t = testing::tensor({2, 3}, {0, 0, 1, 1, 0, 0});
  Tensor dz({2, 3}), stats({2});
  cpu().softmax_cross_entropy(z, t, &dz, 0.5f, stats);
  const auto s = stats.to_vector();
  CHECK(s[0] == Approx(0.40760596444 + std::log(3.0)).epsilon(1e-6));
  CHECK(s[1] == 2.0f);
  const double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0), sum = e1 + e2 + e3;
  const auto d = dz.to_vector();
  CHECK(d[0] == Approx(0.5 * e1 / sum).epsilon(1e-6));
  CHECK(d[2] == Approx(0.5 * (e3 / sum - 1)).epsilon(1e-6));
  CHECK(d[3] == Approx(0.5 * (1.0 / 3 - 1)).epsilon(1e-6));

  // Keras (JAX backend): -sum t log(clip(softmax, 1e-7, 1 - 1e-7)); equal within 1e-6 away from 0 and 1.
  const auto p = testing::uniform<double>(40, -2, 2, 5);
  Tensor zz = testing::tensor({4, 10}, std::vector<float>(p.begin(), p.end()));
  Tensor tt({4, 10});
  for (int r = 0; r < 4; ++r) tt.host()[std::size_t(r * 10 + r)] = 1.0f;
  Tensor st({2});
  cpu().softmax_cross_entropy(zz, tt, nullptr, 1.0f, st);
  double keras = 0;
  for (int r = 0; r < 4; ++r) {
    double m = -1e9, sum2 = 0;
    for (int j = 0; j < 10; ++j) m = std::max(m, double(zz.host()[std::size_t(r * 10 + j)]));
    for (int j = 0; j < 10; ++j) sum2 += std::exp(double(zz.host()[std::size_t(r * 10 + j)]) - m);
    const double prob = std::exp(double(zz.host()[std::size_t(r * 10 + r)]) - m) / sum2;
    keras -= std::log(std::clamp(prob, 1e-7, 1 - 1e-7));
  }
  CHECK(std::abs(st.to_vector()[0] / 4 - keras / 4) < 1e-6);
}
