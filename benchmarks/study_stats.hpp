// study_stats.hpp: the statistics of a dropout study: Student-t confidence intervals, the paired t-test
// and the Wilcoxon signed-rank test. Standard library only; checked against SciPy goldens
// (tests/reference/study_goldens/).
//
// Contract:
//   regularized_incomplete_beta(a, b, x) = I_x(a, b), by the continued fraction (Lentz), ~1e-14 relative
//   student_t_cdf(t, df): P(T <= t) for Student's t with df > 0 degrees of freedom
//   student_t_quantile(p, df): the t with cdf(t) = p, by bisection on the cdf to ~1e-13
//   describe(values): n, mean, sample std (ddof 1) and the two-sided (1 - alpha) t interval
//       mean +- t_{1-alpha/2, n-1} std / sqrt(n); std and the interval are NaN for n < 2
//   paired_t_test(d): the one-sample t-test of the per-seed differences d against 0 (scipy.stats.ttest_rel /
//       ttest_1samp): t = mean / (std / sqrt(n)), df = n - 1, two-sided p = I_{df/(df+t^2)}(df/2, 1/2);
//       t and p NaN for n < 2 or when every difference is equal (std 0)
//   wilcoxon(d): the signed-rank test, zero differences dropped ("wilcox"), |d| mid-ranked (ties: equal |d|,
//       compared exactly, so give accuracy differences as integer counts of records, not as fractions);
//       W+ = sum of ranks of positive d; two-sided p:
//         exact for n <= 25 (after dropping zeros), with or without ties: 2 min(P(W <= W+), P(W >= W+)),
//           capped at 1, from the exact null distribution of W+ given the ranks (every one of the 2^n sign
//           patterns of these mid-ranks equally likely: the sign-flip permutation test of W+);
//           its smallest possible value is 2 / 2^n (smallest_p)
//         otherwise the normal approximation without continuity correction:
//           z = (min(W+, W-) - n(n+1)/4) / sqrt(n(n+1)(2n+1)/24 - sum(t^3 - t)/48), p = erfc(|z| / sqrt 2)
//       (without ties, SciPy's wilcoxon(method="exact") and method="approx", correction=False; with ties,
//       scipy.stats.permutation_test of W+); NaN when no d != 0.
//   holm(p): Holm's step-down adjustment of a family of p-values: sorted ascending, the i-th (from 0) of the m
//       finite ones becomes max over j <= i of min(1, (m - j) p_(j)); NaN entries stay NaN and do not count
//       in m (statsmodels' multipletests(method="holm")).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace dropnet::bench::stats {

double regularized_incomplete_beta(double a, double b, double x);
double student_t_cdf(double t, double df);
double student_t_quantile(double p, double df);

struct Summary {
  std::size_t n = 0;
  double mean, std, ci_low, ci_high;  // NaN where undefined (see above)
};
// Non-finite values are ignored (a failed run has no accuracy).
Summary describe(const std::vector<double>& values, double alpha = 0.05);

struct PairedTest {
  Summary difference;                 // of d (mean, std, t interval)
  double t, p_t;                      // paired t-test
  double w_plus, p_wilcoxon;          // Wilcoxon signed-rank
  bool wilcoxon_exact = false;        // which p-value method ran
  double wilcoxon_smallest_p;         // exact: the smallest p its n allows (2 / 2^n); NaN otherwise
  std::size_t wilcoxon_pairs = 0;     // the n it ranked: the differences left after dropping zeros
};
PairedTest paired_test(const std::vector<double>& d, double alpha = 0.05);

struct Wilcoxon {
  double w_plus, p;
  bool exact;
  std::size_t n_used;                 // differences left after dropping zeros
  double smallest_p;                  // exact: 2 / 2^n_used capped at 1; NaN otherwise
};
Wilcoxon wilcoxon(const std::vector<double>& d);

std::vector<double> holm(const std::vector<double>& p);

}  // namespace dropnet::bench::stats
