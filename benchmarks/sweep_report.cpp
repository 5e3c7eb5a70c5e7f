// sweep_report.cpp: every report of a dropout study, built from the settings and the finished run records
// alone (no clock, no paths of this process), so that an interrupted-and-resumed study, or shards merged
// later, give byte-identical files. Files: report.md (also on stdout), sweep.csv (one row per run and
// epoch, Keras' CSVLogger columns), runs.csv (one row per run), sweep.json (everything), accuracy.svg,
// loss.svg (mean ± 1 std band over seeds), gap.svg, test_accuracy.svg (95% t intervals),
// reliability_*.svg (one per condition) and report.html (all of it in one page). The numbers come from
// study_analysis.cpp. With --variants a variant column (or label) joins the rate everywhere; without it
// every file is byte for byte what it was before the variants axis existed.
// Conventions: CSV and JSON count epochs from 0; the tables and plots from 1. Missing values: NA in CSV,
// null in JSON, n/a in tables.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "study_analysis.hpp"
#include "study_stats.hpp"
#include "io/atomic_file.hpp"
#include "programs/svg_plot.hpp"
#include "sweep.hpp"

namespace dropnet::bench {
namespace {

using stats::Summary;
using analysis::Analysis;
using analysis::Group;
using analysis::Paired;
using analysis::RateSummary;
using analysis::analyse;
using analysis::pval;

std::string num(double v, int decimals) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : "n/a"; }
std::string csv_value(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "NA"; }
std::string jnum(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += char(c);
    else if (c == '\n') out += "\\n";
    else if (c < 0x20) out += fmt::format("\\u{:04x}", c);
    else out += char(c);
  }
  return out + "\"";
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// "0.6780 ± 0.0120 [0.6630, 0.6930]": mean ± sample std [t interval]; the mean alone for one value.
std::string mean_ci(const Summary& s, int d) {
  if (!std::isfinite(s.mean)) return "n/a";
  if (!std::isfinite(s.std)) return num(s.mean, d);
  return fmt::format("{:.{}f} ± {:.{}f} [{:.{}f}, {:.{}f}]", s.mean, d, s.std, d, s.ci_low, d, s.ci_high, d);
}
std::string mean_pm(const Summary& s, int d) {
  if (!std::isfinite(s.mean)) return "n/a";
  if (!std::isfinite(s.std)) return num(s.mean, d);
  return fmt::format("{:.{}f} ± {:.{}f}", s.mean, d, s.std, d);
}
std::string signed_ci(const Summary& s, int d) {
  if (!std::isfinite(s.mean)) return "n/a";
  if (!std::isfinite(s.ci_low)) return fmt::format("{:+.{}f}", s.mean, d);
  return fmt::format("{:+.{}f} [{:+.{}f}, {:+.{}f}]", s.mean, d, s.ci_low, d, s.ci_high, d);
}

// ---- tables shared by Markdown and HTML ----

struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> notes;
};

