// losses.cpp: Keras' losses and metrics on the CPU (Backend::loss): kernels/loss_math.hpp's expressions in
// the order kernels/loss.cu adds them (row_math.hpp's lanes within a row, xent_batch_sum across rows), in
// the scalar type T (float for training, double for the gradient checks). One row after the other: the
// result does not depend on the thread count.
#include <vector>

#include "backend/cpu/ops.hpp"
#include "kernels/loss_math.hpp"
#include "kernels/softmax_xent_math.hpp"

namespace dropnet::backend::cpu {
namespace {

// The 32 lanes' LossSums of a row, each field combined by the warp's butterfly (row_math.hpp).
template <typename T, typename F>
kernels::LossSums<T> lane_sums(std::int64_t cols, F&& add) {
  T a[kernels::kRowLanes], b[kernels::kRowLanes], c[kernels::kRowLanes], m[kernels::kRowLanes];
  for (int l = 0; l < kernels::kRowLanes; ++l) {
    kernels::LossSums<T> lane;
    for (std::int64_t j = l; j < cols; j += kernels::kRowLanes) add(j, lane);
    a[l] = lane.a;
    b[l] = lane.b;
    c[l] = lane.c;
    m[l] = lane.m;
  }
  kernels::LossSums<T> s;
  s.a = kernels::lane_butterfly(a);
  s.b = kernels::lane_butterfly(b);
  s.c = kernels::lane_butterfly(c);
  s.m = kernels::lane_butterfly(m);
  return s;
}

}  // namespace

template <typename T>
void loss(const T* y, const T* t, T* dy, const LossCall& call, std::int64_t rows, std::int64_t cols, T& loss_sum,
          T& metric_sum) {
  using kernels::LossKind;
  loss_sum = metric_sum = T(0);
  if (rows <= 0 || cols <= 0) return;
  std::vector<T> row_loss(static_cast<std::size_t>(rows)), row_metric(static_cast<std::size_t>(rows));
  std::vector<T> sparse_row(call.sparse ? static_cast<std::size_t>(cols) : 0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    // The target row: t's, or the one-hot row of the sparse label.
    const T* tr = t + r * cols;
    std::int64_t label = -1;
    if (call.sparse) {
      label = kernels::sparse_label(t[r], cols);
      for (std::int64_t j = 0; j < cols; ++j) sparse_row[std::size_t(j)] = j == label ? T(1) : T(0);
      tr = sparse_row.data();
    }
    T ymax = T(0);
    bool hit = false;
    if (kernels::loss_needs_max(call.kind, call.metric)) {
      std::int64_t yarg = 0, targ = 0;
      ymax = kernels::row_first_max(yr, cols, yarg);
      if (call.metric == kernels::MetricKind::CategoricalAccuracy) {
        if (call.sparse) {
          hit = yarg != kernels::kNoColumn && T(yarg) == t[r];
        } else {
          kernels::row_first_max(tr, cols, targ);
          hit = yarg == targ;
        }
      }
    }
    const kernels::LossSums<T> first = lane_sums<T>(cols, [&](std::int64_t j, kernels::LossSums<T>& s) {
      kernels::loss_add_terms(call.kind, call.metric, yr[j], tr[j], ymax, s);
    });
    kernels::LossSums<T> second;
    if (call.kind == LossKind::CategoricalProbs)
      second = lane_sums<T>(cols, [&](std::int64_t j, kernels::LossSums<T>& s) {
        kernels::cce_prob_add(yr[j], tr[j], first.a, s);
      });
    row_loss[std::size_t(r)] = kernels::loss_row(call.kind, first, second, ymax, cols);
    row_metric[std::size_t(r)] = kernels::metric_row(call.metric, first, cols, hit);
    if (dy != nullptr) {
      T* dyr = dy + r * cols;
      for (std::int64_t j = 0; j < cols; ++j)
        dyr[j] = kernels::loss_grad(call.kind, yr[j], tr[j], ymax, first, second, cols, T(call.grad_scale));
    }
  }
  const auto n = static_cast<std::size_t>(rows);
  loss_sum = kernels::xent_batch_sum<T>(n, [&](std::size_t r) { return row_loss[r]; });
  metric_sum = kernels::xent_batch_sum<T>(n, [&](std::size_t r) { return row_metric[r]; });
}

template void loss<float>(const float*, const float*, float*, const LossCall&, std::int64_t, std::int64_t, float&,
                          float&);
template void loss<double>(const double*, const double*, double*, const LossCall&, std::int64_t, std::int64_t,
                           double&, double&);

}  // namespace dropnet::backend::cpu
