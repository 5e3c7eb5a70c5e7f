// study_stats.cpp: see study_stats.hpp for what each function computes.
#include "study_stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace dropnet::bench::stats {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The continued fraction of I_x(a, b) (modified Lentz), valid for x < (a + 1) / (a + b + 2).
double beta_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300, kEps = 1e-16;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::abs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + num * d;
    if (std::abs(d) < kTiny) d = kTiny;
    c = 1.0 + num / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + num * d;
    if (std::abs(d) < kTiny) d = kTiny;
    c = 1.0 + num / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double step = d * c;
    h *= step;
    if (std::abs(step - 1.0) < kEps) return h;
  }
  return h;  // converged as far as double allows
}

}  // namespace

double regularized_incomplete_beta(double a, double b, double x) {
  if (!(a > 0 && b > 0) || !(x >= 0 && x <= 1)) return kNaN;
  if (x == 0 || x == 1) return x;
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) +
                           b * std::log1p(-x);
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(log_front) * beta_fraction(a, b, x) / a;
  return 1.0 - std::exp(log_front) * beta_fraction(b, a, 1.0 - x) / b;
}

double student_t_cdf(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return kNaN;
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  const double tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t));  // P(T > |t|)
  return t > 0 ? 1.0 - tail : tail;
}

double student_t_quantile(double p, double df) {
  if (!(p > 0 && p < 1) || !(df > 0)) return kNaN;
  if (p == 0.5) return 0.0;
  // The cdf is increasing: bracket, then bisect to the resolution of double.
  double lo = -1.0, hi = 1.0;
  while (student_t_cdf(lo, df) > p) lo *= 2.0;
  while (student_t_cdf(hi, df) < p) hi *= 2.0;
  for (int i = 0; i < 200 && hi - lo > 1e-15 * std::max(1.0, std::abs(lo)); ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, df) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

Summary describe(const std::vector<double>& values, double alpha) {
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  Summary s{.n = v.size(), .mean = kNaN, .std = kNaN, .ci_low = kNaN, .ci_high = kNaN};
  if (v.empty()) return s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  if (v.size() < 2) return s;
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(ss / double(v.size() - 1));
  const double half = student_t_quantile(1.0 - alpha / 2.0, double(v.size() - 1)) * s.std / std::sqrt(double(v.size()));
  s.ci_low = s.mean - half;
  s.ci_high = s.mean + half;
  return s;
}

Wilcoxon wilcoxon(const std::vector<double>& d) {
  std::vector<double> nz;
  for (double x : d)
    if (std::isfinite(x) && x != 0) nz.push_back(x);
  const std::size_t n = nz.size();
  Wilcoxon w{.w_plus = kNaN, .p = kNaN, .exact = false, .n_used = n, .smallest_p = kNaN};
  if (n == 0) return w;
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return std::abs(nz[a]) < std::abs(nz[b]); });
  // Mid-ranks, kept doubled so that they are integers: 2 r = i + 1 + j for the tie group [i, j).
  std::vector<std::size_t> rank2(n);
  double tie_term = 0;  // sum over tie groups of t^3 - t
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && std::abs(nz[order[j]]) == std::abs(nz[order[i]])) ++j;
    const double t = double(j - i);
    tie_term += t * t * t - t;
    for (std::size_t m = i; m < j; ++m) rank2[order[m]] = i + 1 + j;
    i = j;
  }
  std::size_t w2 = 0;  // 2 W+
  for (std::size_t i = 0; i < n; ++i)
    if (nz[i] > 0) w2 += rank2[i];
  const std::size_t total2 = n * (n + 1);  // 2 (W+ + W-)
  w.w_plus = double(w2) / 2.0;
  if (n <= 25) {
    // counts[s] = number of sign patterns whose positive doubled ranks sum to s: the exact null distribution
    // of 2 W+ given these ranks (with ties, the conditional distribution).
    std::vector<double> counts(total2 + 1, 0.0);
    counts[0] = 1;
    for (std::size_t r : rank2)
      for (std::size_t s = total2; s >= r; --s) counts[s] += counts[s - r];
    const double all = std::ldexp(1.0, int(n));
    double below = 0, above = 0;  // P(W <= w+), P(W >= w+), as counts
    for (std::size_t s = 0; s <= total2; ++s) {
      if (s <= w2) below += counts[s];
      if (s >= w2) above += counts[s];
    }
    w.p = std::min(1.0, 2.0 * std::min(below, above) / all);
    w.exact = true;
    w.smallest_p = std::min(1.0, 2.0 / all);
    return w;
  }
  const double w_plus = w.w_plus, total = double(total2) / 2.0;
  const double stat = std::min(w_plus, total - w_plus);
  const double mean = double(n) * double(n + 1) / 4.0;
  const double var = double(n) * double(n + 1) * double(2 * n + 1) / 24.0 - tie_term / 48.0;
  if (!(var > 0)) return w;
  const double z = (stat - mean) / std::sqrt(var);
  w.p = std::erfc(std::abs(z) / std::sqrt(2.0));
  return w;
}

std::vector<double> holm(const std::vector<double>& p) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < p.size(); ++i)
    if (std::isfinite(p[i])) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] < p[b]; });
  std::vector<double> out(p.size(), kNaN);
  const std::size_t m = order.size();
  double running = 0;
  for (std::size_t j = 0; j < m; ++j) {
    running = std::max(running, std::min(1.0, double(m - j) * p[order[j]]));
    out[order[j]] = running;
  }
  return out;
}

PairedTest paired_test(const std::vector<double>& d, double alpha) {
  PairedTest r{.difference = describe(d, alpha), .t = kNaN, .p_t = kNaN, .w_plus = kNaN, .p_wilcoxon = kNaN,
               .wilcoxon_smallest_p = kNaN};
  const Summary& s = r.difference;
  // Differences that do not vary (up to rounding: accuracies are multiples of 1/N) leave t undefined.
  if (s.n >= 2 && s.std > 1e-12 * std::max(1.0, std::abs(s.mean))) {
    const double df = double(s.n - 1);
    r.t = s.mean / (s.std / std::sqrt(double(s.n)));
    r.p_t = regularized_incomplete_beta(df / 2.0, 0.5, df / (df + r.t * r.t));
  }
  const Wilcoxon w = wilcoxon(d);
  r.w_plus = w.w_plus;
  r.p_wilcoxon = w.p;
  r.wilcoxon_exact = w.exact;
  r.wilcoxon_smallest_p = w.smallest_p;
  r.wilcoxon_pairs = w.n_used;
  return r;
}

}  // namespace dropnet::bench::stats
