// sweep_report.cpp: what a sweep writes: the Markdown table (stdout), sweep.csv, sweep.json, four SVG
// plots and report.html. Conventions: CSV and JSON count epochs from 0 (Keras' CSVLogger); the table and
// the plots count them from 1 (as Keras prints "Epoch 1/55"). Missing values are NA in CSV, null in JSON.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "dropnet/version.hpp"
#include "svg_plot.hpp"
#include "sweep.hpp"

namespace dropnet::bench {
namespace {

// ---- small formatting helpers ----------------------------------------------------------------------

std::string num(double v, int decimals) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : "n/a";
}

std::string mean_pm(const MeanStd& m, int decimals) {
  if (!std::isfinite(m.mean)) return "n/a";
  if (!std::isfinite(m.std)) return num(m.mean, decimals);
  return fmt::format("{:.{}f} ± {:.{}f}", m.mean, decimals, m.std, decimals);
}

std::string csv_value(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "NA"; }
std::string json_value(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

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

// The per-epoch mean over repeats of one field (NaN where any repeat lacks it).
std::vector<double> mean_curve(const std::vector<const RunRecord*>& runs, double (*field)(const EpochRecord&)) {
  std::vector<double> curve;
  if (runs.empty()) return curve;
  for (std::size_t e = 0; e < runs.front()->epochs.size(); ++e) {
    double sum = 0;
    for (const RunRecord* r : runs) sum += e < r->epochs.size() ? field(r->epochs[e]) : kNaN;
    curve.push_back(sum / double(runs.size()));
  }
  return curve;
}

// ---- the summary table, shared by Markdown and HTML -------------------------------------------------

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> notes;
};

Table summary_table(const SweepResult& r) {
  const SweepConfig& c = r.config;
  Table t;
  t.header = {"rate"};
  if (c.vary_max_norm) t.header.push_back("max_norm");
  for (const char* h : {"test acc", "test loss", "final train acc", "final val acc", "gap", "best epoch", "time",
                        "images/s", "peak MB"})
    t.header.push_back(h);
  for (const SummaryRow& s : r.summary()) {
    std::vector<std::string> row = {fmt::format("{}", s.rate)};
    if (c.vary_max_norm) row.push_back(max_norm_text(s.max_norm));
    const bool one = s.repeats == 1;
    row.push_back(mean_pm(s.test_accuracy, 4));
    row.push_back(mean_pm(s.test_loss, 4));
    row.push_back(num(s.train_accuracy.mean, 4));
    row.push_back(num(s.val_accuracy.mean, 4));
    row.push_back(num(s.gap.mean, 4));
    row.push_back(std::isfinite(s.best_epoch.mean) ? num(s.best_epoch.mean + 1, one ? 0 : 1) : "n/a");
    row.push_back(fmt::format("{:.1f}s", s.seconds.mean));
    row.push_back(num(s.images_per_second.mean, 0));
    row.push_back(num(s.peak_memory_mib, 0));
    t.rows.push_back(std::move(row));
  }
  t.notes.push_back(fmt::format(
      "{} on {} ({} training, {} validation, {} test records); {} epoch{}, batch {}, Adam lr {}, seed {}{}; rate "
      "applied to Dropout layer(s) {}{}.",
      "Seed model", r.device_description, r.train_samples, r.val_samples, r.test_samples, c.epochs,
      c.epochs == 1 ? "" : "s", c.batch_size,
      c.learning_rate, c.seed, c.repeats > 1 ? fmt::format("..{}", c.seed + std::uint64_t(c.repeats) - 1) : "",
      c.dropout_layers_text, c.vary_max_norm ? "" : fmt::format(", max-norm {}", max_norm_text(c.max_norms[0]))));
  if (c.repeats > 1)
    t.notes.push_back(fmt::format("test acc and test loss: mean ± sample standard deviation over {} repeats "
                                  "(different seeds); the other columns are means.", c.repeats));
  t.notes.push_back("final train acc: the last epoch's running mean with dropout active (Keras' `accuracy`); "
                    "gap = final train acc − final val acc; best epoch: lowest val_loss, counted from 1.");
  t.notes.push_back("time: wall time of one run (training, validation, test); images/s: training images ÷ time "
                    "spent in training batches; peak MB: " +
                    std::string(c.device == Device::CPU
                                    ? "peak resident set of the whole process so far (getrusage), which never "
                                      "decreases, so later rows include earlier runs and the loaded data."
                                    : "n/a on the GPU (dropnet has no device-memory query yet)."));
  return t;
}

std::string svg_body(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (const auto start = s.find("<svg"); start != std::string::npos) s = s.substr(start);  // drop <?xml ...?>
  return s;
}

}  // namespace

