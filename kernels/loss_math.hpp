// loss_math.hpp: Keras 3's losses and metrics per element and per row, both backends (float; double only in
// the CPU's gradient checks). The model's output y (the prediction, or the logits with from_logits) is
// viewed as rows of `cols` values, its last axis; each row has a target row t of `cols` values or, for the
// sparse losses, one class index. As in Keras (keras/src/backend/jax/nn.py, losses/losses.py):
//
//   categorical, from logits:  loss = -sum_j t_j log_softmax(y)_j = sum_t * (max + log sum_j exp(y_j - max)) - sum_j t_j y_j
//   categorical, probabilities: q = y / sum_j y_j;  loss = -sum_j t_j log(clip(q_j))
//   binary, from logits:       loss = -mean_j (t_j log_sigmoid(y_j) + (1 - t_j) log_sigmoid(-y_j))
//   binary, probabilities:     p = clip(y);  loss = -mean_j (t_j log p_j + (1 - t_j) log(1 - p_j))
//   mean squared error:        loss = mean_j (t_j - y_j)^2
//   clip(p) = min(max(p, 1e-7), 1 - 1e-7)   (keras.config.epsilon(); its derivative is 1 inside, 0 outside
//                                            and 1/2 at either bound, as jnp.clip's under jax.grad)
//   sparse: t_j = (j == label) with label = the class index (truncated to an integer, as Keras' int32 cast;
//           out of [0, cols): no class, t = 0, as jax.nn.one_hot)
//
// The metrics per row: categorical accuracy (first argmax of y == first argmax of t, or == the label value
// for the sparse form), binary accuracy mean_j ((y_j > 0.5) == t_j), mean absolute error mean_j |t_j - y_j|.
//
// The row sums are added in row_math.hpp's lane order (the CUDA kernel's warp lanes; the CPU's loop over 32
// lanes), and the batch's row values in xent_batch_sum's order (softmax_xent_math.hpp), so both backends do
// the same float operations in the same order. kernels/loss.cu and src/backend/cpu/losses.cpp are the two
// runs of this file.
#pragma once

#include <cstdint>

#include "activation_math.hpp"
#include "hd.hpp"
#include "row_math.hpp"

namespace dropnet::kernels {

enum class LossKind : int {
  CategoricalLogits,  // categorical_crossentropy / sparse_categorical_crossentropy, from_logits=true
  CategoricalProbs,   // the same on probabilities (from_logits=false)
  BinaryLogits,       // binary_crossentropy, from_logits=true
  BinaryProbs,        // binary_crossentropy, from_logits=false
  MeanSquared,        // mean_squared_error
};

enum class MetricKind : int {
  None,
  CategoricalAccuracy,  // categorical_accuracy, or sparse_categorical_accuracy with sparse targets
  BinaryAccuracy,       // binary_accuracy, threshold 0.5
  MeanAbsolute,         // mean_absolute_error ("mae")
};

// ---- per element ------------------------------------------------------------------------------------------

DROPNET_HD float loss_log1p(float x) { return log1pf(x); }
DROPNET_HD double loss_log1p(double x) { return log1p(x); }

template <typename T>
DROPNET_HD T loss_clip_low() { return T(1e-7); }
template <typename T>
DROPNET_HD T loss_clip_high() { return T(1.0 - 1e-7); }  // 1 - 1e-7 in double, then rounded, as Keras' clip

template <typename T>
DROPNET_HD T loss_clip(T p) {
  const T lo = loss_clip_low<T>(), hi = loss_clip_high<T>();
  return p < lo ? lo : (p > hi ? hi : p);
}

// d clip(p) / dp as jax.grad gives it (jnp.clip is maximum then minimum; each splits a tie in halves).
template <typename T>
DROPNET_HD T loss_clip_slope(T p) {
  const T lo = loss_clip_low<T>(), hi = loss_clip_high<T>();
  if (p > lo && p < hi) return T(1);
  return (p == lo || p == hi) ? T(0.5) : T(0);
}

// softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) (jnp.logaddexp(x, 0)), stable for any x.
template <typename T>
DROPNET_HD T loss_softplus(T x) {
  const T ax = x < T(0) ? -x : x;
  return (x > T(0) ? x : T(0)) + loss_log1p(row_exp(-ax));
}

template <typename T>
DROPNET_HD T loss_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + row_exp(-x));
  const T e = row_exp(x);
  return e / (T(1) + e);
}

// The sparse label of a row: the class index the target value names, or -1 (no class).
template <typename T>
DROPNET_HD std::int64_t sparse_label(T v, std::int64_t cols) {
  return (v >= T(0) && v < T(cols)) ? static_cast<std::int64_t>(v) : std::int64_t(-1);
}

// The first pass's sums of a row (which ones depends on the loss; see loss_add_terms) and the metric's.
template <typename T>
struct LossSums {
  T a = T(0), b = T(0), c = T(0), m = T(0);
};

