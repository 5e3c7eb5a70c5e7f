// test_keras_losses.cpp: Backend::loss (kernels/loss_math.hpp) against goldens that Keras 3 produced
// (tests/reference/goldens_loss/, written by tests/reference/generate_loss_goldens.py: keras 3.15.1 on jax
// 0.10.2, CPU, float32): each loss's mean, per-sample values and gradient w.r.t. the prediction, and the
// metrics compile() attaches ("accuracy" as Keras resolves it, "mae"), on edge inputs (probabilities exactly 0
// and 1, unnormalised rows, logits of magnitude 1e4, soft targets, a rank-3 output). Tolerance: the
// max-normalised relative difference max|dropnet - keras| / max|keras| <= 1e-5.
#include "support/catch.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/dropnet.hpp"
#include "tests/support/npy.hpp"
#include "support/cpu_backend.hpp"

namespace {

using dropnet::Shape;
using dropnet::Tensor;
using dropnet::kernels::LossKind;
using dropnet::kernels::MetricKind;

constexpr double kTol = 1e-5;

npy::Array golden(const std::string& kase, const std::string& key) {
  return npy::load(std::string(DROPNET_SOURCE_DIR) + "/tests/reference/goldens_loss/" + kase + "__" + key + ".npy");
}

Tensor tensor_of(const npy::Array& a) { return Tensor::from_vector(Shape(a.shape.begin(), a.shape.end()), a.as_float()); }

void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double max_abs = 0, ref = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(double(got[i]) - want[i]);
    if (!(e <= max_abs)) max_abs = e;  // NaN-propagating
    ref = std::max(ref, std::abs(want[i]));
  }
  const double rel = ref > 0 ? max_abs / ref : max_abs;
  INFO(what << ": max|diff| " << max_abs << ", max|keras| " << ref << ", rel " << rel);
  CHECK(rel <= kTol);
}

struct Case {
  const char* name;
  LossKind kind;
  bool sparse;
};

struct Result {
  double loss = 0, metric = 0;
  Tensor grad;
};

// The op as the model issues it: rows of the last axis, the gradient scaled by 1 / rows, the sums per sample.
Result run(const Case& c, const Tensor& y, const Tensor& t, MetricKind metric) {
  const std::int64_t n = y.dim(0), cols = y.dim(-1), rows = y.size() / cols;
  const dropnet::backend::LossCall call{c.kind, c.sparse, metric, 1.0f / float(rows), float(n) / float(rows)};
  Result r;
  r.grad = Tensor(y.shape());
  Tensor stats({2});
  dropnet::testing::cpu_backend().loss(y, t, &r.grad, call, stats);
  const auto s = stats.to_vector();
  r.loss = double(s[0]) / double(n);
  r.metric = double(s[1]) / double(n);
  return r;
}

const Case kCases[] = {
    {"cce_probs", LossKind::CategoricalProbs, false},     {"cce_logits", LossKind::CategoricalLogits, false},
    {"scce_probs", LossKind::CategoricalProbs, true},     {"scce_logits", LossKind::CategoricalLogits, true},
    {"cce_probs_soft", LossKind::CategoricalProbs, false}, {"cce_logits_soft", LossKind::CategoricalLogits, false},
    {"cce_logits_rank3", LossKind::CategoricalLogits, false}, {"scce_logits_rank3", LossKind::CategoricalLogits, true},
    {"bce_probs", LossKind::BinaryProbs, false},          {"bce_logits", LossKind::BinaryLogits, false},
    {"bce_probs_unit", LossKind::BinaryProbs, false},     {"mse", LossKind::MeanSquared, false},
    {"mse_rank3", LossKind::MeanSquared, false},
};

}  // namespace

TEST_CASE("Keras parity: losses, their gradients and metrics", "[keras][loss]") {
  for (const Case& c : kCases) {
    DYNAMIC_SECTION(c.name) {
      const Tensor y = tensor_of(golden(c.name, "y_pred")), t = tensor_of(golden(c.name, "y_true"));
      const std::vector<double> metric = golden(c.name, "metric").values;  // [accuracy, mae]
      // "accuracy" as compile() resolves it: binary for a last axis of 1, else (sparse) categorical.
      const MetricKind accuracy = y.dim(-1) == 1 ? MetricKind::BinaryAccuracy : MetricKind::CategoricalAccuracy;
      const Result r = run(c, y, t, accuracy);
      const std::string name = c.name;
      expect_close(name + " loss", {float(r.loss)}, golden(c.name, "loss").values);
      expect_close(name + " grad", r.grad.to_vector(), golden(c.name, "grad").values);
      CHECK(r.metric == Approx(metric[0]).margin(1e-6));
      if (!c.sparse) CHECK(run(c, y, t, MetricKind::MeanAbsolute).metric == Approx(metric[1]).epsilon(1e-5));

      // Each row alone: Keras' per-sample (reduction=None) values, one per row of the last axis.
      const std::int64_t cols = y.dim(-1), rows = y.size() / cols;
      const Tensor y_rows = y.reshaped({rows, cols});
      const Tensor t_rows = c.sparse ? t.reshaped({rows}) : t.reshaped({rows, cols});
      std::vector<float> per_row;
      for (std::int64_t i = 0; i < rows; ++i)
        per_row.push_back(float(run(c, y_rows.rows(i, i + 1), t_rows.rows(i, i + 1), MetricKind::None).loss));
      expect_close(name + " per_sample", per_row, golden(c.name, "per_sample").values);
    }
  }
}

TEST_CASE("sparse targets of shape (N, 1) are the same class indices as (N)", "[loss]") {
  const Case c{"scce_logits", LossKind::CategoricalLogits, true};
  const Tensor y = tensor_of(golden(c.name, "y_pred")), t = tensor_of(golden(c.name, "y_true"));
  const Result flat = run(c, y, t, MetricKind::CategoricalAccuracy);
  const Result column = run(c, y, t.reshaped({t.dim(0), 1}), MetricKind::CategoricalAccuracy);
  CHECK(flat.loss == column.loss);
  CHECK(flat.metric == column.metric);
  CHECK(flat.grad.to_vector() == column.grad.to_vector());
}

TEST_CASE("the loss op rejects targets and gradients of the wrong size", "[loss]") {
  auto& be = dropnet::testing::cpu_backend();
  const Tensor y({4, 3});
  Tensor stats({2}), dy({4, 3});
  const dropnet::backend::LossCall dense{LossKind::MeanSquared, false, MetricKind::None, 0.25f, 1.0f};
  const dropnet::backend::LossCall sparse{LossKind::CategoricalLogits, true, MetricKind::None, 0.25f, 1.0f};
  CHECK_THROWS_AS(be.loss(y, Tensor({4}), &dy, dense, stats), dropnet::InvalidArgument);
  CHECK_THROWS_AS(be.loss(y, Tensor({4, 3}), &dy, sparse, stats), dropnet::InvalidArgument);
  Tensor small_dy({4, 2}), three({3});
  CHECK_THROWS_AS(be.loss(y, Tensor({4, 3}), &small_dy, dense, stats), dropnet::InvalidArgument);
  CHECK_THROWS_AS(be.loss(y, Tensor({4, 3}), nullptr, dense, three), dropnet::InvalidArgument);
}
