// test_study_stats.cpp: the study's statistics (benchmarks/study_stats.*) and the prediction metrics
// (src/metrics/calibration.*) against values SciPy and NumPy computed on fixed inputs
// (tests/reference/study_goldens/, made by generate_study_goldens.py), within 1e-6.
#include "support/catch.hpp"

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/json.hpp"
#include "metrics/calibration.hpp"
#include "study_stats.hpp"

namespace json = dropnet::io::json;
namespace st = dropnet::bench::stats;
namespace mt = dropnet::metrics;

namespace {

json::Value load(const char* name) {
  const std::string path = std::string(DROPNET_SOURCE_DIR) + "/tests/reference/study_goldens/" + name;
  return json::parse(dropnet::io::read_file(path, 64u << 20));
}
const json::Value& at(const json::Value& v, const char* key) {
  const json::Value* m = v.find(key);
  REQUIRE(m != nullptr);
  return *m;
}
double num(const json::Value& v) {
  if (v.kind == json::Value::Kind::Null) return std::nan("");
  REQUIRE(v.kind == json::Value::Kind::Number);
  return std::strtod(v.text.c_str(), nullptr);
}
double num(const json::Value& v, const char* key) { return num(at(v, key)); }
std::vector<double> nums(const json::Value& v) {
  std::vector<double> out;
  for (const json::Value& x : v.items) out.push_back(num(x));
  return out;
}
// Within 1e-6: absolute for values up to 1 in size, relative beyond.
void close(double got, double want, const std::string& what) {
  INFO(what << ": got " << got << ", want " << want);
  if (std::isnan(want)) {
    CHECK(std::isnan(got));
    return;
  }
  CHECK(std::abs(got - want) <= 1e-6 * std::max(1.0, std::abs(want)));
}

}  // namespace

TEST_CASE("regularized incomplete beta, t cdf and t quantiles match SciPy", "[study][stats]") {
  const json::Value g = load("stats.json");
  for (const json::Value& c : at(g, "incomplete_beta").items)
    close(st::regularized_incomplete_beta(num(c, "a"), num(c, "b"), num(c, "x")), num(c, "value"), "I_x(a, b)");
  for (const json::Value& c : at(g, "t_cdf").items)
    close(st::student_t_cdf(num(c, "t"), num(c, "df")), num(c, "value"), "t cdf");
  for (const json::Value& c : at(g, "t_quantile").items)
    close(st::student_t_quantile(num(c, "p"), num(c, "df")), num(c, "value"), "t quantile");
}

TEST_CASE("mean, sample std and 95% Student-t intervals match SciPy", "[study][stats]") {
  const json::Value g = load("stats.json");
  for (const json::Value& c : at(g, "describe").items) {
    const st::Summary s = st::describe(nums(at(c, "values")));
    close(s.mean, num(c, "mean"), "mean");
    close(s.std, num(c, "std"), "std");
    close(s.ci_low, num(c, "ci_low"), "ci low");
    close(s.ci_high, num(c, "ci_high"), "ci high");
  }
  const st::Summary one = st::describe({0.5});
  CHECK(one.mean == 0.5);
  CHECK(std::isnan(one.std));
  CHECK(std::isnan(one.ci_low));
}

TEST_CASE("paired t-test and Wilcoxon signed-rank match SciPy (exact and normal approximation)", "[study][stats]") {
  const json::Value g = load("stats.json");
  for (const json::Value& c : at(g, "paired").items) {
    const st::PairedTest p = st::paired_test(nums(at(c, "d")));
    close(p.difference.mean, num(c, "mean"), "mean difference");
    close(p.difference.ci_low, num(c, "ci_low"), "difference ci low");
    close(p.difference.ci_high, num(c, "ci_high"), "difference ci high");
    close(p.t, num(c, "t"), "t statistic");
    close(p.p_t, num(c, "p_t"), "t-test p");
    close(p.w_plus, num(c, "w_plus"), "W+");
    close(p.p_wilcoxon, num(c, "p_wilcoxon"), "Wilcoxon p");
    CHECK(p.wilcoxon_exact == at(c, "wilcoxon_exact").boolean);
    close(p.wilcoxon_smallest_p, num(c, "smallest_p"), "Wilcoxon's smallest possible p");
  }
  // Equal differences: no variance, so no t-test; all zero: no Wilcoxon.
  const st::PairedTest flat = st::paired_test({0.01, 0.01, 0.01});
  CHECK(std::isnan(flat.t));
  CHECK(std::isnan(flat.p_t));
  CHECK(std::isnan(st::wilcoxon({0.0, 0.0}).p));
}

TEST_CASE("Wilcoxon with tied accuracy differences stays exact and never goes below its floor", "[study][stats]") {
  // Five seeds whose accuracy differences, in images, tie: the exact conditional test (not the normal
  // approximation, which gives p = 0.0431 here, below what 5 pairs can give).
  const st::Wilcoxon w = st::wilcoxon({25, 25, 31, 12, 25});
  CHECK(w.exact);
  CHECK(w.w_plus == 15.0);
  CHECK(w.p == 0.0625);
  CHECK(w.smallest_p == 0.0625);
  // The floor follows n: 4 pairs cannot give less than 0.125, 3 pairs less than 0.25.
  CHECK(st::wilcoxon({3, 1, 2, 4}).p == 0.125);
  CHECK(st::wilcoxon({3, 1, 2, 4}).smallest_p == 0.125);
  CHECK(st::wilcoxon({1, 1, 1}).p == 0.25);
}

