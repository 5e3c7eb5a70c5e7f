// calibration.cpp: see calibration.hpp for the definitions each function implements.
#include "metrics/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

namespace dropnet::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::size_t check(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k) {
  if (k == 0 || probs.size() != labels.size() * k)
    throw std::invalid_argument("metrics: " + std::to_string(probs.size()) + " probabilities for " +
                                std::to_string(labels.size()) + " labels and " + std::to_string(k) + " classes");
  if (labels.empty()) throw std::invalid_argument("metrics: no records");
  for (std::int32_t l : labels)
    if (l < 0 || std::size_t(l) >= k)
      throw std::invalid_argument("metrics: label " + std::to_string(l) + " outside [0, " + std::to_string(k) + ")");
  return labels.size();
}

std::size_t argmax(const double* row, std::size_t k) { return std::size_t(std::max_element(row, row + k) - row); }

double row_entropy(const double* p, std::size_t k) {
  double h = 0;
  for (std::size_t c = 0; c < k; ++c)
    if (p[c] > 0) h -= p[c] * std::log(p[c]);
  return h;
}

}  // namespace

double accuracy(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k) {
  const std::size_t n = check(probs, labels, k);
  std::size_t right = 0;
  for (std::size_t i = 0; i < n; ++i) right += argmax(&probs[i * k], k) == std::size_t(labels[i]);
  return double(right) / double(n);
}

double nll(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k) {
  const std::size_t n = check(probs, labels, k);
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum -= std::log(std::max(probs[i * k + std::size_t(labels[i])], kProbFloor));
  return sum / double(n);
}

double brier(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k) {
  const std::size_t n = check(probs, labels, k);
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < k; ++c) {
      const double d = probs[i * k + c] - (c == std::size_t(labels[i]) ? 1.0 : 0.0);
      sum += d * d;
    }
  return sum / double(n);
}

std::vector<ReliabilityBin> reliability(std::span<const double> probs, std::span<const std::int32_t> labels,
                                        std::size_t k, int bins) {
  const std::size_t n = check(probs, labels, k);
  if (bins < 1) throw std::invalid_argument("metrics: ECE needs at least one bin");
  std::vector<ReliabilityBin> out(static_cast<std::size_t>(bins));
  std::vector<double> conf_sum(out.size(), 0.0), right(out.size(), 0.0);
  for (std::size_t b = 0; b < out.size(); ++b) out[b].lo = double(b) / bins, out[b].hi = double(b + 1) / bins;
  for (std::size_t i = 0; i < n; ++i) {
    const double* row = &probs[i * k];
    for (std::size_t c = 0; c < k; ++c)
      if (!(row[c] >= 0.0 && row[c] <= 1.0))  // NaN fails both
        throw std::invalid_argument("metrics: record " + std::to_string(i) + " has probability " +
                                    std::to_string(row[c]) + " for class " + std::to_string(c) +
                                    "; probabilities must be in [0, 1]");
    const std::size_t pred = argmax(row, k);
    const double conf = row[pred];
    // The last bin whose lower edge (exactly the double b / bins that ReliabilityBin::lo reports) is <= conf:
    // [lo, hi), with 1.0 in the last bin. Not floor(conf * bins), whose rounding can move an edge.
    std::size_t b = out.size() - 1;
    while (b > 0 && conf < out[b].lo) --b;
    ++out[b].count;
    conf_sum[b] += conf;
    right[b] += pred == std::size_t(labels[i]);
  }
  for (std::size_t b = 0; b < out.size(); ++b) {
    out[b].confidence = out[b].count ? conf_sum[b] / double(out[b].count) : kNaN;
    out[b].accuracy = out[b].count ? right[b] / double(out[b].count) : kNaN;
  }
  return out;
}

double ece(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k, int bins) {
  double sum = 0;
  for (const ReliabilityBin& b : reliability(probs, labels, k, bins))
    if (b.count) sum += double(b.count) * std::abs(b.accuracy - b.confidence);
  return sum / double(labels.size());
}

