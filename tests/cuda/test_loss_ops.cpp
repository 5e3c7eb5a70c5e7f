// Backend::loss (Keras' losses and metrics, kernels/loss_math.hpp) on dropnet's CUDA kernel against the CPU
// backend, for every loss, both target forms and every metric: close on a GPU, the same bits on the
// emulated device (same expressions, same order, the host's expf/logf/log1pf).
#include <string>
#include <vector>

#include "cuda_test_support.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;
using kernels::LossKind;
using kernels::MetricKind;

namespace {

// Targets for `kind`: class indices (sparse), one-hot rows with a few soft ones (categorical), values in
// [0, 1] with exact 0 and 1 (binary) or any values (mean squared error).
Tensor targets(LossKind kind, bool sparse, std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  if (sparse) {
    std::vector<float> t(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) t[std::size_t(r)] = float((r * 7 + 3) % cols);
    return Tensor::from_vector({rows}, t);
  }
  if (kind == LossKind::MeanSquared) return host_random({rows, cols}, seed, -2.0, 2.0);
  if (kind == LossKind::BinaryLogits || kind == LossKind::BinaryProbs) {
    std::vector<float> t = host_random({rows, cols}, seed, 0.0, 1.0).to_vector();
    for (std::size_t i = 0; i < t.size(); i += 3) t[i] = (i / 3) % 2 ? 1.0f : 0.0f;
    return Tensor::from_vector({rows, cols}, t);
  }
  std::vector<float> t(static_cast<std::size_t>(rows * cols), 0.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    if (r % 5 == 4 && cols > 1) {
      t[std::size_t(r * cols)] = 0.25f;
      t[std::size_t(r * cols + 1)] = 0.75f;
    } else {
      t[std::size_t(r * cols + (r * 7) % cols)] = 1.0f;
    }
  }
  return Tensor::from_vector({rows, cols}, t);
}

// Predictions for `kind`: logits up to +-30 with a few +-1e4, or probabilities with exact 0 and 1.
Tensor predictions(LossKind kind, std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  const bool probs = kind == LossKind::CategoricalProbs || kind == LossKind::BinaryProbs;
  std::vector<float> y = host_random({rows, cols}, seed, probs ? 0.0 : -30.0, probs ? 1.0 : 30.0).to_vector();
  for (std::size_t i = 5; i < y.size(); i += 11) y[i] = probs ? float(i % 2) : (i % 2 ? 1e4f : -1e4f);
  return Tensor::from_vector({rows, cols}, y);
}

void check_loss(LossKind kind, bool sparse, MetricKind metric, std::int64_t rows, std::int64_t cols) {
  const std::string what = "loss kind " + std::to_string(int(kind)) + (sparse ? " sparse" : "") + " metric " +
                           std::to_string(int(metric)) + " (" + std::to_string(rows) + ", " + std::to_string(cols) +
                           ")";
  const Tensor y = predictions(kind, rows, cols, 70 + rows), t = targets(kind, sparse, rows, cols, 90 + rows);
  const backend::LossCall call{kind, sparse, metric, 1.0f / float(rows), 0.5f};
  Tensor dy_ref({rows, cols}), stats_ref = Tensor::from_vector({2}, {0.5f, 2.0f});
  cpu().loss(y, t, &dy_ref, call, stats_ref);

  Tensor dy = device_sentinel({rows, cols});
  Tensor stats = Tensor::from_vector({2}, {0.5f, 2.0f}).to(Device::CUDA);  // the op adds to stats
  gpu().loss(y.to(Device::CUDA), t.to(Device::CUDA), &dy, call, stats);
  expect_close(dy, dy_ref, what + " dy");
  expect_close(stats, stats_ref, what + " stats");
#if defined(DROPNET_CUDA_EMULATION)
  CHECK(host_values(dy) == dy_ref.to_vector());
  CHECK(host_values(stats) == stats_ref.to_vector());
#endif
  Tensor stats2 = Tensor::from_vector({2}, {0.5f, 2.0f}).to(Device::CUDA);
  gpu().loss(y.to(Device::CUDA), t.to(Device::CUDA), nullptr, call, stats2);  // evaluation: no gradient
  CHECK(host_values(stats2) == host_values(stats));
}

}  // namespace

TEST_CASE("Keras' losses and metrics on the GPU match the CPU backend", "[cuda][loss]") {
  const std::vector<std::pair<std::int64_t, std::int64_t>> sizes{{1, 2}, {7, 10}, {250, 10}, {33, 47}, {3000, 3}};
  for (const auto& [rows, cols] : sizes) {
    for (LossKind kind : {LossKind::CategoricalLogits, LossKind::CategoricalProbs}) {
      check_loss(kind, false, MetricKind::CategoricalAccuracy, rows, cols);
      check_loss(kind, true, MetricKind::CategoricalAccuracy, rows, cols);
      check_loss(kind, false, MetricKind::MeanAbsolute, rows, cols);
    }
    for (LossKind kind : {LossKind::BinaryLogits, LossKind::BinaryProbs, LossKind::MeanSquared}) {
      check_loss(kind, false, MetricKind::BinaryAccuracy, rows, cols);
      check_loss(kind, false, MetricKind::None, rows, cols);
    }
  }
}