// The columns that name a condition: [variant,] rate [/ max-norm].
std::vector<std::string> key_header(const SweepConfig& c) {
  std::vector<std::string> h;
  if (!c.variants.empty()) h.push_back("variant");
  h.push_back(c.vary_max_norm ? "rate / max-norm" : "rate");
  return h;
}
std::vector<std::string> key_cells(const SweepConfig& c, const std::string& variant, double rate, double mn) {
  std::vector<std::string> k;
  if (!c.variants.empty()) k.push_back(variant);
  k.push_back(c.vary_max_norm ? fmt::format("{} / {}", rate, max_norm_text(mn)) : fmt::format("{}", rate));
  return k;
}
std::vector<std::string> joined(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// One row per condition and metric of a paired comparison.
void add_paired_rows(const SweepConfig& c, const std::vector<Paired>& family, Table& t) {
  for (const Paired& p : family)
    for (const analysis::MetricTest& m : p.metrics)
      t.rows.push_back(joined(key_cells(c, p.variant, p.rate, p.max_norm), {
                         m.name, std::to_string(m.test.difference.n), signed_ci(m.test.difference, m.decimals),
                         pval(m.test.p_t), pval(m.p_holm),
                         pval(m.test.p_wilcoxon) + (std::isfinite(m.test.p_wilcoxon) && !m.test.wilcoxon_exact
                                                        ? " (normal approx.)" : "")}));
}

// What the tests of a comparison table are, with the numbers of this study: the Holm family's size, and the
// smallest p the exact Wilcoxon test can give with the table's numbers of pairs.
std::string test_note(const SweepConfig& c, const std::vector<Paired>& family, const std::string& what,
                      bool in_conclusion) {
  std::map<std::size_t, double> floors;  // pairs the exact test ranked -> its smallest possible p
  for (const Paired& p : family)
    for (const analysis::MetricTest& m : p.metrics)
      if (m.test.wilcoxon_exact) floors.emplace(m.test.wilcoxon_pairs, m.test.wilcoxon_smallest_p);
  std::string floor_text;
  for (const auto& [n, f] : floors)
    floor_text += fmt::format("{}{} with {} pair{}", floor_text.empty() ? "" : ", ", fmt::format("{:.4g}", f), n,
                              n == 1 ? "" : "s");
  std::size_t per_max_norm = family.size() / std::max<std::size_t>(1, c.max_norms.size());
  std::string s = fmt::format(
      "Two-sided tests at α = {}. Paired t-test (df = pairs − 1); Holm p: its p adjusted by Holm's step-down method "
      "within each metric over the {} {}{} (each metric is its own family){}. Accuracies are compared as counts "
      "of correct test images, so equal differences tie exactly. Wilcoxon signed-rank test (zero differences dropped): exact for up to 25 pairs, "
      "ties included (the sign-flip distribution of the mid-ranks), else the normal approximation.",
      c.alpha, per_max_norm, what, c.max_norms.size() > 1 ? " of each max-norm" : "",
      in_conclusion ? "; the conclusion uses the Holm-adjusted p of test accuracy" : "");
  if (!floor_text.empty()) {
    double lowest = 1.0;
    for (const auto& [n, f] : floors) lowest = std::min(lowest, f);
    s += fmt::format(" The exact test's smallest possible p is {}{}.", floor_text,
                     lowest >= c.alpha ? fmt::format(", so at α = {} it cannot reject here whatever the data",
                                                     c.alpha)
                                       : "");
  }
  return s;
}

std::vector<Table> tables(const Study& st, const Analysis& an) {
  const SweepConfig& c = st.config;
  const std::vector<std::string> key = key_header(c);
  const int level = int(std::lround((1 - c.alpha) * 100));
  std::vector<Table> out;

  Table acc{.title = "Accuracy and loss on the test set"};
  acc.header = joined(key, {"seeds", fmt::format("test acc (mean ± std [{}% CI])", level),
                            fmt::format("test loss (mean ± std [{}% CI])", level), "test acc at best val epoch",
                            "best epoch", "final train acc", "final val acc", "gap"});
  for (const RateSummary& s : an.rows)
    acc.rows.push_back(joined(key_cells(c, s.group->variant, s.group->rate, s.group->max_norm), {
                        s.group->failed.empty() ? std::to_string(s.group->ok.size())
                                                : fmt::format("{} ({} failed)", s.group->ok.size(), s.group->failed.size()),
                        mean_ci(s.test_acc, 4), mean_ci(s.test_loss, 4), mean_pm(s.best_acc, 4), mean_pm(s.best_epoch, 1),
                        mean_pm(s.train_acc, 4), mean_pm(s.val_acc, 4), mean_pm(s.gap, 4)}));
  acc.notes.push_back(fmt::format("Test figures after the last epoch ({} epochs), inference without dropout (weight "
                                  "scaling). Mean ± sample standard deviation over seeds [Student-t {}% confidence "
                                  "interval of the mean].", c.epochs, level));
  if (const std::string owner = rate0_owner(c); !owner.empty() && c.variants.size() > 1 &&
      std::find(c.rates.begin(), c.rates.end(), 0.0) != c.rates.end()) {
    const std::string bn_owner = rate0_owner(c, true);
    acc.notes.push_back(fmt::format("Rate 0 is the seed model without dropout whatever the variant (except a linear "
                                    "schedule that starts above 0), so it is trained once per seed, as {}, rate 0, "
                                    "and stands for every variant's rate 0 in the tables and plots{}.", owner,
                                    bn_owner.empty() ? "" : fmt::format(" (with BatchNormalization: once per seed as "
                                                                        "{}, rate 0, for every +bn variant)", bn_owner)));
  }
  acc.notes.push_back("test acc at best val epoch: the test accuracy of the weights of the epoch with the lowest "
                      "val_loss (best epoch, counted from 1). final train acc: the last epoch's running mean with "
                      "dropout active (Keras' `accuracy`); gap = final train acc − final val acc.");
  out.push_back(acc);

  const bool variants = !c.variants.empty();
  Table paired{.title = variants ? fmt::format("Paired by seed against the baseline, {}, rate {}", c.baseline_variant,
                                               c.baseline)
                                 : fmt::format("Paired by seed against the baseline, rate {}", c.baseline)};
  paired.header = joined(key, {"metric", "pairs", fmt::format("Δ [{}% CI]", level), "t-test p", "Holm p",
                               "Wilcoxon p"});
  add_paired_rows(c, an.paired, paired);
  paired.notes.push_back(fmt::format(
      "Δ = {} − baseline on the same seed, which starts from the same initial weights and trains on the same "
      "batches in the same order (init_weights_fnv1a and batch_order_fnv1a in runs.jsonl; the sweep refuses a "
      "study whose runs of one seed differ in either). Metrics as in the tables above: NLL, Brier and ECE of "
      "weight-scaling inference; best epoch counted from 1.", variants ? "condition" : "rate"));
  paired.notes.push_back(test_note(c, an.paired, variants ? "conditions compared with the baseline"
                                                          : "rates compared with the baseline", true));
  out.push_back(paired);

  Table cal{.title = fmt::format("Uncertainty and calibration on the test set{}",
                                 c.mc_samples > 0 ? fmt::format(" (Monte Carlo dropout: {} passes)", c.mc_samples) : "")};
  cal.header = joined(key, {"NLL", "Brier", "ECE", "entropy", "AUROC"});
  if (c.mc_samples > 0)
    for (const char* h : {"MC acc", "MC NLL", "MC Brier", "MC ECE", "MC entropy", "MC mutual info", "MC AUROC"})
      cal.header.push_back(h);
  for (const RateSummary& s : an.rows) {
    std::vector<std::string> row = joined(key_cells(c, s.group->variant, s.group->rate, s.group->max_norm),
                                          {mean_pm(s.std_nll, 4), mean_pm(s.std_brier, 4), mean_pm(s.std_ece, 4),
                                           mean_pm(s.std_entropy, 4), mean_pm(s.std_auroc, 4)});
    if (c.mc_samples > 0)
      for (const Summary* m : {&s.mc_acc, &s.mc_nll, &s.mc_brier, &s.mc_ece, &s.mc_entropy, &s.mc_mi, &s.mc_auroc})
        row.push_back(mean_pm(*m, 4));
    cal.rows.push_back(std::move(row));
  }
  cal.notes.push_back("Mean ± std over seeds. NLL in nats (probabilities floored at 1e-12); Brier: mean over "
                      "records of Σ_c (p_c − y_c)², range [0, 2]; ECE: 15 equal-width confidence bins [lo, hi) with a "
                      "confidence of 1.0 in the last (Guo et al. use (lo, hi]), L1; entropy: "
                      "mean predictive entropy (nats); AUROC: how well the predictive entropy tells misclassified "
                      "test records from correct ones (0.5: not at all).");
  if (c.mc_samples > 0)
    cal.notes.push_back(fmt::format("MC: the mean of {} passes with dropout active (masks from the model's Philox "
                                    "stream, reproducible); mutual information = H(mean p) − mean H(p), the "
                                    "model-uncertainty part of the entropy. Rate 0 has no dropout, so its MC figures "
                                    "are one deterministic pass and its mutual information is 0.{}", c.mc_samples,
                                    variants ? " The passes use the rate the schedule gives after the last training "
                                               "step, so early dropout (rate 0 by then) is one deterministic pass too."
                                             : ""));
  out.push_back(cal);

  if (!an.mc_vs_standard.empty()) {
    Table mc{.title = fmt::format("Monte Carlo dropout ({} passes) against weight scaling, paired by run",
                                  c.mc_samples)};
    mc.header = joined(key, {"metric", "runs", fmt::format("Δ [{}% CI]", level), "t-test p", "Holm p", "Wilcoxon p"});
    add_paired_rows(c, an.mc_vs_standard, mc);
    mc.notes.push_back("Δ = Monte Carlo dropout − weight scaling on the same trained model and test set (for NLL, "
                       "Brier and ECE, negative is better). Only conditions with dropout active after the last "
                       "training step appear: without it the passes are deterministic and the two are the same.");
    mc.notes.push_back(
        test_note(c, an.mc_vs_standard, variants ? "conditions with dropout" : "rates with dropout", false));
    out.push_back(mc);
  }
  return out;
}

// With variants: what they are and how their schedules ran (epochs of so many optimizer steps).
std::string variants_sentence(const Study& st) {
  const SweepConfig& c = st.config;
  if (c.variants.empty()) return "";
  std::string names;
  bool scheduled = false, dropblock = false;
  for (const Variant& v : c.variants) {
    names += (names.empty() ? "" : ", ") + v.text();
    scheduled |= v.schedule.kind != DropoutSchedule::Kind::Constant;
    dropblock |= v.type == cli::DropoutType::DropBlock;
  }
  std::string s = fmt::format(" Variants (dropout type[@schedule]): {}; baseline {} at rate {}.", names,
                              c.baseline_variant, c.baseline);
  if (scheduled)
    s += fmt::format(" Schedules count epochs of {} optimizer steps (batches).",
                     batches_per_epoch(st.provenance.train_samples, c.batch_size));
  if (dropblock) s += fmt::format(" DropBlock block size {}.", c.block_size);
  return s;
}

std::string settings_line(const Study& st) {
  const SweepConfig& c = st.config;
  const Provenance& p = st.provenance;
  return fmt::format(
      "Seed model on {} ({} training, {} validation, {} test records; data FNV-1a {}); {} epoch{}, batch {}, Adam lr "
      "{}, seeds {}..{}; rate applied to Dropout layer(s) {}{}; dropnet {} (commit {}), {} CPU thread{}.",
      p.device_description, p.train_samples, p.val_samples, p.test_samples, p.data_fnv1a, c.epochs,
      c.epochs == 1 ? "" : "s", c.batch_size, c.learning_rate, c.seed, c.seed + std::uint64_t(c.seeds) - 1,
      [&] { std::string l; for (std::size_t i : c.dropout_layers) l += (l.empty() ? "" : ",") + std::to_string(i + 1); return l; }(),
      c.vary_max_norm ? "" : fmt::format(", max-norm {}", max_norm_text(c.max_norms[0])),
      p.dropnet_version, p.git_commit, p.threads, p.threads == 1 ? "" : "s") + variants_sentence(st);
}

std::vector<std::string> failure_lines(const Study& st) {
  std::vector<std::string> out;
  for (const RunRecord& r : st.runs)
    if (!r.ok) out.push_back(fmt::format("{}: {}", r.id, r.failure));
  return out;
}

std::string missing_line(const Study& st) {
  const std::size_t want = planned_runs(st.config).size();
  return st.runs.size() < want ? fmt::format("{} of {} runs are recorded; the others have not run yet.",
                                             st.runs.size(), want)
                               : std::string();
}

// The per-epoch mean and std over seeds of one field.
void curve(const Group& g, double (*field)(const EpochRecord&), std::vector<double>& mean, std::vector<double>& sd) {
  mean.clear(), sd.clear();
  std::size_t epochs = 0;
  for (const RunRecord* r : g.ok) epochs = std::max(epochs, r->epochs.size());
  for (std::size_t e = 0; e < epochs; ++e) {
    std::vector<double> v;
    for (const RunRecord* r : g.ok) v.push_back(e < r->epochs.size() ? field(r->epochs[e]) : kNaN);
    const Summary s = stats::describe(v);
    mean.push_back(s.mean);
    sd.push_back(s.std);
  }
}

// reliability_rate0.5.svg; with variants reliability_dropout-early-3_rate0.5.svg (':' and '@' become '-').
std::string reliability_file(const SweepConfig& c, const Group& g) {
  std::string variant;
  if (!g.variant.empty()) {
    variant = g.variant + "_";
    std::replace(variant.begin(), variant.end(), ':', '-');
    std::replace(variant.begin(), variant.end(), '@', '-');
  }
  return c.vary_max_norm ? fmt::format("reliability_{}rate{}_maxnorm{}.svg", variant, g.rate, g.max_norm)
                         : fmt::format("reliability_{}rate{}.svg", variant, g.rate);
}

std::vector<std::string> plot_files(const Study& st, const Analysis& an) {
  std::vector<std::string> files = {"accuracy.svg", "loss.svg", "gap.svg", "test_accuracy.svg"};
  for (const Group& g : an.groups) files.push_back(reliability_file(st.config, g));
  return files;
}

void write_plots(const Study& st, const Analysis& an, const std::filesystem::path& out) {
  const SweepConfig& c = st.config;
  const bool has_val = st.provenance.val_samples > 0;
  const std::string note = fmt::format(" (mean ± 1 std over {} seed{})", c.seeds, c.seeds == 1 ? "" : "s");
  auto axis = [](std::size_t n) {
    std::vector<double> x(n);
    for (std::size_t e = 0; e < n; ++e) x[e] = double(e + 1);
    return x;
  };
  // The curves: one panel per max-norm and variant (side by side, on one y range), one line per rate, coloured
  // by the rate's place in --rates in every panel.
  struct Panel {
    double max_norm;
    std::string variant;
  };
  std::vector<Panel> panel_keys;
  for (double mn : c.max_norms)
    for (const std::string& v : variant_axis(c)) panel_keys.push_back({mn, v});
  // A variant's panel shows the shared rate 0 of its architecture (rate0_owner_of) as its own.
  auto in_panel = [&](const Group& g, const Panel& p) {
    return g.max_norm == p.max_norm &&
           (g.variant == p.variant ||
            (g.rate == 0 && shares_rate0(c, p.variant, 0) && g.variant == rate0_owner_of(c, p.variant)));
  };
  // The panel's groups in the order of --rates, each with the colour of its rate.
  auto panel_groups = [&](const Panel& p) {
    std::vector<std::pair<const Group*, std::size_t>> out;
    for (std::size_t ri = 0; ri < c.rates.size(); ++ri)
      for (const Group& g : an.groups)
        if (g.rate == c.rates[ri] && in_panel(g, p)) out.emplace_back(&g, ri);
    return out;
  };
  auto write_figure = [&](const char* file, const std::string& title, auto make_panel) {
    std::vector<plot::Chart> panels;
    for (const Panel& key : panel_keys) panels.push_back(make_panel(key));
    double lo = INFINITY, hi = -INFINITY;
    for (const plot::Chart& p : panels)
      for (const plot::Series& s : p.series)
        for (std::size_t i = 0; i < s.y.size(); ++i) {
          const double b = i < s.band.size() && std::isfinite(s.band[i]) ? s.band[i] : 0.0;
          if (std::isfinite(s.y[i])) lo = std::min(lo, s.y[i] - b), hi = std::max(hi, s.y[i] + b);
        }
    for (plot::Chart& p : panels) p.y_include = {lo, hi};
    if (panels.size() == 1) {
      panels[0].title = title + note;
      io::write_file_atomic(out / file, plot::render_svg(panels[0]));
    } else {
      for (std::size_t i = 0; i < panels.size(); ++i) {
        const Panel& key = panel_keys[i];
        const std::string mn = "max-norm " + max_norm_text(key.max_norm);
        panels[i].title = key.variant.empty() ? mn : c.vary_max_norm ? key.variant + ", " + mn : key.variant;
      }
      io::write_file_atomic(out / file, plot::render_svg(panels, title + note, 600, 420));
    }
  };
  // Training dashed (mean), validation solid with a ±1 std band.
  auto curves = [&](const std::string& y_label, double (*train)(const EpochRecord&), double (*val)(const EpochRecord&)) {
    return [=](const Panel& key) {
      plot::Chart chart{.x_label = "epoch", .y_label = y_label, .integer_x = true};
      for (const auto& [g, i] : panel_groups(key)) {
        std::vector<double> tm, ts, vm, vs;
        curve(*g, train, tm, ts);
        const std::string label = fmt::format("rate {}", g->rate);
        const bool markers = tm.size() <= 20;
        chart.series.push_back({.label = has_val ? "" : label, .colour = plot::colour(i), .dashed = true,
                                .markers = markers, .x = axis(tm.size()), .y = tm, .band = has_val ? std::vector<double>{} : ts});
        if (has_val) {
          curve(*g, val, vm, vs);
          chart.series.push_back({.label = label, .colour = plot::colour(i), .markers = markers, .x = axis(vm.size()),
                                  .y = vm, .band = vs});
        }
      }
      chart.extra_legend.push_back({.label = "training", .dashed = true});
      if (has_val) chart.extra_legend.push_back({.label = "validation (band: ±1 std)"});
      return chart;
    };
  };
  write_figure("accuracy.svg", "Accuracy by dropout rate",
               curves("accuracy", [](const EpochRecord& e) { return e.accuracy; },
                      [](const EpochRecord& e) { return e.val_accuracy; }));
  write_figure("loss.svg", "Loss by dropout rate",
               curves("categorical cross-entropy", [](const EpochRecord& e) { return e.loss; },
                      [](const EpochRecord& e) { return e.val_loss; }));
  write_figure("gap.svg", "Generalization gap (train − validation accuracy)", [&](const Panel& key) {
    plot::Chart gap{.x_label = "epoch", .y_label = "accuracy gap", .integer_x = true, .zero_line = true,
                    .empty_message = "no validation data (--validation-split 0)"};
    if (!has_val) return gap;
    for (const auto& [g, i] : panel_groups(key)) {
      std::vector<double> m, s;
      curve(*g, [](const EpochRecord& e) { return e.gap(); }, m, s);
      gap.series.push_back({.label = fmt::format("rate {}", g->rate), .colour = plot::colour(i),
                            .markers = m.size() <= 20, .x = axis(m.size()), .y = m, .band = s});
    }
    return gap;
  });

  // Final test accuracy against the rate with t intervals, one line per max-norm (and variant).
  const int level = int(std::lround((1 - c.alpha) * 100));
  plot::Chart test{.title = "Test accuracy against dropout rate", .x_label = "dropout rate",
                   .y_label = c.seeds > 1 ? fmt::format("test accuracy (mean, {}% CI, {} seeds)", level, c.seeds)
                                          : "test accuracy"};
  const auto [lo, hi] = std::minmax_element(c.rates.begin(), c.rates.end());
  test.x_min = *lo - 0.05;
  test.x_max = *hi + 0.05;
  const double nudge = (test.x_max - test.x_min) * 0.008;
  const std::vector<std::string> variants = variant_axis(c);
  const std::size_t lines = c.max_norms.size() * variants.size();
  for (std::size_t m = 0; m < lines; ++m) {
    const double mn = c.max_norms[m / variants.size()];
    const std::string& variant = variants[m % variants.size()];
    std::string label = variant;
    if (c.vary_max_norm) label += (label.empty() ? "" : ", ") + ("max-norm " + max_norm_text(mn));
    plot::Series s{.label = label, .colour = plot::colour(m), .markers = true};
    std::vector<const RateSummary*> pts;
    for (const RateSummary& r : an.rows)
      if (in_panel(*r.group, {mn, variant})) pts.push_back(&r);
    std::sort(pts.begin(), pts.end(), [](auto* a, auto* b) { return a->group->rate < b->group->rate; });
    const double shift = (double(m) - double(lines - 1) / 2.0) * nudge;
    for (const RateSummary* r : pts) {
      s.x.push_back(r->group->rate + shift);
      s.y.push_back(r->test_acc.mean);
      s.error.push_back(r->test_acc.ci_high - r->test_acc.mean);
    }
    test.series.push_back(std::move(s));
  }
  io::write_file_atomic(out / "test_accuracy.svg", plot::render_svg(test));

  // Reliability diagrams: the bins pooled over seeds (count-weighted), weight scaling and MC dropout.
  for (const Group& g : an.groups) {
    plot::Chart ch{.title = fmt::format("Reliability, {} ({} seed{} pooled)",
                                        condition_name(c, g.variant, g.rate, g.max_norm),
                                        g.ok.size(), g.ok.size() == 1 ? "" : "s"),
                   .x_label = "confidence (max probability)", .y_label = "accuracy", .y_min = 0, .y_max = 1,
                   .x_min = 0, .x_max = 1};
    ch.series.push_back({.label = "perfect calibration", .colour = "#888888", .dashed = true, .x = {0, 1}, .y = {0, 1}});
    auto pooled = [&](const PredictionRecord RunRecord::*which, const std::string& label, const std::string& colour) {
      plot::Series s{.label = label, .colour = colour, .markers = true};
      std::size_t bins = 0;
      for (const RunRecord* r : g.ok) bins = std::max(bins, (r->*which).bin_count.size());
      for (std::size_t b = 0; b < bins; ++b) {
        double n = 0, conf = 0, acc = 0;
        for (const RunRecord* r : g.ok) {
          const PredictionRecord& p = r->*which;
          if (b < p.bin_count.size() && p.bin_count[b] > 0)
            n += double(p.bin_count[b]), conf += double(p.bin_count[b]) * p.bin_confidence[b],
                acc += double(p.bin_count[b]) * p.bin_accuracy[b];
        }
        if (n > 0) s.x.push_back(conf / n), s.y.push_back(acc / n);
      }
      if (!s.x.empty()) ch.series.push_back(std::move(s));
    };
    pooled(&RunRecord::standard, "weight scaling", plot::colour(0));
    if (c.mc_samples > 0) pooled(&RunRecord::mc, fmt::format("MC dropout ({} passes)", c.mc_samples), plot::colour(1));
    io::write_file_atomic(out / reliability_file(c, g), plot::render_svg(ch, 620, 420));
  }
}

std::string svg_body(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (const auto start = s.find("<svg"); start != std::string::npos) s = s.substr(start);  // drop <?xml ...?>
  return s;
}

std::string markdown_table(const Table& t) {
  std::string out = "## " + t.title + "\n\n|";
  for (const auto& h : t.header) out += " " + h + " |";
  out += "\n|";
  for (std::size_t i = 0; i < t.header.size(); ++i) out += i == 0 ? "---|" : "---:|";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (const auto& cell : row) out += " " + cell + " |";
    out += "\n";
  }
  out += "\n";
  for (const auto& note : t.notes) out += note + "\n\n";
  return out;
}

