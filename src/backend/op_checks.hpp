// op_checks.hpp: the preconditions of the Backend ops, one definition for both backends. Each backend
// calls the op's check first, with its own Device, and only then touches memory: a tensor on the other
// device would be a wild pointer there (on the GPU an illegal-address fault that poisons the whole CUDA
// context; on the CPU a read of device memory), and a tensor of the wrong size an overrun. Every check
// throws InvalidArgument naming the tensor or the argument; none of them reads a tensor's contents.
//
// Empty tensors may be on either device (they hold no memory).
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.hpp"
#include "dropnet/device.hpp"
#include "dropnet/tensor.hpp"
#include "kernels/dropblock_math.hpp"

namespace dropnet::backend::checks {

// t lives on `device` (or is empty).
void on_device(Device device, const Tensor& t, const char* what);
// t lives on `device` and has `count` elements.
void tensor_of(Device device, const Tensor& t, std::int64_t count, const char* what);

// (rows, cols) of a tensor whose last axis is the row: softmax and the loss work row by row.
struct RowsCols {
  std::int64_t rows, cols;
};
RowsCols rows_cols(const Tensor& t);

// x (N, IN...) flattened to (N, IN), w (IN, OUT).
struct DenseDims {
  std::int64_t n, in, out;
};

void conv2d_forward(Device device, const Tensor& x, const Tensor& w, const Tensor* b, const Tensor& y,
                    const ConvGeometry& g);
void conv2d_backward(Device device, const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor* dx,
                     const Tensor& dw, const Tensor* db, const ConvGeometry& g);
void maxpool2d_forward(Device device, const Tensor& x, const Tensor& y, const PoolGeometry& g);
void maxpool2d_backward(Device device, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& dx,
                        const PoolGeometry& g);
// The fused block (Backend::relu_pool_forward/backward): z or dz (N, H, W, C) and y or dy (N, OH, OW, C) of
// the geometry, a window of at most kReluPoolMaxWindow positions, and a dropout call (if any) for y.
void relu_pool(Device device, const Tensor& z, const Tensor& y, const PoolGeometry& g, const DropoutCall* dropout);
// Backward's route bytes are given.
void relu_pool_route(const std::uint8_t* route);
DenseDims dense_forward(Device device, const Tensor& x, const Tensor& w, const Tensor* b, const Tensor& y);
DenseDims dense_backward(Device device, const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor* dx,
                         const Tensor& dw, const Tensor* db);
void activation_forward(Device device, const Tensor& z, const Tensor& y);
void activation_backward(Device device, const Tensor& y, const Tensor& dy, const Tensor& dz);
// forward: in = x, out = y; backward: in = dy, out = dx. Also the call: a rate in (0, 1), an input shape
// of the tensor's size and rank <= 8, and a mask shape that broadcasts to it.
void dropout(Device device, const Tensor& in, const Tensor& out, const DropoutCall& call, bool backward);
// The call part of that check, for an input of `size` elements.
void dropout_call(const DropoutCall& call, std::int64_t size);
// The Gaussian-noise family (forward: in = x, out = y; backward: in = dy, out = dx): an input shape of the
// tensor's size and rank <= 8, a mask shape (AlphaDropout only; empty means the input's) that broadcasts to
// it, and, without a slot, a rate in [0, 1] (GaussianNoise: a finite stddev >= 0).
void noise(Device device, const Tensor& in, const Tensor& out, const NoiseCall& call, bool backward);
// forward: in = x, out = y; backward: in = dy, out = dx. Also the call: a rate in [0, 1] (the op handles
// the edges, as under a schedule), an input shape (N, H, W, C) of the tensor's size, 1 <= block_size <= H, W.
// Returns the geometry.
kernels::DropBlockGeometry dropblock(Device device, const Tensor& in, const Tensor& out, const DropBlockCall& call,
                                     bool backward);
void softmax_cross_entropy(Device device, const Tensor& z, const Tensor& t, const Tensor* dz, const Tensor& stats);
// y of rank >= 1 with a non-empty last axis; t of y's size (dense) or of one value per row (sparse), dy of y's
// size, stats of 2 floats, all on `device`; finite scales.
void loss(Device device, const Tensor& y, const Tensor& t, const Tensor* dy, const LossCall& call, const Tensor& stats);
// A kernel of rank <= 8, axes inside it.
void maxnorm(const MaxNormCall& call);
// Indices inside src's rows, dst on `device` and large enough (src may be on either device).
void gather_rows(Device device, const Tensor& src, std::span<const std::int64_t> index, const Tensor& dst);
// bx, by on `device`, of rows * x_row and rows * classes values, rows <= batch_size, order and the step state
// given, exactly one of x_float/x_bytes and of y_float/y_class.
void gather_batch(Device device, const DatasetView& data, const std::int64_t* order, const StepHeader* state,
                  std::int64_t batch_size, const Tensor& bx, const Tensor& by);

}  // namespace dropnet::backend::checks
