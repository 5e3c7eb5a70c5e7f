// losses.cpp: compile()'s loss and metric resolution, with Keras 3's names and rules
// (keras/src/losses/losses.py, keras/src/trainers/compile_utils.py).
#include "model/losses.hpp"

#include <cmath>

#include <fmt/format.h>

#include "dropnet/errors.hpp"

namespace dropnet {
namespace {

using kernels::LossKind;
using kernels::MetricKind;

bool is_categorical(const std::string& n) { return n == "categorical_crossentropy"; }
bool is_sparse(const std::string& n) { return n == "sparse_categorical_crossentropy"; }
bool is_binary(const std::string& n) { return n == "binary_crossentropy"; }
bool is_mse(const std::string& n) { return n == "mean_squared_error" || n == "mse"; }

bool known_metric(const std::string& m) {
  return m == "accuracy" || m == "acc" || m == "categorical_accuracy" || m == "sparse_categorical_accuracy" ||
         m == "binary_accuracy" || m == "mae" || m == "mean_absolute_error";
}

std::int64_t product(const Shape& s, std::size_t from, std::size_t to) {
  std::int64_t p = 1;
  for (std::size_t i = from; i < to; ++i) p *= s[i];
  return p;
}

}  // namespace

void check_loss_names(const CompileOptions& options) {
  const Loss& loss = options.loss;
  if (!loss.name.empty() && !is_categorical(loss.name) && !is_sparse(loss.name) && !is_binary(loss.name) &&
      !is_mse(loss.name))
    throw InvalidArgument(fmt::format("unknown loss '{}'; dropnet implements categorical_crossentropy, "
                                      "sparse_categorical_crossentropy, binary_crossentropy and "
                                      "mean_squared_error (mse)", loss.name));
  if (is_mse(loss.name) && loss.from_logits)
    throw InvalidArgument(fmt::format("loss '{}' takes no from_logits (Keras' MeanSquaredError has none)", loss.name));
  if (options.metrics.size() > 1)
    throw InvalidArgument(fmt::format("compile(): {} metrics given; dropnet reports at most one besides the loss",
                                      options.metrics.size()));
  for (const auto& metric : options.metrics)
    if (!known_metric(metric))
      throw InvalidArgument(fmt::format("unknown metric '{}'; dropnet implements accuracy (acc), "
                                        "categorical_accuracy, sparse_categorical_accuracy, binary_accuracy and "
                                        "mae (mean_absolute_error)", metric));
}

LossSetup resolve_loss(const CompileOptions& options, const Shape& output_shape, bool softmax_head) {
  LossSetup s;
  const Loss& loss = options.loss;
  if (loss.name.empty()) return s;  // inference only: the metrics are never computed
  s.defined = true;
  s.loss_name = loss.name;
  const std::int64_t classes = output_shape.back();
  s.rows_per_sample = product(output_shape, 0, output_shape.size() - 1);
  s.call.sparse = is_sparse(loss.name);
  s.label_width = s.call.sparse ? s.rows_per_sample : s.rows_per_sample * classes;
  if (s.call.sparse && classes < 2)
    throw InvalidArgument(fmt::format("compile(): sparse_categorical_crossentropy needs an output of at least 2 "
                                      "classes on its last axis, got {}", to_string(output_shape)));
  if (is_categorical(loss.name) || s.call.sparse)
    s.call.kind = loss.from_logits ? LossKind::CategoricalLogits : LossKind::CategoricalProbs;
  else if (is_binary(loss.name))
    s.call.kind = loss.from_logits ? LossKind::BinaryLogits : LossKind::BinaryProbs;
  else
    s.call.kind = LossKind::MeanSquared;

  if (!options.metrics.empty()) {
    const std::string& m = options.metrics.front();
    s.metric_name = m;
    if (m == "accuracy" || m == "acc") {
      // compile_utils.get_metric: binary when the output's last axis is 1, sparse when the targets have
      // fewer axes (or a last axis of 1 against a wider output), else categorical.
      s.call.metric = classes == 1 ? MetricKind::BinaryAccuracy : MetricKind::CategoricalAccuracy;
      s.metric_is_accuracy = true;
    } else if (m == "categorical_accuracy" || m == "sparse_categorical_accuracy") {
      if ((m == "sparse_categorical_accuracy") != s.call.sparse)
        throw InvalidArgument(fmt::format("compile(): metric '{}' needs {} targets, and loss '{}' takes {}", m,
                                          s.call.sparse ? "one-hot" : "integer (sparse)", loss.name,
                                          s.call.sparse ? "integer (sparse) ones" : "one-hot ones"));
      s.call.metric = MetricKind::CategoricalAccuracy;
      s.metric_is_accuracy = true;
    } else if (m == "binary_accuracy") {
      if (s.call.sparse)
        throw InvalidArgument("compile(): binary_accuracy needs targets of the output's shape, and "
                              "sparse_categorical_crossentropy takes class indices");
      s.call.metric = MetricKind::BinaryAccuracy;
      s.metric_is_accuracy = true;
    } else {  // mae
      if (s.call.sparse)
        throw InvalidArgument(fmt::format("compile(): metric '{}' needs targets of the output's shape, and "
                                          "sparse_categorical_crossentropy takes class indices", m));
      s.call.metric = MetricKind::MeanAbsolute;
    }
  }

  // A softmax head with the categorical loss on probabilities: from the softmax's logits instead (exact
  // where Keras does not clip; docs/keras-parity.md), unless the metric needs the probabilities themselves.
  const bool metric_from_logits = s.call.metric == MetricKind::None || s.call.metric == MetricKind::CategoricalAccuracy;
  if (softmax_head && s.call.kind == LossKind::CategoricalProbs && metric_from_logits) {
    s.from_softmax_logits = true;
    s.call.kind = LossKind::CategoricalLogits;
    s.softmax_xent_op = !s.call.sparse && s.rows_per_sample == 1;
  }
  s.call.stat_scale = 1.0f / float(s.rows_per_sample);
  return s;
}

void check_targets(const LossSetup& setup, const Shape& output_shape, const Tensor& y, std::int64_t n,
                   const char* what) {
  if (!setup.defined)
    throw InvalidArgument(fmt::format("{}: the model was compiled without a loss (inference only); compile() needs "
                                      "a loss, e.g. {{.loss = \"categorical_crossentropy\"}}, to train or evaluate",
                                      what));
  Shape want{n};
  want.insert(want.end(), output_shape.begin(), output_shape.end());
  if (!setup.call.sparse) {
    if (y.shape() != want)
      throw InvalidArgument(fmt::format("{}: y has shape {}; loss {} expects targets of the output's shape {}", what,
                                        to_string(y.shape()), setup.loss_name, to_string(want)));
    return;
  }
  Shape without_last(want.begin(), want.end() - 1), with_one = without_last;
  with_one.push_back(1);
  if (y.shape() != without_last && y.shape() != with_one)
    throw InvalidArgument(fmt::format("{}: y has shape {}; sparse_categorical_crossentropy expects class indices "
                                      "{} or {}", what, to_string(y.shape()), to_string(without_last),
                                      to_string(with_one)));
  if (y.device() != Device::CPU) return;  // checked where it is cheap: a host tensor
  const std::int64_t classes = output_shape.back();
  const float* v = y.data();
  for (std::int64_t i = 0; i < y.size(); ++i)
    if (!(v[i] >= 0.0f && v[i] < float(classes)) || v[i] != std::floor(v[i]))
      throw InvalidArgument(fmt::format("{}: sparse label {} at position {} is not a class index in [0, {})", what,
                                        v[i], i, classes));
}

}  // namespace dropnet