std::string max_norm_text(double max_norm) { return max_norm > 0 ? fmt::format("{}", max_norm) : "none"; }

MeanStd MeanStd::of(const std::vector<double>& values) {
  MeanStd m;
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  if (v.empty()) return m;
  double sum = 0;
  for (double x : v) sum += x;
  m.mean = sum / double(v.size());
  if (v.size() >= 2) {
    double ss = 0;
    for (double x : v) ss += (x - m.mean) * (x - m.mean);
    m.std = std::sqrt(ss / double(v.size() - 1));
  }
  return m;
}

std::vector<const RunRecord*> SweepResult::runs_of(double rate, double max_norm) const {
  std::vector<const RunRecord*> out;
  for (const RunRecord& r : runs)
    if (r.rate == rate && r.max_norm == max_norm) out.push_back(&r);
  return out;
}

std::vector<SummaryRow> SweepResult::summary() const {
  std::vector<SummaryRow> rows;
  for (double mn : config.max_norms) {
    for (double rate : config.rates) {
      const auto runs = runs_of(rate, mn);
      if (runs.empty()) continue;
      auto collect = [&](auto get) {
        std::vector<double> v;
        for (const RunRecord* r : runs) v.push_back(get(*r));
        return MeanStd::of(v);
      };
      SummaryRow s{.rate = rate, .max_norm = mn, .repeats = int(runs.size())};
      s.test_accuracy = collect([](const RunRecord& r) { return r.test_accuracy; });
      s.test_loss = collect([](const RunRecord& r) { return r.test_loss; });
      s.train_accuracy = collect([](const RunRecord& r) { return r.epochs.empty() ? kNaN : r.epochs.back().accuracy; });
      s.val_accuracy = collect([](const RunRecord& r) { return r.epochs.empty() ? kNaN : r.epochs.back().val_accuracy; });
      s.gap = collect([](const RunRecord& r) { return r.final_gap(); });
      s.best_epoch = collect([](const RunRecord& r) { return r.best_epoch() < 0 ? kNaN : double(r.best_epoch()); });
      s.seconds = collect([](const RunRecord& r) { return r.wall_seconds; });
      s.images_per_second = collect([](const RunRecord& r) { return r.images_per_second; });
      for (const RunRecord* r : runs)
        if (std::isfinite(r->peak_memory_mib))
          s.peak_memory_mib = std::isfinite(s.peak_memory_mib) ? std::max(s.peak_memory_mib, r->peak_memory_mib)
                                                               : r->peak_memory_mib;
      rows.push_back(s);
    }
  }
  return rows;
}

std::string markdown_table(const SweepResult& result) {
  const Table t = summary_table(result);
  std::string out = "\n|";
  for (const auto& h : t.header) out += " " + h + " |";
  out += "\n|";
  for (std::size_t i = 0; i < t.header.size(); ++i) out += "---:|";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (const auto& cell : row) out += " " + cell + " |";
    out += "\n";
  }
  out += "\n";
  for (const auto& note : t.notes) out += note + "\n";
  return out;
}

void write_csv(const SweepResult& result) {
  std::string out = "epoch,accuracy,loss,val_accuracy,val_loss,rate,max_norm,repeat,seed\n";
  for (const RunRecord& r : result.runs)
    for (const EpochRecord& e : r.epochs)
      out += fmt::format("{},{},{},{},{},{},{},{},{}\n", e.epoch, csv_value(e.accuracy), csv_value(e.loss),
                         csv_value(e.val_accuracy), csv_value(e.val_loss), r.rate, r.max_norm, r.repeat, r.seed);
  plot::write_file_atomic(result.config.out / "sweep.csv", out);
}