std::vector<double> entropy(std::span<const double> probs, std::size_t k) {
  if (k == 0 || probs.size() % k) throw std::invalid_argument("metrics: probabilities are not rows of k classes");
  std::vector<double> h(probs.size() / k);
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = row_entropy(&probs[i * k], k);
  return h;
}

double auroc(std::span<const double> score, const std::vector<bool>& positive) {
  if (score.size() != positive.size()) throw std::invalid_argument("metrics: AUROC scores and labels differ in size");
  const std::size_t n = score.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
  // Mid-ranks (1-based), ties averaged; U = sum of positives' ranks - n_pos (n_pos + 1) / 2.
  double rank_sum = 0;
  std::size_t n_pos = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && score[order[j]] == score[order[i]]) ++j;
    const double mid = (double(i + 1) + double(j)) / 2.0;
    for (std::size_t m = i; m < j; ++m)
      if (positive[order[m]]) rank_sum += mid, ++n_pos;
    i = j;
  }
  const std::size_t n_neg = n - n_pos;
  if (n_pos == 0 || n_neg == 0) return kNaN;
  const double u = rank_sum - double(n_pos) * double(n_pos + 1) / 2.0;
  return u / (double(n_pos) * double(n_neg));
}

McAccumulator::McAccumulator(std::size_t n, std::size_t k) : n_(n), k_(k), sum_(n * k, 0.0), sum_entropy_(n, 0.0) {}

template <typename T>
void McAccumulator::add_impl(std::span<const T> probs) {
  if (probs.size() != n_ * k_) throw std::invalid_argument("metrics: a Monte Carlo pass has the wrong size");
  std::vector<double> row(k_);
  for (std::size_t i = 0; i < n_; ++i) {
    for (std::size_t c = 0; c < k_; ++c) row[c] = double(probs[i * k_ + c]), sum_[i * k_ + c] += row[c];
    sum_entropy_[i] += row_entropy(row.data(), k_);
  }
  ++passes_;
}
void McAccumulator::add(std::span<const float> probs) { add_impl(probs); }
void McAccumulator::add(std::span<const double> probs) { add_impl(probs); }

std::vector<double> McAccumulator::mean_probs() const {
  if (passes_ == 0) throw std::invalid_argument("metrics: no Monte Carlo passes");
  std::vector<double> m(sum_.size());
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = sum_[i] / double(passes_);
  return m;
}

std::vector<double> McAccumulator::mutual_information() const {
  const std::vector<double> m = mean_probs();
  std::vector<double> mi(n_);
  for (std::size_t i = 0; i < n_; ++i) mi[i] = row_entropy(&m[i * k_], k_) - sum_entropy_[i] / double(passes_);
  return mi;
}

PredictionMetrics summarize(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k,
                            std::span<const double> mi, int bins) {
  const std::size_t n = check(probs, labels, k);
  PredictionMetrics m;
  m.accuracy = accuracy(probs, labels, k);
  m.nll = nll(probs, labels, k);
  m.brier = brier(probs, labels, k);
  m.bins = reliability(probs, labels, k, bins);
  m.ece = ece(probs, labels, k, bins);
  const std::vector<double> h = entropy(probs, k);
  m.mean_entropy = std::accumulate(h.begin(), h.end(), 0.0) / double(n);
  if (mi.empty()) {
    m.mean_mutual_information = kNaN;
  } else {
    if (mi.size() != n) throw std::invalid_argument("metrics: one mutual information per record expected");
    m.mean_mutual_information = std::accumulate(mi.begin(), mi.end(), 0.0) / double(n);
  }
  std::vector<bool> wrong(n);
  for (std::size_t i = 0; i < n; ++i) wrong[i] = argmax(&probs[i * k], k) != std::size_t(labels[i]);
  m.auroc_entropy = auroc(h, wrong);
  return m;
}

}  // namespace dropnet::metrics