// Adds element (y, t) of a row to the first pass's sums:
//   CategoricalLogits: a = sum exp(y - ymax), b = sum t y, c = sum t
//   CategoricalProbs:  a = sum y
//   Binary*, MeanSquared: a = sum of the element terms (their mean is the loss, negated for the binary ones)
//   m = sum of the metric's element terms (binary accuracy, mean absolute error)
template <typename T>
DROPNET_HD void loss_add_terms(LossKind kind, MetricKind metric, T y, T t, T ymax, LossSums<T>& s) {
  switch (kind) {
    case LossKind::CategoricalLogits:
      s.a += softmax_term(y, ymax);
      s.b += t * y;
      s.c += t;
      break;
    case LossKind::CategoricalProbs:
      s.a += y;
      break;
    case LossKind::BinaryLogits:
      // t log_sigmoid(y) + (1 - t) log_sigmoid(-y), log_sigmoid(x) = -softplus(-x)
      s.a += t * -loss_softplus(-y) + (T(1) - t) * -loss_softplus(y);
      break;
    case LossKind::BinaryProbs: {
      const T p = loss_clip(y);
      s.a += t * row_log(p) + (T(1) - t) * row_log(T(1) - p);
      break;
    }
    case LossKind::MeanSquared: {
      const T d = t - y;
      s.a += d * d;
      break;
    }
  }
  if (metric == MetricKind::BinaryAccuracy) {
    s.m += ((y > T(0.5) ? T(1) : T(0)) == t) ? T(1) : T(0);
  } else if (metric == MetricKind::MeanAbsolute) {
    const T d = t - y;
    s.m += d < T(0) ? -d : d;
  }
}

// CategoricalProbs' second pass, with the row sum s = first.a: a = sum t log(clip(y / s)), and b = sum g q
// with q = y / s and g = d loss / d q = -t clip'(q) / clip(q) (the gradient's row term, loss_grad).
template <typename T>
DROPNET_HD T cce_prob_g(T q, T t) {
  return -t * loss_clip_slope(q) / loss_clip(q);
}
template <typename T>
DROPNET_HD void cce_prob_add(T y, T t, T s, LossSums<T>& second) {
  const T q = y / s;
  second.a += t * row_log(loss_clip(q));
  second.b += cce_prob_g(q, t) * q;
}

// The row's loss from its sums (`second` used by CategoricalProbs only). CategoricalLogits with targets summing
// to exactly 1 (one-hot, sparse) is softmax_xent_math.hpp's xent_row_loss and xent_grad, the same float
// operations (1 * x == x): a softmax head trains the same bits with sparse or one-hot labels
// (tests/cpu/test_losses_model.cpp).
template <typename T>
DROPNET_HD T loss_row(LossKind kind, const LossSums<T>& first, const LossSums<T>& second, T ymax, std::int64_t cols) {
  switch (kind) {
    case LossKind::CategoricalLogits: return first.c * (ymax + row_log(first.a)) - first.b;
    case LossKind::CategoricalProbs: return -second.a;
    case LossKind::BinaryLogits:
    case LossKind::BinaryProbs: return -(first.a / T(cols));
    case LossKind::MeanSquared: return first.a / T(cols);
  }
  return T(0);
}

// d (grad_scale * row loss) / d y for element (y, t).
template <typename T>
DROPNET_HD T loss_grad(LossKind kind, T y, T t, T ymax, const LossSums<T>& first, const LossSums<T>& second,
                       std::int64_t cols, T grad_scale) {
  switch (kind) {
    case LossKind::CategoricalLogits:  // sum_t softmax(y) - t
      return (softmax_term(y, ymax) / first.a * first.c - t) * grad_scale;
    case LossKind::CategoricalProbs: {  // through q = y / s: (g_k - sum_j g_j q_j) / s
      const T s = first.a;
      return (cce_prob_g(y / s, t) - second.b) / s * grad_scale;
    }
    case LossKind::BinaryLogits:  // -(t sigmoid(-y) - (1 - t) sigmoid(y)) / cols
      return -(t * loss_sigmoid(-y) - (T(1) - t) * loss_sigmoid(y)) / T(cols) * grad_scale;
    case LossKind::BinaryProbs: {  // -(t / p - (1 - t) / (1 - p)) clip'(y) / cols
      const T p = loss_clip(y);
      return -(t / p - (T(1) - t) / (T(1) - p)) * loss_clip_slope(y) / T(cols) * grad_scale;
    }
    case LossKind::MeanSquared:
      return T(2) * (y - t) / T(cols) * grad_scale;
  }
  return T(0);
}

// The row's metric value: categorical accuracy from the first argmax of y (yarg) and of the target (targ:
// its first argmax, or for sparse targets the label value itself, compared exactly as Keras' float
// y_true == argmax); the others from the first pass's m.
template <typename T>
DROPNET_HD T metric_row(MetricKind metric, const LossSums<T>& first, std::int64_t cols, bool hit) {
  switch (metric) {
    case MetricKind::None: return T(0);
    case MetricKind::CategoricalAccuracy: return hit ? T(1) : T(0);
    case MetricKind::BinaryAccuracy:
    case MetricKind::MeanAbsolute: return first.m / T(cols);
  }
  return T(0);
}

// Whether a row needs its maximum (and argmax) of y: the categorical loss from logits and categorical accuracy.
DROPNET_HD bool loss_needs_max(LossKind kind, MetricKind metric) {
  return kind == LossKind::CategoricalLogits || metric == MetricKind::CategoricalAccuracy;
}

}  // namespace dropnet::kernels