void write_json(const SweepResult& result) {
  const SweepConfig& c = result.config;
  auto list = [](const std::vector<double>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_value(v[i]);
    return s + "]";
  };
  std::vector<double> layers;
  for (std::size_t i : c.dropout_layers) layers.push_back(double(i + 1));
  std::string o = "{\n";
  o += fmt::format("  \"tool\": \"dropnet-bench sweep\",\n  \"dropnet_version\": \"{}\",\n", DROPNET_VERSION_STRING);
  o += fmt::format("  \"command\": {},\n", json_string(c.command_line));
  o += fmt::format("  \"device\": {{\"name\": \"{}\", \"description\": {}}},\n", to_string(c.device),
                   json_string(result.device_description));
  o += fmt::format("  \"data\": {{\"source\": {}, \"train_samples\": {}, \"val_samples\": {}, \"test_samples\": {}}},\n",
                   json_string(result.data_source), result.train_samples, result.val_samples, result.test_samples);
  o += "  \"config\": {\n";
  o += fmt::format("    \"model\": \"seed\", \"rates\": {}, \"max_norms\": {}, \"vary_max_norm\": {},\n",
                   list(c.rates), list(c.max_norms), c.vary_max_norm);
  o += fmt::format("    \"dropout_layers\": {}, \"repeats\": {}, \"epochs\": {}, \"batch_size\": {},\n", list(layers),
                   c.repeats, c.epochs, c.batch_size);
  o += fmt::format("    \"limit\": {}, \"test_limit\": {}, \"seed\": {}, \"validation_split\": {},\n",
                   c.limit < 0 ? "null" : std::to_string(c.limit), c.test_limit < 0 ? "null" : std::to_string(c.test_limit),
                   c.seed, c.validation_split);
  o += fmt::format("    \"optimizer\": {{\"name\": \"adam\", \"learning_rate\": {}}}, \"data\": {}, \"out\": {}\n  }},\n",
                   c.learning_rate, json_string(c.data.string()), json_string(c.out.string()));
  o += fmt::format("  \"total_seconds\": {},\n", json_value(result.total_seconds));
  o += fmt::format("  \"peak_memory_note\": {},\n",
                   json_string(c.device == Device::CPU ? "peak RSS of the whole process so far (getrusage ru_maxrss)"
                                                       : "not available on the GPU"));
  o += "  \"runs\": [\n";
  for (std::size_t i = 0; i < result.runs.size(); ++i) {
    const RunRecord& r = result.runs[i];
    o += fmt::format("    {{\"rate\": {}, \"max_norm\": {}, \"repeat\": {}, \"seed\": {}, "
                     "\"init_weights_fnv1a\": \"{:016x}\",\n",
                     r.rate, r.max_norm, r.repeat, r.seed, r.init_hash);
    o += fmt::format("     \"test_loss\": {}, \"test_accuracy\": {}, \"final_gap\": {}, \"best_epoch\": {},\n",
                     json_value(r.test_loss), json_value(r.test_accuracy), json_value(r.final_gap()),
                     r.best_epoch() < 0 ? "null" : std::to_string(r.best_epoch()));
    o += fmt::format("     \"wall_seconds\": {}, \"train_seconds\": {}, \"images_per_second\": {}, "
                     "\"peak_memory_mib\": {},\n     \"epochs\": [\n",
                     json_value(r.wall_seconds), json_value(r.train_seconds), json_value(r.images_per_second),
                     json_value(r.peak_memory_mib));
    for (std::size_t k = 0; k < r.epochs.size(); ++k) {
      const EpochRecord& e = r.epochs[k];
      o += fmt::format("       {{\"epoch\": {}, \"loss\": {}, \"accuracy\": {}, \"val_loss\": {}, \"val_accuracy\": {}, "
                       "\"gap\": {}, \"seconds\": {}}}{}\n",
                       e.epoch, json_value(e.loss), json_value(e.accuracy), json_value(e.val_loss),
                       json_value(e.val_accuracy), json_value(e.gap()), json_value(e.seconds),
                       k + 1 < r.epochs.size() ? "," : "");
    }
    o += fmt::format("     ]}}{}\n", i + 1 < result.runs.size() ? "," : "");
  }
  o += "  ],\n  \"summary\": [\n";
  const auto rows = result.summary();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const SummaryRow& s = rows[i];
    auto ms = [](const MeanStd& m) { return fmt::format("{{\"mean\": {}, \"std\": {}}}", json_value(m.mean), json_value(m.std)); };
    o += fmt::format("    {{\"rate\": {}, \"max_norm\": {}, \"repeats\": {}, \"test_accuracy\": {}, \"test_loss\": {}, "
                     "\"final_train_accuracy\": {}, \"final_val_accuracy\": {}, \"final_gap\": {}, \"best_epoch\": {}, "
                     "\"wall_seconds\": {}, \"images_per_second\": {}, \"peak_memory_mib\": {}}}{}\n",
                     s.rate, s.max_norm, s.repeats, ms(s.test_accuracy), ms(s.test_loss), ms(s.train_accuracy),
                     ms(s.val_accuracy), ms(s.gap), ms(s.best_epoch), ms(s.seconds), ms(s.images_per_second),
                     json_value(s.peak_memory_mib), i + 1 < rows.size() ? "," : "");
  }
  o += "  ]\n}\n";
  plot::write_file_atomic(c.out / "sweep.json", o);
}

