// svg_plot.cpp: the SVG line-chart writer (see svg_plot.hpp). Plain string building: every element is
// written with explicit coordinates so the output looks the same in browsers and in rsvg-convert.
#include "programs/svg_plot.hpp"

#include "io/atomic_file.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include <unistd.h>

#include <fmt/format.h>

#include "dropnet/model.hpp"

namespace dropnet::plot {
namespace {

constexpr const char* kFont = "DejaVu Sans, Arial, Helvetica, sans-serif";
constexpr double kCharWidth = 0.58;  // average glyph width / font size for the fonts above

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Decimals needed to print ticks `step` apart without two looking the same.
int tick_decimals(double step) {
  int d = 0;
  while (d < 6 && std::fabs(step * std::pow(10.0, d) - std::round(step * std::pow(10.0, d))) > 1e-6) ++d;
  return d;
}

std::string tick_label(double v, int decimals) {
  if (std::fabs(v) < 1e-12) v = 0.0;  // no "-0.00"
  return fmt::format("{:.{}f}", v, decimals);
}

struct Range {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
};

// Fits [lo, hi] around the data (or the chart's fixed bounds), rounded out to whole tick steps.
Range fit_range(double data_lo, double data_hi, double fixed_lo, double fixed_hi, bool integer, bool pad,
                int target) {
  double lo = std::isnan(fixed_lo) ? data_lo : fixed_lo;
  double hi = std::isnan(fixed_hi) ? data_hi : fixed_hi;
  if (!(hi > lo)) {  // one value (or none): open a window around it
    const double half = integer ? 0.5 : std::max(std::fabs(lo) * 0.1, 0.05);
    lo -= half;
    hi += half;
  } else if (pad) {
    const double extra = (hi - lo) * 0.04;
    if (std::isnan(fixed_lo)) lo -= (data_lo >= 0 && data_lo - extra < 0) ? data_lo : extra;
    if (std::isnan(fixed_hi)) hi += extra;
  }
  Range r;
  r.ticks = nice_ticks(lo, hi, target);
  if (integer) {
    std::erase_if(r.ticks, [](double t) { return std::fabs(t - std::round(t)) > 1e-9; });
    if (r.ticks.size() < 2) r.ticks = {std::ceil(lo), std::floor(hi)};
  }
  // Extend to the enclosing ticks when free, so the frame starts and ends on a labelled value; the step
  // stays the one chosen above (re-choosing it for the wider range could double it).
  if (r.ticks.size() >= 2 && !integer) {
    const double step = r.ticks[1] - r.ticks[0];
    if (std::isnan(fixed_lo)) lo = std::min(lo, std::floor(lo / step + 1e-9) * step);
    if (std::isnan(fixed_hi)) hi = std::max(hi, std::ceil(hi / step - 1e-9) * step);
    r.ticks.clear();
    for (double t = std::ceil(lo / step - 1e-9); t * step <= hi + step * 1e-9; t += 1) r.ticks.push_back(t * step);
  }
  std::erase_if(r.ticks, [&](double t) { return t < lo - 1e-9 || t > hi + 1e-9; });
  r.lo = lo;
  r.hi = hi;
  return r;
}

std::string next_id() {
  static std::atomic<int> counter{0};
  return fmt::format("dnplot{}", counter.fetch_add(1));
}

void line_sample(std::string& out, double x, double y, const std::string& colour, bool dashed, bool markers) {
  out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2.2"{}/>)",
                     x, y, x + 28, y, colour, dashed ? R"( stroke-dasharray="6 4")" : "");
  if (markers) out += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3.5" fill="{}"/>)", x + 14, y, colour);
  out += "\n";
}

