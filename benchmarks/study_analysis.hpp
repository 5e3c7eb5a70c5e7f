// study_analysis.hpp: the analysis behind every report of a dropout study (sweep_report.cpp writes it out):
// the finished runs grouped by condition (variant, rate, max-norm, in the settings' order), each group's
// summaries over seeds, the comparisons paired by seed with the baseline condition, and the conclusion
// sentence per max-norm, which claims no more than its paired test supports. Internal to dropnet-bench.
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

struct Paired {
  std::string variant;
  double rate = 0, max_norm = 0;
  stats::PairedTest acc, loss;
};

struct Analysis {
  std::vector<Group> groups;
  std::vector<RateSummary> rows;
  std::vector<Paired> paired;
  std::vector<std::string> conclusions;  // one per max-norm
};

// Groups, summaries, paired tests and conclusions of the study's finished runs (pointers into st.runs).
Analysis analyse(const Study& st);

// A p-value as the reports print it: "0.0123", "<0.0001", or "n/a".
std::string pval(double p);

}  // namespace dropnet::bench::analysis
