// test_study_report.cpp: what the study's reports claim (benchmarks/study_analysis.cpp,
// benchmarks/sweep_report.cpp), on run records made here: the conclusion follows the Holm-adjusted paired
// t-test of test accuracy and nothing else, a metric whose paired difference is not significant gets no
// sentence, accuracy differences are compared as counts of test images (so that they tie exactly), and the
// Wilcoxon sentence is computed from the study's own pairs.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "support/catch.hpp"

#include "io/atomic_file.hpp"
#include "study_analysis.hpp"
#include "sweep.hpp"

using namespace dropnet::bench;
namespace an = dropnet::bench::analysis;

namespace {

// Rates 0 and 0.5 over `accuracy0.size()` seeds on a 10,000-image test set. Rate 0.5 gains `gain[i]`
// images of accuracy on seed i; its ECE moves by `ece_shift[i]` (noise around 0: not significant).
Study make_study(const std::vector<int>& correct0, const std::vector<int>& gain, const std::vector<double>& ece_shift) {
  Study st;
  st.config.rates = {0.0, 0.5};
  st.config.max_norms = {2.0};
  st.config.seeds = int(correct0.size());
  st.config.mc_samples = 0;
  st.provenance.test_samples = 10000;
  for (double rate : st.config.rates)
    for (std::size_t i = 0; i < correct0.size(); ++i) {
      RunRecord r;
      r.rate = rate, r.max_norm = 2.0, r.seed_index = int(i), r.seed = i + 1;
      r.id = run_id(rate, 2.0, r.seed);
      r.init_hash = "w" + std::to_string(i), r.order_hash = "o" + std::to_string(i);
      const int correct = correct0[i] + (rate > 0 ? gain[i] : 0);
      // As a float32 evaluation reports it: the count over 10,000, not exactly representable.
      r.test_accuracy = double(float(correct) / 10000.0f);
      r.test_loss = 1.0 - r.test_accuracy;
      r.best_test_accuracy = r.test_accuracy, r.best_test_loss = r.test_loss, r.best_epoch = 4;
      r.epochs = {EpochRecord{.epoch = 0, .loss = 1.0, .accuracy = 0.8, .val_loss = 1.1, .val_accuracy = 0.7}};
      r.standard = {.passes = 1, .accuracy = r.test_accuracy, .nll = r.test_loss, .brier = 0.5,
                    .ece = 0.05 + (rate > 0 ? ece_shift[i] : 0.0)};
      r.mc = r.standard;
      st.runs.push_back(r);
    }
  sort_runs(st.config, st.runs);
  return st;
}

}  // namespace

TEST_CASE("the report claims what its tests support and no more", "[study][report]") {
  // Five seeds; rate 0.5 gains 25, 25, 31, 12, 25 images: significant by the t-test, tied for Wilcoxon.
  const Study st = make_study({6700, 6710, 6690, 6720, 6705}, {25, 25, 31, 12, 25},
                              {0.004, -0.006, 0.002, -0.003, 0.001});
  const an::Analysis a = an::analyse(st);
  REQUIRE(a.paired.size() == 1);
  const an::MetricTest& acc = a.paired[0].get("test_accuracy");
  CHECK(acc.counts);
  CHECK(acc.test.wilcoxon_exact);            // ties among the differences in images, still exact
  CHECK(acc.test.p_wilcoxon == 0.0625);      // all five positive: the exact floor for 5 pairs
  CHECK(acc.test.difference.mean == Approx(0.00236).margin(1e-12));
  CHECK(acc.p_holm < 0.05);
  const an::MetricTest& ece = a.paired[0].get("ece");
  CHECK(ece.p_holm > 0.05);                  // the ECE difference is noise
  REQUIRE(a.conclusions.size() == 1);
  const std::string& c = a.conclusions[0];
  CHECK(c.find("Rate 0.5 has the highest mean test accuracy") == 0);
  CHECK(c.find("Holm-adjusted over 1 comparison with the baseline") != std::string::npos);
  CHECK(c.find("significant at α = 0.05 (Holm-adjusted)") != std::string::npos);
  CHECK(c.find("ECE") == std::string::npos);  // no sentence about a metric the test did not support
  CHECK(c.find("calibrat") == std::string::npos);

  const std::filesystem::path out = std::filesystem::temp_directory_path() / "dropnet-test-study-report";
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  write_reports(st, out);
  const std::string md = dropnet::io::read_file(out / "report.md", 1 << 24);
  std::filesystem::remove_all(out);
  // The Wilcoxon sentence follows the study's pairs, and the ECE row shows the test's verdict as numbers.
  CHECK(md.find("The exact test's smallest possible p is 0.0625 with 5 pairs") != std::string::npos);
  CHECK(md.find("with 5 pairs its smallest possible p is") == std::string::npos);  // the old fixed text
  CHECK(md.find("| 0.5 | ECE | 5 |") != std::string::npos);
  // Outside the tables and their notes, the only sentence is the conclusion.
  for (const char* claim : {"better calibrated", "best calibrated", "improves ECE", "lower ECE"})
    CHECK(md.find(claim) == std::string::npos);
}

TEST_CASE("a difference the Holm-adjusted test does not support is reported as not shown", "[study][report]") {
  // Four seeds whose gains are tied and balanced: no evidence either way.
  const Study st = make_study({6700, 6710, 6690, 6720}, {4, -4, 4, -4}, {0.0, 0.0, 0.0, 0.0});
  const an::Analysis a = an::analyse(st);
  const an::MetricTest& acc = a.paired[0].get("test_accuracy");
  CHECK(acc.test.p_wilcoxon == 1.0);
  CHECK(acc.test.wilcoxon_smallest_p == 0.125);
  CHECK(a.conclusions[0].find("these data do not show") != std::string::npos);
}
