// study_analysis.cpp: the analysis of a dropout study (study_analysis.hpp).
#include "study_analysis.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

namespace dropnet::bench::analysis {
namespace {

using stats::Summary;

Summary over(const Group& g, double (*f)(const RunRecord&), double alpha) {
  std::vector<double> v;
  for (const RunRecord* r : g.ok) v.push_back(f(*r));
  return stats::describe(v, alpha);
}

// A condition in a sentence: "rate 0.5", or "spatial at rate 0.5" with variants.
std::string in_words(const std::string& variant, double rate) {
  return variant.empty() ? fmt::format("rate {}", rate) : fmt::format("{} at rate {}", variant, rate);
}

// The epoch of lowest val_loss counted from 1, as the tables show it (NaN without validation).
double best_epoch_from_1(const RunRecord& r) { return r.best_epoch < 0 ? kNaN : double(r.best_epoch + 1); }

// A metric as the paired comparisons read it from a run.
struct MetricDef {
  const char* key;
  const char* name;
  int decimals;
  bool counts;
  double (*of)(const RunRecord&);
};

// Every metric the tables report per condition, compared with the baseline.
const std::vector<MetricDef>& baseline_metrics() {
  static const std::vector<MetricDef> defs = {
      {"test_accuracy", "test acc", 4, true, [](const RunRecord& r) { return r.test_accuracy; }},
      {"test_loss", "test loss", 4, false, [](const RunRecord& r) { return r.test_loss; }},
      {"best_val_epoch_test_accuracy", "test acc at best val epoch", 4, true,
       [](const RunRecord& r) { return r.best_test_accuracy; }},
      {"best_epoch", "best epoch", 1, false, best_epoch_from_1},
      {"final_gap", "gap", 4, false, [](const RunRecord& r) { return r.final_gap(); }},
      {"nll", "NLL", 4, false, [](const RunRecord& r) { return r.standard.nll; }},
      {"brier", "Brier", 4, false, [](const RunRecord& r) { return r.standard.brier; }},
      {"ece", "ECE", 4, false, [](const RunRecord& r) { return r.standard.ece; }},
  };
  return defs;
}

// Monte Carlo dropout against weight scaling within a run: one field of both prediction records.
struct McDef {
  const char* key;
  const char* name;
  int decimals;
  bool counts;
  double PredictionRecord::*field;
};
const std::vector<McDef>& mc_metrics() {
  static const std::vector<McDef> defs = {
      {"accuracy", "acc", 4, true, &PredictionRecord::accuracy},
      {"nll", "NLL", 4, false, &PredictionRecord::nll},
      {"brier", "Brier", 4, false, &PredictionRecord::brier},
      {"ece", "ECE", 4, false, &PredictionRecord::ece},
  };
  return defs;
}

// The paired test of differences a - b. With `counts`, a and b are accuracies over `records` test images:
// the differences are taken in images (integers, so that ties are exact) and the summary is scaled back.
stats::PairedTest paired_of(const std::vector<double>& a, const std::vector<double>& b, bool counts,
                            std::int64_t records, double alpha) {
  const bool in_images = counts && records > 0;
  std::vector<double> d;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) continue;
    d.push_back(in_images ? double(std::llround(a[i] * double(records)) - std::llround(b[i] * double(records)))
                          : a[i] - b[i]);
  }
  stats::PairedTest t = stats::paired_test(d, alpha);
  if (in_images)
    for (double* v : {&t.difference.mean, &t.difference.std, &t.difference.ci_low, &t.difference.ci_high})
      *v /= double(records);
  return t;
}

// Holm within each metric over the comparisons of one max-norm.
void adjust(std::vector<Paired>& family) {
  if (family.empty()) return;
  for (std::size_t m = 0; m < family.front().metrics.size(); ++m) {
    std::vector<double> p;
    for (const Paired& x : family) p.push_back(x.metrics[m].test.p_t);
    const std::vector<double> h = stats::holm(p);
    for (std::size_t i = 0; i < family.size(); ++i) family[i].metrics[m].p_holm = h[i];
  }
}

}  // namespace

const MetricTest& Paired::get(const char* key) const {
  for (const MetricTest& m : metrics)
    if (std::string_view(m.key) == key) return m;
  throw std::out_of_range(fmt::format("no paired metric {}", key));
}