TEST_CASE("Holm's adjustment matches statsmodels and leaves NaN out of the family", "[study][stats]") {
  const json::Value g = load("stats.json");
  for (const json::Value& c : at(g, "holm").items) {
    const std::vector<double> got = st::holm(nums(at(c, "p")));
    const std::vector<double> want = nums(at(c, "adjusted"));
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) close(got[i], want[i], "Holm-adjusted p");
  }
  const std::vector<double> with_nan = st::holm({0.01, std::nan(""), 0.04});
  CHECK(with_nan[0] == 0.02);  // m = 2, not 3
  CHECK(std::isnan(with_nan[1]));
  CHECK(with_nan[2] == 0.04);
}

TEST_CASE("NLL, Brier, ECE, entropy, mutual information and AUROC match NumPy/SciPy", "[study][calibration]") {
  const json::Value g = load("calibration.json");
  for (const json::Value& c : at(g, "cases").items) {
    const std::string name = at(c, "name").text;
    const auto n = std::size_t(num(c, "n")), k = std::size_t(num(c, "k"));
    std::vector<std::int32_t> labels;
    for (double l : nums(at(c, "labels"))) labels.push_back(std::int32_t(l));
    mt::McAccumulator acc(n, k);
    std::vector<double> first;
    for (const json::Value& pass : at(c, "passes").items) {
      const std::vector<double> p = nums(pass);
      if (first.empty()) first = p;
      acc.add(std::span<const double>(p));
    }
    const std::vector<double> mean = acc.mean_probs(), mi = acc.mutual_information();
    const mt::PredictionMetrics m = mt::summarize(mean, labels, k, mi);
    close(m.accuracy, num(c, "accuracy"), name + " accuracy");
    close(m.nll, num(c, "nll"), name + " NLL");
    close(m.brier, num(c, "brier"), name + " Brier");
    close(m.ece, num(c, "ece"), name + " ECE");
    close(m.mean_entropy, num(c, "mean_entropy"), name + " entropy");
    close(m.mean_mutual_information, num(c, "mean_mutual_information"), name + " mutual information");
    close(m.auroc_entropy, num(c, "auroc_entropy"), name + " AUROC");
    std::int64_t counted = 0;
    for (const mt::ReliabilityBin& b : m.bins) counted += b.count;
    CHECK(counted == std::int64_t(n));
    const json::Value& single = at(c, "single_pass");
    const mt::PredictionMetrics s = mt::summarize(first, labels, k);
    close(s.accuracy, num(single, "accuracy"), name + " single-pass accuracy");
    close(s.nll, num(single, "nll"), name + " single-pass NLL");
    close(s.mean_entropy, num(single, "mean_entropy"), name + " single-pass entropy");
    CHECK(std::isnan(s.mean_mutual_information));
  }
  const json::Value& ties = at(g, "auroc_ties");
  std::vector<bool> positive;
  for (const json::Value& b : at(ties, "positive").items) positive.push_back(b.boolean);
  close(mt::auroc(nums(at(ties, "score")), positive), num(ties, "value"), "AUROC with ties");
}

TEST_CASE("ECE bins are [lo, hi) with 1.0 in the last bin, which tells it from Guo's and torchmetrics'",
          "[study][calibration]") {
  const json::Value g = at(load("calibration.json"), "ece_edges");
  const auto k = std::size_t(num(g, "k"));
  std::vector<std::int32_t> labels;
  for (double l : nums(at(g, "labels"))) labels.push_back(std::int32_t(l));
  const std::vector<double> probs = nums(at(g, "probs"));
  // Each record's bin, against NumPy's np.digitize on the inner edges.
  const std::vector<double> want_bins = nums(at(g, "bins"));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::vector<mt::ReliabilityBin> one =
        mt::reliability(std::span(probs).subspan(i * k, k), std::span(labels).subspan(i, 1), k);
    std::size_t bin = 0;
    while (one[bin].count == 0) ++bin;
    INFO("record " << i << " with confidence " << probs[i * k + i % k]);
    CHECK(double(bin) == want_bins[i]);
  }
  const double ece = mt::ece(probs, labels, k);
  close(ece, num(g, "ece"), "ECE on edges");
  // The goldens differ between conventions, so matching one is matching it alone.
  CHECK(std::abs(ece - num(g, "ece_guo")) > 1e-3);
  CHECK(std::abs(ece - num(g, "ece_torchmetrics_style")) > 1e-3);
}

TEST_CASE("calibration metrics reject inconsistent input with an exception", "[study][calibration]") {
  const std::vector<double> nan_row = {std::nan(""), 0.5, 0.3, 0.2};
  CHECK_THROWS_AS(mt::ece(nan_row, std::vector<std::int32_t>{0, 1}, 2), std::invalid_argument);
  CHECK_THROWS_AS(mt::ece(std::vector<double>{1.5, -0.5}, std::vector<std::int32_t>{0}, 2), std::invalid_argument);
  const std::vector<double> p = {0.2, 0.8, 0.6, 0.4};
  CHECK_THROWS_AS(mt::nll(p, std::vector<std::int32_t>{0}, 2), std::invalid_argument);
  CHECK_THROWS_AS(mt::brier(p, std::vector<std::int32_t>{0, 2}, 2), std::invalid_argument);
  CHECK(std::isnan(mt::auroc(std::vector<double>{0.1, 0.2}, {true, true})));
}