void write_csvs(const Study& st, const std::filesystem::path& out) {
  // With variants, a variant column before the rate (and in runs.csv the variant's type and schedules).
  const bool variants = !st.config.variants.empty();
  std::string csv = fmt::format("epoch,accuracy,loss,val_accuracy,val_loss,{}rate,max_norm,repeat,seed\n",
                                variants ? "variant," : "");
  for (const RunRecord& r : st.runs)
    for (const EpochRecord& e : r.epochs)
      csv += fmt::format("{},{},{},{},{},{}{},{},{},{}\n", e.epoch, csv_value(e.accuracy), csv_value(e.loss),
                         csv_value(e.val_accuracy), csv_value(e.val_loss), variants ? r.variant + "," : "", r.rate,
                         r.max_norm, r.seed_index, r.seed);
  io::write_file_atomic(out / "sweep.csv", csv);
  std::string runs = std::string("id,status,") + (variants ? "variant,dropout_type,schedule_epochs,schedule_steps," : "") +
                     "rate,max_norm,seed,test_accuracy,test_loss,best_epoch,best_test_accuracy,"
                     "best_test_loss,nll,brier,ece,entropy,auroc_entropy,mc_passes,mc_accuracy,mc_nll,mc_brier,mc_ece,"
                     "mc_entropy,mc_mutual_information,mc_auroc_entropy,failure\n";
  for (const RunRecord& r : st.runs) {
    std::string failure = r.failure;
    std::replace(failure.begin(), failure.end(), '"', '\'');
    std::string variant;
    if (variants) {
      const Variant v = variant_from_text(r.variant);
      variant = fmt::format("{},{},{},{},", r.variant, cli::to_string(v.type), to_string(v.schedule),
                            r.schedule_steps.empty() ? "NA" : r.schedule_steps);
    }
    runs += fmt::format("\"{}\",{},{}{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n", r.id,
                        r.ok ? "ok" : "failed", variant, r.rate, r.max_norm, r.seed, csv_value(r.test_accuracy),
                        csv_value(r.test_loss), r.best_epoch < 0 ? "NA" : std::to_string(r.best_epoch),
                        csv_value(r.best_test_accuracy), csv_value(r.best_test_loss), csv_value(r.standard.nll),
                        csv_value(r.standard.brier), csv_value(r.standard.ece), csv_value(r.standard.entropy),
                        csv_value(r.standard.auroc_entropy), r.mc.passes, csv_value(r.mc.accuracy),
                        csv_value(r.mc.nll), csv_value(r.mc.brier), csv_value(r.mc.ece), csv_value(r.mc.entropy),
                        csv_value(r.mc.mutual_information), csv_value(r.mc.auroc_entropy), failure);
  }
  io::write_file_atomic(out / "runs.csv", runs);
}

