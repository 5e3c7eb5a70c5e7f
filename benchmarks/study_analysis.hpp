// study_analysis.hpp: the analysis behind every report of a dropout study (sweep_report.cpp writes it out):
// the finished runs grouped by condition (variant, rate, max-norm, in the settings' order), each group's
// summaries over seeds, every reported metric compared paired by seed with the baseline condition, Monte
// Carlo dropout compared with weight scaling within each condition, Holm's adjustment within each metric,
// and the conclusion sentence per max-norm, which claims no more than its Holm-adjusted paired t-test
// supports. Internal to dropnet-bench.
#pragma once

#include <string>
#include <vector>

#include "study_stats.hpp"
#include "sweep.hpp"

namespace dropnet::bench::analysis {

struct Group {
  std::string variant;                   // empty without a variants axis
  double rate = 0, max_norm = 0;
  std::vector<const RunRecord*> ok, failed;
};

struct RateSummary {
  const Group* group;
  stats::Summary test_acc, test_loss, best_acc, best_loss, best_epoch, train_acc, val_acc, gap;
  stats::Summary std_nll, std_brier, std_ece, std_entropy, std_auroc;
  stats::Summary mc_acc, mc_nll, mc_brier, mc_ece, mc_entropy, mc_mi, mc_auroc;
};

// One metric compared paired by seed: the test of the differences and Holm's adjustment of its t-test p
// over the metric's family (the same metric's comparisons within one max-norm).
struct MetricTest {
  const char* key;                       // sweep.json: "test_accuracy"
  const char* name;                      // tables: "test acc"
  int decimals;
  bool counts;                           // an accuracy: compared as counts of correct test images (exact
                                         // ties), the difference shown as a fraction of the test set
  stats::PairedTest test;
  double p_holm;                         // NaN where the t-test is undefined
};

struct Paired {
  std::string variant;
  double rate = 0, max_norm = 0;
  std::vector<MetricTest> metrics;       // in the order of the tables
  const MetricTest& get(const char* key) const;  // throws std::out_of_range for an unknown key
};

struct Analysis {
  std::vector<Group> groups;
  std::vector<RateSummary> rows;
  std::vector<Paired> paired;            // each condition minus the baseline, on the same seed
  std::vector<Paired> mc_vs_standard;    // within each condition with dropout: Monte Carlo minus weight scaling
  std::vector<std::string> conclusions;  // one per max-norm
};

// Groups, summaries, paired tests and conclusions of the study's finished runs (pointers into st.runs).
Analysis analyse(const Study& st);

// A p-value as the reports print it: "0.0123", "<0.0001", or "n/a".
std::string pval(double p);

}  // namespace dropnet::bench::analysis