// Draws `chart` into the box (ox, oy, w, h) of an SVG being built in `out`.
void draw_chart(std::string& out, const Chart& chart, double ox, double oy, double w, double h) {
  // Legend entries and the width they need (the legend sits right of the plot, never over the data).
  struct Entry { std::string label, colour; bool dashed, markers; };
  std::vector<Entry> legend;
  for (const Series& s : chart.series)
    if (!s.label.empty()) legend.push_back({s.label, s.colour, s.dashed, s.markers});
  for (const LegendKey& k : chart.extra_legend) legend.push_back({k.label, k.colour, k.dashed, k.markers});
  std::size_t longest = 0;
  for (const Entry& e : legend) longest = std::max(longest, e.label.size());
  const double legend_w = legend.empty() ? 0.0 : std::min(w * 0.4, 48.0 + double(longest) * 12.0 * kCharWidth);

  const double left = ox + 70, top = oy + 44, right = ox + w - 16 - legend_w, bottom = oy + h - 52;
  const double pw = right - left, ph = bottom - top;

  out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="16" font-weight="bold" text-anchor="middle">{}</text>)"
                     "\n", ox + w / 2, oy + 24, escape(chart.title));

  // Data extents (error bars included).
  double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
  for (const Series& s : chart.series) {
    for (std::size_t i = 0; i < s.y.size() && i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      const double e = std::max(i < s.error.size() && std::isfinite(s.error[i]) ? s.error[i] : 0.0,
                                i < s.band.size() && std::isfinite(s.band[i]) ? s.band[i] : 0.0);
      xl = std::min(xl, s.x[i]), xh = std::max(xh, s.x[i]);
      yl = std::min(yl, s.y[i] - e), yh = std::max(yh, s.y[i] + e);
    }
  }
  const bool has_data = std::isfinite(xl);
  for (double v : chart.y_include)
    if (has_data && std::isfinite(v)) yl = std::min(yl, v), yh = std::max(yh, v);
  if (!has_data) xl = 0, xh = 1, yl = 0, yh = 1;
  const Range xr = fit_range(xl, xh, chart.x_min, chart.x_max, chart.integer_x, !chart.integer_x, 8);
  const Range yr = fit_range(yl, yh, chart.y_min, chart.y_max, false, true, 6);
  auto px = [&](double v) { return left + (v - xr.lo) / (xr.hi - xr.lo) * pw; };
  auto py = [&](double v) { return bottom - (v - yr.lo) / (yr.hi - yr.lo) * ph; };

  // Grid, ticks and tick labels.
  const int xd = xr.ticks.size() >= 2 ? tick_decimals(xr.ticks[1] - xr.ticks[0]) : 0;
  const int yd = yr.ticks.size() >= 2 ? tick_decimals(yr.ticks[1] - yr.ticks[0]) : 2;
  for (double t : has_data ? yr.ticks : std::vector<double>{}) {
    const double y = py(t);
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#e4e4e4"/>)"
                       R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#333"/>)"
                       R"(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="end">{}</text>)" "\n",
                       left, y, right, y, left - 5, y, left, y, left - 8, y + 4, tick_label(t, yd));
  }
  for (double t : has_data ? xr.ticks : std::vector<double>{}) {
    const double x = px(t);
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#e4e4e4"/>)"
                       R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#333"/>)"
                       R"(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="middle">{}</text>)" "\n",
                       x, top, x, bottom, x, bottom, x, bottom + 5, x, bottom + 19, tick_label(t, xd));
  }
  if (chart.zero_line && yr.lo < 0 && yr.hi > 0)
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#888" stroke-width="1.2"/>)"
                       "\n", left, py(0), right, py(0));
  out += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#333"/>)"
                     "\n", left, top, pw, ph);

  // Axis labels: x centred under the ticks, y rotated along the left edge.
  out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="13" text-anchor="middle">{}</text>)" "\n",
                     left + pw / 2, bottom + 40, escape(chart.x_label));
  out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="13" text-anchor="middle" )"
                     R"svg(transform="rotate(-90 {:.1f} {:.1f})">{}</text>)svg" "\n",
                     ox + 18, top + ph / 2, ox + 18, top + ph / 2, escape(chart.y_label));

  if (!has_data) {
    out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="14" fill="#777" text-anchor="middle">{}</text>)"
                       "\n", left + pw / 2, top + ph / 2, escape(chart.empty_message));
  }

  // The data, clipped to the plot frame (fixed ranges may cut lines).
  const std::string clip = next_id();
  out += fmt::format(R"(<clipPath id="{}"><rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"/></clipPath>)"
                     "\n<g clip-path=\"url(#{})\">\n", clip, left - 4, top - 4, pw + 8, ph + 8, clip);
  for (const Series& s : chart.series) {  // shaded bands first, under every line
    std::vector<std::pair<double, double>> upper, lower;
    auto flush = [&] {
      if (upper.size() >= 2) {
        std::string poly;
        for (const auto& [x, y] : upper) poly += fmt::format("{:.1f},{:.1f} ", x, y);
        for (auto it = lower.rbegin(); it != lower.rend(); ++it) poly += fmt::format("{:.1f},{:.1f} ", it->first, it->second);
        out += fmt::format(R"(<polygon points="{}" fill="{}" fill-opacity="0.15" stroke="none"/>)" "\n", poly, s.colour);
      }
      upper.clear(), lower.clear();
    };
    for (std::size_t i = 0; i < s.y.size() && i < s.x.size() && i < s.band.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i]) || !std::isfinite(s.band[i])) { flush(); continue; }
      upper.push_back({px(s.x[i]), py(s.y[i] + s.band[i])});
      lower.push_back({px(s.x[i]), py(s.y[i] - s.band[i])});
    }
    flush();
  }
  for (const Series& s : chart.series) {
    std::string path;
    bool pen_down = false;
    for (std::size_t i = 0; i < s.y.size() && i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) { pen_down = false; continue; }
      path += fmt::format("{}{:.1f} {:.1f} ", pen_down ? "L" : "M", px(s.x[i]), py(s.y[i]));
      pen_down = true;
    }
    if (!path.empty())
      out += fmt::format(R"(<path d="{}" fill="none" stroke="{}" stroke-width="2.2" stroke-linejoin="round"{}/>)"
                         "\n", path, s.colour, s.dashed ? R"( stroke-dasharray="6 4")" : "");
    for (std::size_t i = 0; i < s.y.size() && i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      const double x = px(s.x[i]);
      if (i < s.error.size() && std::isfinite(s.error[i]) && s.error[i] > 0) {
        const double y0 = py(s.y[i] - s.error[i]), y1 = py(s.y[i] + s.error[i]);
        out += fmt::format(R"(<path d="M{0:.1f} {1:.1f} L{0:.1f} {2:.1f} M{3:.1f} {1:.1f} L{4:.1f} {1:.1f} )"
                           R"(M{3:.1f} {2:.1f} L{4:.1f} {2:.1f}" stroke="{5}" stroke-width="1.5" fill="none"/>)" "\n",
                           x, y0, y1, x - 5, x + 5, s.colour);
      }
      if (s.markers)
        out += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3.5" fill="{}"/>)" "\n", x, py(s.y[i]), s.colour);
    }
  }
  out += "</g>\n";

  // Legend: a framed column right of the plot, top aligned.
  if (!legend.empty()) {
    const double lx = right + 12, ly = top;
    out += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#fff" stroke="#ccc"/>)"
                       "\n", lx, ly, legend_w - 4, 10.0 + 20.0 * double(legend.size()));
    for (std::size_t i = 0; i < legend.size(); ++i) {
      const double y = ly + 17 + 20.0 * double(i);
      line_sample(out, lx + 8, y - 4, legend[i].colour, legend[i].dashed, legend[i].markers);
      out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12">{}</text>)" "\n", lx + 42, y,
                         escape(legend[i].label));
    }
  }
}