std::string summary_json(const Summary& s) {
  return fmt::format(R"({{"n": {}, "mean": {}, "std": {}, "ci_low": {}, "ci_high": {}}})", s.n, jnum(s.mean),
                     jnum(s.std), jnum(s.ci_low), jnum(s.ci_high));
}
std::string paired_json(const analysis::MetricTest& m) {
  const stats::PairedTest& p = m.test;
  return fmt::format(R"({{"difference": {}, "t": {}, "p_t": {}, "p_holm": {}, "w_plus": {}, "p_wilcoxon": {}, )"
                     R"("wilcoxon_exact": {}, "wilcoxon_smallest_p": {}, "compared_as_counts": {}}})",
                     summary_json(p.difference), jnum(p.t), jnum(p.p_t), jnum(m.p_holm), jnum(p.w_plus),
                     jnum(p.p_wilcoxon), p.wilcoxon_exact, jnum(p.wilcoxon_smallest_p), m.counts);
}
std::string paired_list_json(const Study& st, const std::vector<Paired>& family, bool with_baseline) {
  std::string o;
  for (std::size_t i = 0; i < family.size(); ++i) {
    const Paired& p = family[i];
    std::string head;
    if (!p.variant.empty()) head += fmt::format("\"variant\": {}, ", json_string(p.variant));
    if (!p.variant.empty() && with_baseline)
      head += fmt::format("\"baseline_variant\": {}, ", json_string(st.config.baseline_variant));
    head += fmt::format("\"rate\": {}, \"max_norm\": {}", p.rate, p.max_norm);
    if (with_baseline) head += fmt::format(", \"baseline\": {}", st.config.baseline);
    o += "    {" + head;
    for (const analysis::MetricTest& m : p.metrics) o += fmt::format(",\n     \"{}\": {}", m.key, paired_json(m));
    o += fmt::format("}}{}\n", i + 1 < family.size() ? "," : "");
  }
  return o;
}

