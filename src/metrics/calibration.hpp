// calibration.hpp: classification metrics of predicted probabilities: NLL, Brier score, expected
// calibration error, predictive entropy, mutual information (Monte Carlo dropout) and the AUROC of a
// score for telling misclassified records from correct ones. Standard library only, so that the dropnet
// CLI (which links the public shared library) and dropnet-bench both link it (target dropnet_metrics).
//
// Contract, for n records and k classes, probabilities row-major (n x k), labels in [0, k):
//   accuracy  fraction of records whose arg-max (first on ties) equals the label
//   nll       mean of -ln(max(p[label], kProbFloor)), in nats
//   brier     mean over records of sum_c (p_c - [c == label])^2 (multi-class form, range [0, 2])
//   ece       15 (or `bins`) equal-width confidence bins over [0, 1]; confidence = max_c p_c; bin b is
//             [b / bins, (b + 1) / bins) (edges as doubles), except that the last holds 1.0 too;
//             ECE = sum_b (n_b / n) |acc_b - conf_b| (L1). Guo et al. (2017) use (lo, hi]; torchmetrics
//             gives 1.0 a bin of its own: the three differ only for confidences on an edge (tested).
//             A probability outside [0, 1] or NaN throws std::invalid_argument.
//   entropy   H(p) = -sum_c p_c ln p_c (nats; 0 ln 0 = 0)
//   mutual information (BALD) = H(mean_t p_t) - mean_t H(p_t) over T stochastic passes
//   AUROC     P(score of a positive > score of a negative) + 0.5 P(tie): the Mann-Whitney statistic
//             U / (n_pos n_neg), i.e. the area under the ROC curve with ties counted half; NaN when
//             either class is empty
// Every function computes in double and throws std::invalid_argument for inconsistent sizes or labels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dropnet::metrics {

inline constexpr double kProbFloor = 1e-12;  // NLL clamps p[label] here (a float softmax can underflow to 0)
inline constexpr int kDefaultEceBins = 15;

double accuracy(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k);
double nll(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k);
double brier(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k);
double ece(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k,
           int bins = kDefaultEceBins);

// One reliability-diagram bin: [lo, hi), its record count, mean confidence and accuracy (NaN when empty).
struct ReliabilityBin {
  double lo = 0, hi = 0;
  std::int64_t count = 0;
  double confidence = 0, accuracy = 0;
};
std::vector<ReliabilityBin> reliability(std::span<const double> probs, std::span<const std::int32_t> labels,
                                        std::size_t k, int bins = kDefaultEceBins);

// Entropy of each row (n values).
std::vector<double> entropy(std::span<const double> probs, std::size_t k);

// AUROC of `score` for separating positive[i] == true from false (see the contract above).
double auroc(std::span<const double> score, const std::vector<bool>& positive);

// Accumulates T stochastic passes (each n x k probabilities) for Monte Carlo dropout.
class McAccumulator {
 public:
  McAccumulator(std::size_t n, std::size_t k);
  void add(std::span<const float> probs);   // one pass
  void add(std::span<const double> probs);
  std::size_t passes() const { return passes_; }
  std::vector<double> mean_probs() const;  // the predictive distribution, mean over passes (n x k)
  // Per record: H(mean p) - mean_t H(p_t).
  std::vector<double> mutual_information() const;

 private:
  template <typename T> void add_impl(std::span<const T> probs);
  std::size_t n_, k_, passes_ = 0;
  std::vector<double> sum_, sum_entropy_;
};

// Everything a study or `dropnet evaluate` reports for one set of predictions.
struct PredictionMetrics {
  double accuracy = 0, nll = 0, brier = 0, ece = 0;
  double mean_entropy = 0;
  double mean_mutual_information = 0;  // NaN for single-pass (deterministic) predictions
  double auroc_entropy = 0;            // AUROC of entropy for misclassified (positive) vs correct
  std::vector<ReliabilityBin> bins;
};
// `mi` empty: single-pass predictions (mutual information NaN).
PredictionMetrics summarize(std::span<const double> probs, std::span<const std::int32_t> labels, std::size_t k,
                            std::span<const double> mi = {}, int bins = kDefaultEceBins);

}  // namespace dropnet::metrics
