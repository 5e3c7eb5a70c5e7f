// progress.cpp: the progress bar and Keras' number formatting.
#include "model/progress.hpp"

#include <cmath>

#include <fmt/format.h>
#include <unistd.h>

namespace dropnet {

std::string format_metric(double v) {
  return std::abs(v) > 1e-3 || v == 0.0 ? fmt::format("{:.4f}", v) : fmt::format("{:.4e}", v);
}

std::string format_logs(const Logs& logs) {
  std::string s;
  for (const auto& [k, v] : logs) s += fmt::format(" - {}: {}", k, format_metric(v));
  return s;
}

std::string format_duration(double seconds) {
  const auto t = static_cast<long long>(std::llround(seconds));
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, (t % 3600) / 60, t % 60);
  if (t >= 60) return fmt::format("{}:{:02}", t / 60, t % 60);
  return fmt::format("{}s", t);
}

ProgressBar::ProgressBar(std::FILE* out, int verbose, std::int64_t steps)
    : out_(out), verbose_(verbose), steps_(steps), dynamic_(out != nullptr && isatty(fileno(out))),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

std::string ProgressBar::bar(std::int64_t done) const {
  constexpr int width = 20;
  const double frac = steps_ ? double(done) / double(steps_) : 1.0;
  const int full = static_cast<int>(frac * width);
  std::string s;
  for (int i = 0; i < width; ++i) s += i < full ? "\u2501" : (i == full ? "\u257a" : " ");
  return s;
}

std::string ProgressBar::step_time(double seconds, std::int64_t done) const {
  const double per = done ? seconds / double(done) : 0.0;
  if (per >= 1.0) return fmt::format("{:.0f}s/step", per);
  if (per >= 1e-3) return fmt::format("{:.0f}ms/step", per * 1e3);
  return fmt::format("{:.0f}us/step", per * 1e6);
}

bool ProgressBar::due(std::int64_t done) const {
  if (verbose_ != 1 || !dynamic_ || out_ == nullptr) return false;
  // Redraw at most 20 times a second, and always on the last step.
  return done >= steps_ || std::chrono::steady_clock::now() - last_draw_ >= std::chrono::milliseconds(50);
}

void ProgressBar::update(std::int64_t done, const Logs& logs) {
  if (!due(done)) return;
  const auto now = std::chrono::steady_clock::now();
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = done ? elapsed / double(done) * double(steps_ - done) : 0.0;
  const int digits = static_cast<int>(std::to_string(steps_).size());
  fmt::print(out_, "\r{:>{}}/{} {} ETA: {} {}{}\x1b[K", done, digits, steps_, bar(done), format_duration(eta),
             step_time(elapsed, done), format_logs(logs));
  std::fflush(out_);
}

void ProgressBar::finish(const Logs& logs) {
  if (verbose_ == 0 || out_ == nullptr) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (verbose_ == 1) {
    const int digits = static_cast<int>(std::to_string(steps_).size());
    fmt::print(out_, "{}{:>{}}/{} {} {} {}{}{}\n", dynamic_ ? "\r" : "", steps_, digits, steps_, bar(steps_),
               format_duration(elapsed), step_time(elapsed, steps_), format_logs(logs), dynamic_ ? "\x1b[K" : "");
  } else {
    fmt::print(out_, "{}/{} - {} - {}{}\n", steps_, steps_, format_duration(elapsed), step_time(elapsed, steps_),
               format_logs(logs));
  }
  std::fflush(out_);
}

}  // namespace dropnet