void write_json(const Study& st, const Analysis& an, const std::filesystem::path& out) {
  std::string o = "{\n  \"tool\": \"dropnet-bench sweep\",\n";
  o += fmt::format("  \"format\": \"{}\",\n", kStudyFormat);
  o += "  \"settings\": " + settings_json(st.config) + ",\n";
  o += "  \"provenance\": " + provenance_json(st.provenance, false) + ",\n";
  o += "  \"conclusions\": [";
  for (std::size_t i = 0; i < an.conclusions.size(); ++i) o += (i ? ", " : "") + json_string(an.conclusions[i]);
  o += "],\n  \"summary\": [\n";
  for (std::size_t i = 0; i < an.rows.size(); ++i) {
    const RateSummary& s = an.rows[i];
    const std::string variant =
        s.group->variant.empty() ? "" : fmt::format("\"variant\": {}, ", json_string(s.group->variant));
    o += fmt::format("    {{{}\"rate\": {}, \"max_norm\": {}, \"runs_ok\": {}, \"runs_failed\": {},\n", variant,
                     s.group->rate, s.group->max_norm, s.group->ok.size(), s.group->failed.size());
    std::vector<std::pair<const char*, const Summary*>> fields = {
        {"test_accuracy", &s.test_acc}, {"test_loss", &s.test_loss}, {"best_val_epoch_test_accuracy", &s.best_acc},
        {"best_val_epoch_test_loss", &s.best_loss}, {"best_epoch", &s.best_epoch},
        {"final_train_accuracy", &s.train_acc}, {"final_val_accuracy", &s.val_acc}, {"final_gap", &s.gap},
        {"nll", &s.std_nll}, {"brier", &s.std_brier}, {"ece", &s.std_ece}, {"entropy", &s.std_entropy},
        {"auroc_entropy", &s.std_auroc}, {"mc_accuracy", &s.mc_acc}, {"mc_nll", &s.mc_nll}, {"mc_brier", &s.mc_brier},
        {"mc_ece", &s.mc_ece}, {"mc_entropy", &s.mc_entropy}, {"mc_mutual_information", &s.mc_mi},
        {"mc_auroc_entropy", &s.mc_auroc}};
    for (std::size_t k = 0; k < fields.size(); ++k)
      o += fmt::format("     \"{}\": {}{}\n", fields[k].first, summary_json(*fields[k].second),
                       k + 1 < fields.size() ? "," : "");
    o += fmt::format("    }}{}\n", i + 1 < an.rows.size() ? "," : "");
  }
  o += "  ],\n  \"paired\": [\n" + paired_list_json(st, an.paired, true);
  o += "  ],\n  \"mc_vs_standard\": [\n" + paired_list_json(st, an.mc_vs_standard, false);
  o += "  ],\n  \"runs\": [\n";
  for (std::size_t i = 0; i < st.runs.size(); ++i) {
    RunRecord r = st.runs[i];  // the record without its timings, which are not reproducible
    r.wall_seconds = r.train_seconds = r.images_per_second = r.peak_memory_mib = kNaN;
    for (EpochRecord& e : r.epochs) e.seconds = kNaN;
    o += "    " + run_line(r) + (i + 1 < st.runs.size() ? ",\n" : "\n");
  }
  o += "  ]\n}\n";
  io::write_file_atomic(out / "sweep.json", o);
}

