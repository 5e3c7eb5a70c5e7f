// test_normal_math.cpp: the normal draws of kernels/normal_math.hpp: the accuracy of its own ln, sin and cos
// against double precision over dense grids, and the distribution of the draws (moments, tails, a binned
// chi-square) over 2^24 draws. Set DROPNET_NORMAL_REPORT=1 to print the measured errors and sigma distances.
#include "support/catch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "kernels/normal_math.hpp"
#include "support/cpu_backend.hpp"

using namespace dropnet;

namespace {

bool report() {
  const char* v = std::getenv("DROPNET_NORMAL_REPORT");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

// The spacing of floats at |d| (a float's ulp), for error measures in ulps.
double float_ulp(double d) {
  int e = 0;
  std::frexp(std::abs(d), &e);  // |d| = f 2^e, f in [0.5, 1)
  return std::ldexp(1.0, e - 24);
}

// ln((w + 1/2) 2^-32) in double, accurate also near 1 (log1p of the exact complement).
double log_uniform_exact(std::uint32_t w) {
  const double u = (double(w) + 0.5) * 0x1p-32;
  return u < 0.5 ? std::log(u) : std::log1p(-((4294967296.0 - double(w)) - 0.5) * 0x1p-32);
}

struct ErrorStats {
  double max_ulp = 0, max_abs = 0;
  double worst_at = 0;
  void add(double got, double want, double where) {
    const double abs_err = std::abs(got - want), ulps = abs_err / float_ulp(want);
    max_abs = std::max(max_abs, abs_err);
    if (ulps > max_ulp) {
      max_ulp = ulps;
      worst_at = where;
    }
  }
};

// 2^24 normals at (seed, step): GaussianNoise with stddev 1 on zeros gives y = fmaf(1, n, 0) = n exactly.
std::vector<float> draws(std::uint64_t seed, std::uint64_t step, std::int64_t n) {
  Tensor zeros({n}), y({n});
  zeros.fill(0.0f);
  testing::cpu_backend().noise_forward(
      zeros, y, {backend::NoiseCall::Kind::GaussianNoise, seed, step, 1.0f, {n}, {}});
  return y.to_vector();
}

// Standard normal CDF.
double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

}  // namespace

TEST_CASE("normal_math: ln of the mantissa is within 2 ulp of double over every float from sqrt(1/2) to sqrt(2)", "[normal]") {
  ErrorStats s;
  std::int64_t count = 0;
  const float lo = 0.70710677f, hi = 1.4142135f;  // first float >= sqrt(1/2), first float >= sqrt(2)
  for (float m = lo; m < hi; m = std::nextafter(m, 2.0f), ++count) {
    const double want = std::log(double(m));
    if (m == 1.0f) {
      REQUIRE(kernels::normal_log_mantissa(m) == 0.0f);
      continue;
    }
    s.add(kernels::normal_log_mantissa(m), want, m);
  }
  if (report()) std::printf("normal ln(m): %lld floats, max %.3f ulp (at m = %.9g), max abs %.3g\n",
                            (long long)count, s.max_ulp, s.worst_at, s.max_abs);
  CHECK(count > 8000000);  // 4.9M floats below 1, 3.5M above
  CHECK(s.max_ulp <= 2.0);
}

TEST_CASE("normal_math: ln u1 is within 2 ulp of double over 2^24 + 2^17 words, both ends dense", "[normal]") {
  ErrorStats s;
  auto check = [&](std::uint32_t w) { s.add(kernels::normal_log_uniform(w), log_uniform_exact(w), double(w)); };
  for (std::uint32_t w = 0; w < (1u << 16); ++w) check(w);                      // the tail: u1 -> 0
  for (std::uint32_t w = 0xFFFFFFFFu; w >= 0xFFFF0000u; --w) check(w);         // u1 -> 1: ln u1 -> -2^-33
  for (std::uint64_t w = 77; w < (std::uint64_t(1) << 32); w += 256) check(std::uint32_t(w));
  if (report()) std::printf("normal ln(u1): max %.3f ulp (at w = %.0f), max abs %.3g\n", s.max_ulp, s.worst_at, s.max_abs);
  CHECK(s.max_ulp <= 2.0);
  // The extremes: the largest |n| comes from w = 0, ln(2^-33); the smallest r from w = 2^32 - 1.
  CHECK(kernels::normal_log_uniform(0) == float(-33.0 * std::log(2.0)));
  CHECK(kernels::normal_log_uniform(0xFFFFFFFFu) < 0.0f);
}

TEST_CASE("normal_math: sin and cos of the quarter angle are within 2 ulp of double at every one of the 2^23 angles", "[normal]") {
  ErrorStats s, c;
  double max_abs = 0;
  for (std::uint32_t b = 0; b < (1u << 23); ++b) {
    const double x = (2.0 * b + 1.0) * 0x1p-24, angle = x * std::numbers::pi / 2.0;
    const kernels::SinCos got = kernels::normal_sincos_quarter(b);
    s.add(got.sin, std::sin(angle), x);
    c.add(got.cos, std::cos(angle), x);
    max_abs = std::max({max_abs, std::abs(got.sin - std::sin(angle)), std::abs(got.cos - std::cos(angle))});
  }
  if (report())
    std::printf("normal sin: max %.3f ulp (x = %.9g); cos: max %.3f ulp (x = %.9g); max abs %.3g\n", s.max_ulp,
                s.worst_at, c.max_ulp, c.worst_at, max_abs);
  CHECK(s.max_ulp <= 2.0);
  CHECK(c.max_ulp <= 2.0);
  CHECK(max_abs < 1.2e-7);
}

TEST_CASE("normal_math: the quadrants and the pair are Box-Muller's to float accuracy", "[normal]") {
  double worst_angle = 0, worst_normal = 0;
  for (std::uint64_t k = 0; k < (1u << 20); ++k) {
    const kernels::PhiloxBlock b = kernels::philox_block(3, 9, k);
    const std::uint32_t w0 = b.w[0], w1 = b.w[1];
    // theta = 2 pi u2 with u2 = (q + x) / 4, x = (2 b + 1) 2^-24: the words' own angle.
    const double u2 = (double(w1 >> 30) + (2.0 * double((w1 >> 7) & 0x7FFFFFu) + 1.0) * 0x1p-24) / 4.0;
    const double theta = 2.0 * std::numbers::pi * u2;
    const kernels::SinCos t = kernels::normal_sincos_word(w1);
    worst_angle = std::max({worst_angle, std::abs(t.cos - std::cos(theta)), std::abs(t.sin - std::sin(theta))});
    const double r = std::sqrt(-2.0 * log_uniform_exact(w0));
    const kernels::NormalPair p = kernels::normal_pair(w0, w1);
    const double tol = 4e-7 * std::max(1.0, r);
    worst_normal = std::max({worst_normal, std::abs(p.first - r * std::cos(theta)) / tol,
                             std::abs(p.second - r * std::sin(theta)) / tol});
  }
  if (report()) std::printf("normal sincos(theta) max abs %.3g; pair worst %.3f of its tolerance\n", worst_angle, worst_normal);
  CHECK(worst_angle < 1.2e-7);
  CHECK(worst_normal <= 1.0);
}

TEST_CASE("normal draws: element i is normal_at(seed, step, i), a pure function of (seed, step, i)", "[normal]") {
  const std::int64_t n = 4099;
  const auto a = draws(5, 7, n), again = draws(5, 7, n), other_step = draws(5, 8, n), other_seed = draws(6, 7, n);
  for (std::int64_t i = 0; i < n; ++i) REQUIRE(a[std::size_t(i)] == kernels::normal_at(5, 7, std::uint64_t(i)));
  CHECK(a == again);
  std::int64_t same_step = 0, same_seed = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    same_step += a[std::size_t(i)] == other_step[std::size_t(i)];
    same_seed += a[std::size_t(i)] == other_seed[std::size_t(i)];
  }
  CHECK(same_step == 0);
  CHECK(same_seed == 0);
  // A huge step and seed (the counter's and the key's high words) draw as well.
  const std::uint64_t big = std::numeric_limits<std::uint64_t>::max() - 1;
  CHECK(draws(big, big, 5)[4] == kernels::normal_at(big, big, 4));
}