void write_plots(const SweepResult& result) {
  const SweepConfig& c = result.config;
  const bool has_val = result.val_samples > 0;
  const std::string mean_note = c.repeats > 1 ? fmt::format(" (mean of {} seeds)", c.repeats) : "";
  auto epochs_axis = [](std::size_t n) {
    std::vector<double> x(n);
    for (std::size_t e = 0; e < n; ++e) x[e] = double(e + 1);
    return x;
  };
  // Per-epoch figures: one colour per rate (the same in every figure); with --max-norms, one panel per
  // max-norm side by side, so that the legend stays one entry per rate.
  auto write_figure = [&](const char* file, const std::string& title, auto make_panel) {
    std::vector<plot::Chart> panels;
    for (double mn : c.max_norms) panels.push_back(make_panel(mn));
    double lo = INFINITY, hi = -INFINITY;  // one y scale for all panels, so they compare at a glance
    for (const plot::Chart& p : panels)
      for (const plot::Series& s : p.series)
        for (double v : s.y)
          if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    for (plot::Chart& p : panels) p.y_include = {lo, hi};
    if (panels.size() == 1) {
      panels[0].title = title + mean_note;
      plot::write_file_atomic(c.out / file, plot::render_svg(panels[0]));
    } else {
      for (std::size_t i = 0; i < panels.size(); ++i) panels[i].title = "max-norm " + max_norm_text(c.max_norms[i]);
      plot::write_file_atomic(c.out / file, plot::render_svg(panels, title + mean_note, 600, 420));
    }
  };

  // Accuracy and loss: training dashed, validation solid.
  auto curves = [&](const std::string& y_label, double (*train)(const EpochRecord&), double (*val)(const EpochRecord&)) {
    return [=, &c, &result](double mn) {
      plot::Chart chart{.x_label = "epoch", .y_label = y_label, .integer_x = true};
      for (std::size_t i = 0; i < c.rates.size(); ++i) {
        const auto runs = result.runs_of(c.rates[i], mn);
        const std::vector<double> tr = mean_curve(runs, train);
        const std::vector<double> x = epochs_axis(tr.size());
        const std::string label = fmt::format("rate {}", c.rates[i]);
        const bool markers = x.size() <= 20;
        chart.series.push_back({.label = has_val ? "" : label, .colour = plot::colour(i), .dashed = true,
                                .markers = markers, .x = x, .y = tr});
        if (has_val)
          chart.series.push_back({.label = label, .colour = plot::colour(i), .markers = markers, .x = x,
                                  .y = mean_curve(runs, val)});
      }
      chart.extra_legend.push_back({.label = "training", .dashed = true});
      if (has_val) chart.extra_legend.push_back({.label = "validation"});
      return chart;
    };
  };
  write_figure("accuracy.svg", "Accuracy by dropout rate",
               curves("accuracy", [](const EpochRecord& e) { return e.accuracy; },
                      [](const EpochRecord& e) { return e.val_accuracy; }));
  write_figure("loss.svg", "Loss by dropout rate",
               curves("categorical cross-entropy", [](const EpochRecord& e) { return e.loss; },
                      [](const EpochRecord& e) { return e.val_loss; }));

  // The generalization gap per epoch.
  write_figure("gap.svg", "Generalization gap (train − validation accuracy)", [&](double mn) {
    plot::Chart gap{.x_label = "epoch", .y_label = "accuracy gap", .integer_x = true, .zero_line = true,
                    .empty_message = "no validation data (--validation-split 0)"};
    if (!has_val) return gap;
    for (std::size_t i = 0; i < c.rates.size(); ++i) {
      const std::vector<double> g = mean_curve(result.runs_of(c.rates[i], mn), [](const EpochRecord& e) { return e.gap(); });
      gap.series.push_back({.label = fmt::format("rate {}", c.rates[i]), .colour = plot::colour(i),
                            .markers = g.size() <= 20, .x = epochs_axis(g.size()), .y = g});
    }
    return gap;
  });

  // Final test accuracy against the rate, one line per max-norm, +- one standard deviation with repeats.
  // Lines of different max-norms are nudged sideways a little so that their error bars do not coincide.
  plot::Chart test{.title = "Test accuracy against dropout rate", .x_label = "dropout rate",
                   .y_label = c.repeats > 1 ? fmt::format("test accuracy (mean ± std, {} seeds)", c.repeats)
                                            : "test accuracy"};
  const auto [lo, hi] = std::minmax_element(c.rates.begin(), c.rates.end());
  test.x_min = *lo - 0.05;
  test.x_max = *hi + 0.05;
  const double nudge = (test.x_max - test.x_min) * 0.008;
  const auto rows = result.summary();
  for (std::size_t m = 0; m < c.max_norms.size(); ++m) {
    const double mn = c.max_norms[m];
    plot::Series s{.label = c.vary_max_norm ? "max-norm " + max_norm_text(mn) : "",
                   .colour = plot::colour(m), .markers = true};
    std::vector<std::pair<double, const SummaryRow*>> points;
    for (const SummaryRow& row : rows)
      if (row.max_norm == mn) points.push_back({row.rate, &row});
    std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    const double shift = (double(m) - double(c.max_norms.size() - 1) / 2.0) * nudge;
    for (const auto& [rate, row] : points) {
      s.x.push_back(rate + shift);
      s.y.push_back(row->test_accuracy.mean);
      s.error.push_back(row->test_accuracy.std);
    }
    test.series.push_back(std::move(s));
  }
  plot::write_file_atomic(c.out / "test_accuracy.svg", plot::render_svg(test));
}