Analysis analyse(const Study& st) {
  const SweepConfig& c = st.config;
  const double a = c.alpha;
  Analysis an;
  for (double mn : c.max_norms)
    for (const std::string& v : variant_axis(c))
      for (double rate : c.rates) {
        if (shares_rate0(c, v, rate)) continue;  // the owner's rate 0 stands for it
        Group g{.variant = v, .rate = rate, .max_norm = mn};
        for (const RunRecord& r : st.runs)
          if (r.variant == v && r.rate == rate && r.max_norm == mn) (r.ok ? g.ok : g.failed).push_back(&r);
        an.groups.push_back(std::move(g));
      }
  for (const Group& g : an.groups) {
    RateSummary s{.group = &g};
    s.test_acc = over(g, [](const RunRecord& r) { return r.test_accuracy; }, a);
    s.test_loss = over(g, [](const RunRecord& r) { return r.test_loss; }, a);
    s.best_acc = over(g, [](const RunRecord& r) { return r.best_test_accuracy; }, a);
    s.best_loss = over(g, [](const RunRecord& r) { return r.best_test_loss; }, a);
    s.best_epoch = over(g, best_epoch_from_1, a);
    s.train_acc = over(g, [](const RunRecord& r) { return r.epochs.empty() ? kNaN : r.epochs.back().accuracy; }, a);
    s.val_acc = over(g, [](const RunRecord& r) { return r.epochs.empty() ? kNaN : r.epochs.back().val_accuracy; }, a);
    s.gap = over(g, [](const RunRecord& r) { return r.final_gap(); }, a);
    s.std_nll = over(g, [](const RunRecord& r) { return r.standard.nll; }, a);
    s.std_brier = over(g, [](const RunRecord& r) { return r.standard.brier; }, a);
    s.std_ece = over(g, [](const RunRecord& r) { return r.standard.ece; }, a);
    s.std_entropy = over(g, [](const RunRecord& r) { return r.standard.entropy; }, a);
    s.std_auroc = over(g, [](const RunRecord& r) { return r.standard.auroc_entropy; }, a);
    s.mc_acc = over(g, [](const RunRecord& r) { return r.mc.accuracy; }, a);
    s.mc_nll = over(g, [](const RunRecord& r) { return r.mc.nll; }, a);
    s.mc_brier = over(g, [](const RunRecord& r) { return r.mc.brier; }, a);
    s.mc_ece = over(g, [](const RunRecord& r) { return r.mc.ece; }, a);
    s.mc_entropy = over(g, [](const RunRecord& r) { return r.mc.entropy; }, a);
    s.mc_mi = over(g, [](const RunRecord& r) { return r.mc.mutual_information; }, a);
    s.mc_auroc = over(g, [](const RunRecord& r) { return r.mc.auroc_entropy; }, a);
    an.rows.push_back(s);
  }
  // Paired by seed against the baseline rate (and variant), and MC against weight scaling within each
  // condition, within each max-norm; Holm within each metric of each max-norm.
  const std::int64_t records = st.provenance.test_samples;
  auto is_baseline = [&](const Group& g) { return g.rate == c.baseline && g.variant == c.baseline_variant; };
  for (double mn : c.max_norms) {
    const Group* base = nullptr;
    for (const Group& g : an.groups)
      if (g.max_norm == mn && is_baseline(g)) base = &g;
    std::vector<Paired> family, mc_family;
    for (const Group& g : an.groups) {
      if (g.max_norm != mn) continue;
      if (!is_baseline(g) && base != nullptr) {
        Paired p{.variant = g.variant, .rate = g.rate, .max_norm = mn};
        for (const MetricDef& m : baseline_metrics()) {
          std::vector<double> x, y;
          for (const RunRecord* r : g.ok)
            for (const RunRecord* b : base->ok)
              if (b->seed == r->seed) x.push_back(m.of(*r)), y.push_back(m.of(*b));
          p.metrics.push_back({m.key, m.name, m.decimals, m.counts, paired_of(x, y, m.counts, records, a), kNaN});
        }
        family.push_back(std::move(p));
      }
      // MC dropout differs from weight scaling only where its passes were stochastic.
      const bool stochastic = std::any_of(g.ok.begin(), g.ok.end(), [](const RunRecord* r) { return r->mc.passes > 1; });
      if (c.mc_samples > 0 && stochastic) {
        Paired p{.variant = g.variant, .rate = g.rate, .max_norm = mn};
        for (const McDef& m : mc_metrics()) {
          std::vector<double> x, y;
          for (const RunRecord* r : g.ok) x.push_back(r->mc.*m.field), y.push_back(r->standard.*m.field);
          p.metrics.push_back({m.key, m.name, m.decimals, m.counts, paired_of(x, y, m.counts, records, a), kNaN});
        }
        mc_family.push_back(std::move(p));
      }
    }
    adjust(family);
    adjust(mc_family);
    for (Paired& p : family) an.paired.push_back(std::move(p));
    for (Paired& p : mc_family) an.mc_vs_standard.push_back(std::move(p));
  }
  // The conclusion: which rate (condition) has the highest mean test accuracy, and whether the data support it.
  const bool variants = !c.variants.empty();
  const std::string baseline_words = in_words(c.baseline_variant, c.baseline);
  for (double mn : c.max_norms) {
    const RateSummary* best = nullptr;
    const RateSummary* runner_up = nullptr;
    for (const RateSummary& s : an.rows) {
      if (s.group->max_norm != mn || !std::isfinite(s.test_acc.mean)) continue;
      if (best == nullptr || s.test_acc.mean > best->test_acc.mean) runner_up = best, best = &s;
      else if (runner_up == nullptr || s.test_acc.mean > runner_up->test_acc.mean) runner_up = &s;
    }
    const std::string where = c.vary_max_norm ? fmt::format("With max-norm {}, r", max_norm_text(mn)) : "R";
    if (best == nullptr) {
      an.conclusions.push_back(where.substr(0, where.size() - 1) + (c.vary_max_norm ? "n" : "N") +
                               "o run finished, so there is nothing to compare.");
      continue;
    }
    const std::string best_words = in_words(best->group->variant, best->group->rate);
    const std::string subject =
        variants ? fmt::format("{}ondition {}", where.substr(0, where.size() - 1) + (c.vary_max_norm ? "c" : "C"), best_words)
                 : fmt::format("{}ate {}", where, best->group->rate);
    std::string s = fmt::format("{} has the highest mean test accuracy ({:.4f}, {} seed{})", subject,
                                best->test_acc.mean, best->test_acc.n, best->test_acc.n == 1 ? "" : "s");
    // Compare it with the baseline, or, when it is the baseline, with the next best rate (condition).
    const bool is_base = is_baseline(*best->group);
    const RateSummary* other = is_base ? runner_up : nullptr;
    const Group* versus = is_base ? (other ? other->group : nullptr) : best->group;
    const std::string other_words = is_base ? (other ? in_words(other->group->variant, other->group->rate) : "")
                                            : baseline_words;
    const Paired* pt = nullptr;
    for (const Paired& p : an.paired)
      if (versus != nullptr && p.max_norm == mn && p.rate == versus->rate && p.variant == versus->variant) pt = &p;
    const MetricTest* acc = pt ? &pt->get("test_accuracy") : nullptr;
    if (pt == nullptr || acc->test.difference.n < 2 || !std::isfinite(acc->test.p_t)) {
      if (is_base && other == nullptr) s += variants ? "; it is the only condition." : "; it is the only rate.";
      else if (pt != nullptr && acc->test.difference.n >= 2)
        s += fmt::format("; its paired differences from {} are the same on all {} seeds, so no t-test is "
                         "possible.", other_words, acc->test.difference.n);
      else
        s += fmt::format("; with {} paired seed(s) no confidence interval or test is possible, so the ranking may "
                         "be seed noise.", pt ? acc->test.difference.n : 0);
    } else {
      const Summary& d = acc->test.difference;
      const bool sig = acc->p_holm < c.alpha;
      const double sign = is_base ? -1.0 : 1.0;  // difference of the best minus the rate it is compared with
      std::size_t family = 0;
      for (const Paired& p : an.paired) family += p.max_norm == mn && std::isfinite(p.get("test_accuracy").test.p_t);
      s += fmt::format("; against {}{} {}, the paired difference over {} seeds is {:+.4f} ({}% CI [{:+.4f}, "
                       "{:+.4f}], paired t-test p = {}, Holm-adjusted over {} comparison{} with the baseline p = {}), "
                       "{} at α = {} (Holm-adjusted)",
                       is_base ? "the next best" : "the baseline", variants ? "," : "", other_words, d.n,
                       sign * d.mean, std::lround((1 - c.alpha) * 100), sign > 0 ? d.ci_low : -d.ci_high,
                       sign > 0 ? d.ci_high : -d.ci_low, pval(acc->test.p_t), family, family == 1 ? "" : "s",
                       pval(acc->p_holm), sig ? "significant" : "not significant", c.alpha);
      s += sig ? "." : fmt::format(": these data do not show that {} is better than {}.", best_words, other_words);
    }
    an.conclusions.push_back(s);
  }
  return an;
}

std::string pval(double p) {
  if (!std::isfinite(p)) return "n/a";
  return p < 0.0001 ? "<0.0001" : fmt::format("{:.4f}", p);
}

}  // namespace dropnet::bench::analysis