TEST_CASE("normal draws: 2^24 draws have mean 0, variance 1, skewness 0, kurtosis 3, normal tails and bins, within 5 sigma", "[normal]") {
  const std::int64_t n = std::int64_t(1) << 24;
  const auto y = draws(20240615, 3, n);
  const double N = double(n);
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0, pair = 0;
  std::int64_t beyond[5] = {};
  // Bins of width 0.1 over [-5, 5] plus the two tails.
  constexpr int kBins = 100;
  std::vector<std::int64_t> bins(kBins + 2, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = y[std::size_t(i)];
    s1 += v;
    s2 += v * v;
    s3 += v * v * v;
    s4 += v * v * v * v;
    if (i % 2 == 0) pair += v * y[std::size_t(i + 1)];
    for (int k = 1; k <= 4; ++k) beyond[k] += std::abs(v) > k;
    const int bin = v < -5.0 ? 0 : v >= 5.0 ? kBins + 1 : 1 + std::min(kBins - 1, int(std::floor((v + 5.0) * 10.0)));
    ++bins[std::size_t(bin)];
  }
  const double mean = s1 / N, m2 = s2 / N, m3 = s3 / N, m4 = s4 / N;
  // Standard errors of the raw moments of N(0, 1): sqrt((E x^2k - (E x^k)^2) / N).
  const double z_mean = mean / std::sqrt(1.0 / N);
  const double z_var = (m2 - 1.0) / std::sqrt(2.0 / N);
  const double z_m3 = m3 / std::sqrt(15.0 / N);
  const double z_m4 = (m4 - 3.0) / std::sqrt(96.0 / N);
  const double z_pair = (pair / (N / 2)) / std::sqrt(1.0 / (N / 2));  // the two normals of one Box-Muller pair
  double z_tail[5] = {};
  for (int k = 1; k <= 4; ++k) {
    const double p = 2.0 * phi(-k);
    z_tail[k] = (double(beyond[k]) / N - p) / std::sqrt(p * (1.0 - p) / N);
  }
  double chi2 = 0;
  for (int b = 0; b < kBins + 2; ++b) {
    const double lo = b == 0 ? -INFINITY : -5.0 + 0.1 * (b - 1), hi = b == kBins + 1 ? INFINITY : -5.0 + 0.1 * b;
    const double expected = N * (phi(hi) - phi(lo));
    chi2 += (double(bins[std::size_t(b)]) - expected) * (double(bins[std::size_t(b)]) - expected) / expected;
  }
  const double dof = kBins + 1, z_chi2 = (chi2 - dof) / std::sqrt(2.0 * dof);
  if (report())
    std::printf("normal draws (2^24): sigma distances mean %.2f var %.2f m3 %.2f m4 %.2f pair-corr %.2f "
                "tails |n|>1..4 %.2f %.2f %.2f %.2f; chi2 %.1f on %g dof (%.2f sigma)\n",
                z_mean, z_var, z_m3, z_m4, z_pair, z_tail[1], z_tail[2], z_tail[3], z_tail[4], chi2, dof, z_chi2);
  CHECK(std::abs(z_mean) < 5.0);
  CHECK(std::abs(z_var) < 5.0);
  CHECK(std::abs(z_m3) < 5.0);
  CHECK(std::abs(z_m4) < 5.0);
  CHECK(std::abs(z_pair) < 5.0);
  for (int k = 1; k <= 4; ++k) CHECK(std::abs(z_tail[k]) < 5.0);
  CHECK(z_chi2 < 5.0);
}
