// test_noise_keras.cpp: GaussianDropout, GaussianNoise and AlphaDropout against Keras 3's own outputs
// (tests/reference/goldens_noise/, written by tests/reference/generate_noise_goldens.py: keras 3.15.1 on
// jax 0.10.2, CPU, float32). Keras draws other random numbers than dropnet, so the comparison is of
//   * inference outputs: bit for bit (both are the input);
//   * the constants Keras computes in float64 (stddev; alpha_p, a, b): dropnet's float constants within
//     one float rounding, and AlphaDropout's dropped value within 2 float ulp (Keras rounds a * alpha_p + b
//     twice, dropnet once);
//   * statistics of the training outputs over 2^22 elements each: dropnet's and Keras' means, variances and
//     dropped fractions within 5 combined standard errors of each other, and each within 5 of theory.
// Set DROPNET_PARITY_REPORT=1 to print one line per statistic with its sigma distances.
#include "support/catch.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/layers.hpp"
#include "kernels/noise_math.hpp"
#include "layers/run_context.hpp"
#include "support/cpu_backend.hpp"
#include "tests/support/npy.hpp"

using namespace dropnet;
using Kind = backend::NoiseCall::Kind;

namespace {


constexpr std::int64_t kN = std::int64_t(1) << 22;  // as the generator's N

npy::Array golden(const std::string& kase, const std::string& key) {
  return npy::load(std::string(DROPNET_SOURCE_DIR) + "/tests/reference/goldens_noise/" + kase + "__" + key + ".npy");
}

bool report() {
  const char* v = std::getenv("DROPNET_PARITY_REPORT");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

// The generator's stats fields: n, mean, var, m3, m4, frac_dropped, frac_groups_uniform.
struct Stats {
  double n, mean, var, m3, m4, frac_dropped, groups_uniform;
};
Stats keras_stats(const std::string& kase) {
  const auto v = golden(kase, "stats").values;
  REQUIRE(v.size() == 7);
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
}

Stats stats_of(const std::vector<float>& y, float dropped_value) {
  double s = 0;
  std::int64_t dropped = 0;
  for (float v : y) s += v;
  const double n = double(y.size()), mean = s / n;
  double m2 = 0, m4 = 0;
  for (float v : y) {
    const double d = v - mean;
    m2 += d * d;
    m4 += d * d * d * d;
    dropped += v == dropped_value;
  }
  return {n, mean, m2 / n, 0.0, m4 / n, double(dropped) / n, 0.0};
}

// |a - b| / sqrt(se_a^2 + se_b^2), and each against theory; prints when asked.
void compare(const std::string& kase, const char* what, double dropnet, double keras, double theory, double se) {
  const double z_pair = (dropnet - keras) / (se * std::sqrt(2.0));
  const double z_dropnet = (dropnet - theory) / se, z_keras = (keras - theory) / se;
  if (report())
    std::printf("keras-noise | %s | %s | dropnet %.6g keras %.6g theory %.6g | sigma: dropnet-keras %.2f, "
                "dropnet-theory %.2f, keras-theory %.2f\n", kase.c_str(), what, dropnet, keras, theory, z_pair,
                z_dropnet, z_keras);
  INFO(kase << " " << what << ": dropnet " << dropnet << " keras " << keras << " theory " << theory << " se " << se);
  CHECK(std::abs(z_pair) < 5.0);
  CHECK(std::abs(z_dropnet) < 5.0);
  CHECK(std::abs(z_keras) < 5.0);
}

std::vector<float> run_op(Kind kind, const Tensor& x, std::uint64_t seed, float rate, Shape mask = {}) {
  Tensor y(x.shape());
  testing::cpu_backend().noise_forward(x, y, {kind, seed, 0, rate, x.shape(), std::move(mask)});
  return y.to_vector();
}

// The layer at inference on the golden input gives the golden output (the input), bit for bit.
void check_inference(Layer& layer, const std::string& kase) {
  const npy::Array x = golden(kase, "x"), want = golden(kase, "y_inference");
  const Shape shape(x.shape.begin(), x.shape.end());
  layer.build(Shape(shape.begin() + 1, shape.end()), 0);
  const Tensor xt = Tensor::from_vector(shape, x.as_float());
  Tensor y(shape);
  RunContext infer{testing::cpu_backend(), false};
  layer.forward(xt, y, infer);
  CHECK(y.to_vector() == want.as_float());
}

bool within_float_rounding(double got, double want) { return std::abs(got - want) <= 0x1p-24 * std::abs(want) * 1.0001; }

}  // namespace

TEST_CASE("Keras noise goldens: GaussianDropout's stddev, inference, and the statistics of x * noise on x = 1", "[keras][noise]") {
  for (const double rate : {0.1, 0.3, 0.5}) {
    char kase[64];
    std::snprintf(kase, sizeof kase, "gaussian_dropout_r%.1f", rate);
    GaussianDropout layer(rate);
    check_inference(layer, kase);
    const double stddev = golden(kase, "constants").values.at(0);
    CHECK(within_float_rounding(kernels::gaussian_dropout_stddev(float(rate)), stddev));
    const Stats k = keras_stats(kase);
    REQUIRE(k.n == double(kN));
    Tensor ones({kN});
    ones.fill(1.0f);
    const Stats d = stats_of(run_op(Kind::GaussianDropout, ones, 101, float(rate)), NAN);
    const double var = stddev * stddev;
    compare(kase, "mean", d.mean, k.mean, 1.0, std::sqrt(var / kN));
    compare(kase, "variance", d.var, k.var, var, std::sqrt(2.0 * var * var / kN));
  }
}

TEST_CASE("Keras noise goldens: GaussianNoise inference and the statistics of the noise on x = 0", "[keras][noise]") {
  for (const double stddev : {0.1, 0.5, 1.0}) {
    char kase[64];
    std::snprintf(kase, sizeof kase, "gaussian_noise_s%.1f", stddev);
    GaussianNoise layer(stddev);
    check_inference(layer, kase);
    const Stats k = keras_stats(kase);
    Tensor zeros({kN});
    zeros.fill(0.0f);
    const Stats d = stats_of(run_op(Kind::GaussianNoise, zeros, 202, float(stddev)), NAN);
    const double var = stddev * stddev;
    compare(kase, "mean", d.mean, k.mean, 0.0, std::sqrt(var / kN));
    compare(kase, "variance", d.var, k.var, var, std::sqrt(2.0 * var * var / kN));
  }
}

TEST_CASE("Keras noise goldens: AlphaDropout's constants, inference, and mean 0, variance 1, dropped fraction", "[keras][noise]") {
  struct Case {
    const char* name;
    double rate;
    Shape shape, mask;
    std::int64_t group;  // elements sharing one mask draw
  };
  const Case cases[] = {{"alpha_dropout_r0.1", 0.1, {4096, 1024}, {}, 1},
                        {"alpha_dropout_r0.3", 0.3, {4096, 1024}, {}, 1},
                        {"alpha_dropout_r0.2_noise_shape", 0.2, {16384, 16, 16}, {16384, 1, 16}, 16}};
  // dropnet's input: its own standard normals (the theory assumes only x ~ N(0, 1)).
  Tensor zeros({kN});
  zeros.fill(0.0f);
  const std::vector<float> normals = run_op(Kind::GaussianNoise, zeros, 77, 1.0f);
  for (const Case& c : cases) {
    const std::string kase = c.name;
    DropoutOptions options;
    if (c.group > 1) options.noise_shape = {std::nullopt, 1, std::nullopt};
    AlphaDropout layer(c.rate, options);
    check_inference(layer, kase);

    const auto kc = golden(kase, "constants").values;  // alpha_p, a, b, a alpha_p + b, Keras' float32 dropped value
    const kernels::NoiseParams p = kernels::noise_params(kernels::NoiseKind::AlphaDropout, float(c.rate));
    CHECK(within_float_rounding(p.alpha_p, kc[0]));
    CHECK(within_float_rounding(p.a, kc[1]));
    CHECK(within_float_rounding(p.b, kc[2]));
    const float dropped_value = fmaf(p.a, p.alpha_p, p.b);
    CHECK(std::abs(double(dropped_value) - kc[3]) <= 2.0 * 0x1p-24 * std::abs(kc[3]));
    CHECK(std::abs(double(dropped_value) - kc[4]) <= 2.0 * 0x1p-24 * std::abs(kc[4]));
    if (report())
      std::printf("keras-noise | %s | constants | a %.9g (keras %.17g) b %.9g (keras %.17g) dropped %.9g (keras "
                  "float32 %.9g)\n", kase.c_str(), p.a, kc[1], p.b, kc[2], dropped_value, kc[4]);

    const Tensor x = Tensor::from_vector(c.shape, normals);
    const std::vector<float> y = run_op(Kind::AlphaDropout, x, 303, float(c.rate), c.mask);
    const Stats k = keras_stats(kase);
    const Stats d = stats_of(y, dropped_value);
    // Theory for x ~ N(0, 1): E y = 0, Var y = 1; the standard errors account for the G = c.group elements
    // that share one draw (their covariances: a^2 r (1 - r) alpha_p^2 for y, cov_sq for y^2).
    const double r = c.rate, a = kc[1], b = kc[2], dv = kc[3], G = double(c.group);
    const double mu4 = (1 - r) * (3 * a * a * a * a + 6 * a * a * b * b + b * b * b * b) + r * dv * dv * dv * dv;
    const double cov_lin = a * a * r * (1 - r) * kc[0] * kc[0];
    const double cov_sq = (1 - r) * (a * a + b * b) * (a * a + b * b) + r * dv * dv * dv * dv - 1.0;
    compare(kase, "mean", d.mean, k.mean, 0.0, std::sqrt((1.0 + (G - 1) * cov_lin) / kN));
    compare(kase, "variance", d.var, k.var, 1.0, std::sqrt((mu4 - 1.0 + (G - 1) * cov_sq) / kN));
    compare(kase, "dropped fraction", d.frac_dropped, k.frac_dropped, r, std::sqrt(r * (1 - r) / (kN / G)));
    if (c.group > 1) {
      // Keras: every (n, :, c) group of 16 is dropped or kept as one; dropnet likewise.
      CHECK(k.groups_uniform == 1.0);
      std::int64_t uniform = 0, groups = 0;
      for (std::int64_t n = 0; n < c.shape[0]; ++n)
        for (std::int64_t ch = 0; ch < c.shape[2]; ++ch, ++groups) {
          const float first = y[std::size_t(n * 256 + ch)];
          bool same = true;
          for (std::int64_t h = 1; h < 16; ++h) same = same && ((y[std::size_t(n * 256 + h * 16 + ch)] == dropped_value) == (first == dropped_value));
          uniform += same;
        }
      CHECK(uniform == groups);
    }
  }
}
