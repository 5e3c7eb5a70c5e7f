// tensor_checks.hpp: the argument checks of the CUDA backend's ops. A host tensor handed to a kernel
// would be a wild device pointer (an illegal-address fault that poisons the whole CUDA context), so each
// op first checks that its tensors live on the GPU and have the element count the geometry implies, and
// throws InvalidArgument naming the tensor otherwise.
#pragma once

#include <cstdint>
#include <string>

#include "dropnet/errors.hpp"
#include "dropnet/tensor.hpp"

namespace dropnet::backend::cuda {

inline void expect_on_device(const Tensor& t, const char* what) {
  if (t.device() != Device::CUDA && !t.empty())
    throw InvalidArgument(std::string("the CUDA backend got a host tensor as ") + what);
}

inline void expect_device_tensor(const Tensor& t, std::int64_t count, const char* what) {
  expect_on_device(t, what);
  if (t.size() != count)
    throw InvalidArgument(std::string("the CUDA backend expected ") + what + " of " + std::to_string(count) +
                          " elements, got shape " + to_string(t.shape()));
}

// (rows, cols) of a tensor whose last axis is the row: softmax and the loss work row by row.
struct RowsCols {
  std::int64_t rows, cols;
};
inline RowsCols rows_cols(const Tensor& t) {
  if (t.rank() == 0 || t.dim(-1) == 0) return RowsCols{0, 0};
  return RowsCols{t.size() / t.dim(-1), t.dim(-1)};
}

struct DenseDims {
  std::int64_t n, in, out;
};
// x (N, IN...) flattened to (N, IN), w (IN, OUT).
inline DenseDims dense_dims(const Tensor& x, const Tensor& w) {
  expect_on_device(x, "Dense input");
  expect_on_device(w, "Dense kernel");
  if (w.rank() != 2 || x.rank() < 1)
    throw InvalidArgument("Dense expects a kernel (IN, OUT) and an input (N, IN), got kernel " + to_string(w.shape()) +
                          " and input " + to_string(x.shape()));
  const DenseDims d{x.dim(0), w.dim(0), w.dim(1)};
  if (x.size() != d.n * d.in)
    throw InvalidArgument("Dense input " + to_string(x.shape()) + " does not match kernel " + to_string(w.shape()));
  return d;
}

}  // namespace dropnet::backend::cuda