std::string svg_open(int width, int height) {
  return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     R"(<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" )"
                     R"(font-family="{2}">)" "\n"
                     R"(<rect width="{0}" height="{1}" fill="#ffffff"/>)" "\n", width, height, kFont);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(target - 1, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) { step = m * mag; break; }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::round(t / step) * step);
  return ticks;
}

std::string render_svg(const Chart& chart, int width, int height) {
  std::string out = svg_open(width, height);
  draw_chart(out, chart, 0, 0, width, height);
  return out + "</svg>\n";
}

std::string render_svg(const std::vector<Chart>& panels, const std::string& title, int panel_width,
                       int panel_height) {
  const int head = title.empty() ? 0 : 30;
  const int width = panel_width * std::max<int>(1, int(panels.size()));
  std::string out = svg_open(width, panel_height + head);
  if (!title.empty())
    out += fmt::format(R"(<text x="{:.1f}" y="22" font-size="17" font-weight="bold" text-anchor="middle">{}</text>)"
                       "\n", width / 2.0, escape(title));
  for (std::size_t i = 0; i < panels.size(); ++i)
    draw_chart(out, panels[i], double(i) * panel_width, head, panel_width, panel_height);
  return out + "</svg>\n";
}

std::string render_history(const History& history, const std::string& title) {
  auto curve = [&](const std::string& key, const std::string& label, const std::string& colour, bool dashed) {
    Series s{.label = label, .colour = colour, .dashed = dashed, .markers = history.epoch.size() <= 30};
    const auto it = history.history.find(key);
    if (it == history.history.end()) return s;
    for (std::size_t i = 0; i < it->second.size() && i < history.epoch.size(); ++i) {
      s.x.push_back(history.epoch[i] + 1.0);  // Keras counts epochs from 1 when it prints them
      s.y.push_back(it->second[i]);
    }
    return s;
  };
  std::vector<Chart> panels(2);
  for (int p = 0; p < 2; ++p) {
    const std::string metric = p == 0 ? "accuracy" : "loss";
    Chart& c = panels[std::size_t(p)];
    c.title = p == 0 ? "Accuracy" : "Loss";
    c.x_label = "epoch";
    c.y_label = p == 0 ? "accuracy" : "categorical cross-entropy";
    c.integer_x = true;
    c.series.push_back(curve(metric, "training", colour(0), true));
    if (history.history.count("val_" + metric)) c.series.push_back(curve("val_" + metric, "validation", colour(1), false));
  }
  return render_svg(panels, title, 560, 400);
}

void write_history_plot(const std::filesystem::path& path, const History& history, const std::string& title) {
  io::write_file_atomic(path, render_history(history, title));
}

}  // namespace dropnet::plot