void write_html(const Study& st, const Analysis& an, const std::filesystem::path& out) {
  const SweepConfig& c = st.config;
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<title>dropnet dropout study</title>\n<style>\n"
                  "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em;color:#222;max-width:1500px}\n"
                  "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px}\n"
                  "th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
                  "figure{display:inline-block;margin:0.5em}code{background:#f4f4f4;padding:1px 4px}\n"
                  "p.conclusion{font-size:1.1em;background:#eef5fb;padding:0.6em;border-left:4px solid #0072B2}\n"
                  "</style>\n</head>\n<body>\n<h1>Dropout study</h1>\n";
  h += "<p>" + html_escape(settings_line(st)) + "</p>\n";
  for (const std::string& s : an.conclusions) h += "<p class=\"conclusion\">" + html_escape(s) + "</p>\n";
  if (const std::string m = missing_line(st); !m.empty()) h += "<p><strong>" + html_escape(m) + "</strong></p>\n";
  for (const Table& t : tables(st, an)) {
    h += "<h2>" + html_escape(t.title) + "</h2>\n<table>\n<tr>";
    for (const auto& head : t.header) h += "<th>" + html_escape(head) + "</th>";
    h += "</tr>\n";
    for (const auto& row : t.rows) {
      h += "<tr>";
      for (const auto& cell : row) h += "<td class=\"num\">" + html_escape(cell) + "</td>";
      h += "</tr>\n";
    }
    h += "</table>\n";
    for (const auto& note : t.notes) h += "<p>" + html_escape(note) + "</p>\n";
  }
  const auto failures = failure_lines(st);
  if (!failures.empty()) {
    h += "<h2>Failed runs</h2>\n<ul>\n";
    for (const auto& f : failures) h += "<li>" + html_escape(f) + "</li>\n";
    h += "</ul>\n";
  }
  h += "<h2>Plots</h2>\n";
  for (const std::string& name : plot_files(st, an)) h += fmt::format("<figure>\n{}</figure>\n", svg_body(out / name));
  h += "<h2>Settings</h2>\n<pre>" + html_escape(settings_json(c)) + "</pre>\n";
  h += "<p>Raw data: <a href=\"runs.jsonl\">runs.jsonl</a> (one record per run, with timings and provenance), "
       "<a href=\"sweep.csv\">sweep.csv</a> (one row per run and epoch, epochs from 0), <a href=\"runs.csv\">runs.csv</a> "
       "(one row per run), <a href=\"sweep.json\">sweep.json</a> (everything in this report).</p>\n</body>\n</html>\n";
  io::write_file_atomic(out / "report.html", h);
}

}  // namespace

std::string max_norm_text(double max_norm) { return max_norm > 0 ? fmt::format("{}", max_norm) : "none"; }

std::string markdown_report(const Study& st) {
  const Analysis an = analyse(st);
  std::string out = "# Dropout study\n\n" + settings_line(st) + "\n\n";
  for (const std::string& s : an.conclusions) out += "**" + s + "**\n\n";
  if (const std::string m = missing_line(st); !m.empty()) out += m + "\n\n";
  for (const Table& t : tables(st, an)) out += markdown_table(t);
  const auto failures = failure_lines(st);
  if (!failures.empty()) {
    out += "## Failed runs\n\n";
    for (const auto& f : failures) out += "- " + f + "\n";
    out += "\n";
  }
  return out;
}

void write_reports(const Study& st, const std::filesystem::path& out) {
  const Analysis an = analyse(st);
  io::write_file_atomic(out / "report.md", markdown_report(st));
  write_csvs(st, out);
  write_json(st, an, out);
  write_plots(st, an, out);
  write_html(st, an, out);
}

}  // namespace dropnet::bench