void write_html(const SweepResult& result) {
  const SweepConfig& c = result.config;
  const Table t = summary_table(result);
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<title>dropnet dropout sweep</title>\n<style>\n"
                  "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em;color:#222;max-width:1500px}\n"
                  "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px}\n"
                  "th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
                  "figure{display:inline-block;margin:0.5em}code{background:#f4f4f4;padding:1px 4px}\n"
                  "</style>\n</head>\n<body>\n<h1>Dropout sweep</h1>\n";
  h += fmt::format("<p><code>{}</code></p>\n", html_escape(c.command_line));
  h += fmt::format("<p>Device: {} · data: {} · total time {:.1f} s</p>\n", html_escape(result.device_description),
                   html_escape(result.data_source), result.total_seconds);
  h += "<h2>Results</h2>\n<table>\n<tr>";
  for (const auto& head : t.header) h += "<th>" + html_escape(head) + "</th>";
  h += "</tr>\n";
  for (const auto& row : t.rows) {
    h += "<tr>";
    for (const auto& cell : row) h += "<td class=\"num\">" + html_escape(cell) + "</td>";
    h += "</tr>\n";
  }
  h += "</table>\n";
  for (const auto& note : t.notes) h += "<p>" + html_escape(note) + "</p>\n";
  h += "<h2>Plots</h2>\n";
  for (const char* name : {"accuracy.svg", "loss.svg", "gap.svg", "test_accuracy.svg"})
    h += fmt::format("<figure>\n{}</figure>\n", svg_body(c.out / name));
  h += "<h2>Configuration</h2>\n<table>\n";
  std::vector<std::pair<std::string, std::string>> config = {
      {"rates", [&] { std::string s; for (double r : c.rates) s += (s.empty() ? "" : ", ") + fmt::format("{}", r); return s; }()},
      {"max-norms", [&] { std::string s; for (double m : c.max_norms) s += (s.empty() ? "" : ", ") + max_norm_text(m); return s; }()},
      {"dropout layers", c.dropout_layers_text},
      {"repeats (seeds)", fmt::format("{} ({}..{})", c.repeats, c.seed, c.seed + std::uint64_t(c.repeats) - 1)},
      {"epochs", std::to_string(c.epochs)},
      {"batch size", std::to_string(c.batch_size)},
      {"training / validation / test records", fmt::format("{} / {} / {}", result.train_samples, result.val_samples,
                                                           result.test_samples)},
      {"validation split", fmt::format("{}", c.validation_split)},
      {"optimizer", fmt::format("Adam, learning rate {}", c.learning_rate)},
      {"device", std::string(to_string(c.device))},
  };
  for (const auto& [k, v] : config) h += "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>\n";
  h += "</table>\n<p>Raw data: <a href=\"sweep.csv\">sweep.csv</a> (one row per run and epoch, epochs from 0), "
       "<a href=\"sweep.json\">sweep.json</a> (everything).</p>\n</body>\n</html>\n";
  plot::write_file_atomic(c.out / "report.html", h);
}

}  // namespace dropnet::bench
