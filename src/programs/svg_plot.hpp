// svg_plot.hpp: a small, dependency-free SVG line-chart writer (the standard library and fmt only), in
// dropnet_program_support, so that dropnet-bench and the dropnet CLI draw training curves with one writer.
//
//   dropnet::plot::write_history_plot("run.svg", history, "seed model, dropout 0.5");
//
// The SVGs are self-contained (no scripts, fonts or external references), so a browser, rsvg-convert or
// an <img> tag shows them as they are, and report.html can inline them.
#pragma once

#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace dropnet {
struct History;
}

namespace dropnet::plot {

// The Okabe-Ito palette, reordered so that the first colours contrast most on white; yellow is last.
// Distinguishable with the common forms of colour blindness.
inline const std::vector<std::string>& palette() {
  static const std::vector<std::string> colours = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                   "#E69F00", "#56B4E9", "#000000", "#F0E442"};
  return colours;
}
inline const std::string& colour(std::size_t i) { return palette()[i % palette().size()]; }

struct Series {
  std::string label;          // legend text; empty keeps the series out of the legend
  std::string colour = "#0072B2";
  bool dashed = false;
  bool markers = false;       // a dot at each point
  std::vector<double> x, y;   // non-finite y values break the line
  std::vector<double> error;  // optional +- half-widths drawn as error bars (same length as y)
  std::vector<double> band;   // optional +- half-widths drawn as a shaded band around the line (e.g. 1 std)
};

// A legend row that is not a series: e.g. a grey dashed line saying "train".
struct LegendKey {
  std::string label;
  std::string colour = "#555555";
  bool dashed = false;
  bool markers = false;
};

struct Chart {
  std::string title;
  std::string x_label, y_label;
  std::vector<Series> series;
  std::vector<LegendKey> extra_legend;  // drawn after the series' entries
  bool integer_x = false;               // ticks on whole numbers only (epochs)
  // Fixed axis ranges; unset (NaN) means "fit the data, with a little headroom".
  double y_min = std::numeric_limits<double>::quiet_NaN();
  double y_max = std::numeric_limits<double>::quiet_NaN();
  double x_min = std::numeric_limits<double>::quiet_NaN();
  double x_max = std::numeric_limits<double>::quiet_NaN();
  // Values the y range must include besides the data (give every panel of a figure the same values to
  // share one y scale).
  std::vector<double> y_include;
  bool zero_line = false;               // a thin line at y = 0 when it is inside the range (gaps)
  std::string empty_message = "no data";
};

// One chart as a complete SVG document of width x height pixels (legend at the right, outside the plot).
std::string render_svg(const Chart& chart, int width = 720, int height = 420);
// Several charts side by side in one SVG under a common title (empty: none); each panel is
// panel_width x panel_height.
std::string render_svg(const std::vector<Chart>& panels, const std::string& title, int panel_width = 600,
                       int panel_height = 400);

// Accuracy and loss against epoch (training dashed, validation solid) from a History returned by fit,
// side by side in one SVG, written atomically (io::write_file_atomic). `title` may be empty.
std::string render_history(const History& history, const std::string& title = "");
void write_history_plot(const std::filesystem::path& path, const History& history, const std::string& title = "");

// "Nice" tick positions covering [lo, hi] (about `target` of them), at 1, 2, 2.5 or 5 x 10^k steps.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace dropnet::plot
