// ops.hpp: the CPU backend's reference implementations, on raw pointers and templated on the scalar
// type: float for training, double for the gradient checks in tests/cpu/. CpuBackend (cpu_backend.hpp)
// adapts them to the Backend contract; each is restated in the comment above it.
#pragma once

#include <cstdint>

#include "backend/backend.hpp"
#include "backend/cpu/conv_path.hpp"
#include "kernels/dropblock_math.hpp"

namespace dropnet::backend::cpu {

// Row-major C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C, through OpenBLAS, with C's rows
// split over the threads of parallel.hpp (OpenBLAS itself runs single-threaded; gemm.cpp says why).
template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc);
// The same on the calling thread only, for code that has already split its work over the threads.
template <typename T>
void gemm_on_this_thread(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                         const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc);

// y (N,OH,OW,K) = x (N,H,W,C) (*) w (KH,KW,C,K) + b, by im2col and one GEMM per block of images.
template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g);
// dw = sum over patches of patch^T dy; db = sum dy; dx = col2im(dy w^T). dx and db may be null.
template <typename T>
void conv2d_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, const ConvGeometry& g);
// float: the same on the given paths (small-C or Winograd where it applies, else direct; the small-C kernels
// have no input gradient, so dx_path SmallC means direct); conv2d_forward/backward<float>
// call them with conv_path's choice (conv_path.hpp), tests with every combination.
void conv2d_forward_on_path(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
                            ConvPath path);
void conv2d_backward_on_paths(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                              const ConvGeometry& g, ConvPath dx_path, ConvPath dw_path);

// y = max over each window (positions outside the input are skipped).
template <typename T>
void maxpool2d_forward(const T* x, T* y, const PoolGeometry& g);
// dx = 0, then each dy goes to the first (row-major) position of its window where x == y.
template <typename T>
void maxpool2d_backward(const T* x, const T* y, const T* dy, T* dx, const PoolGeometry& g);

// The fused Conv2D(relu) -> MaxPooling2D [-> Dropout] block (Backend::relu_pool_forward/backward, which
// state the contract), float only: y = dropout(maxpool(relu(z))) and, unless route is null, the route bytes;
// dz from dy and the route. `dropout` may be null (none).
void relu_pool_forward(const float* z, float* y, std::uint8_t* route, const PoolGeometry& g, const DropoutCall* dropout);
void relu_pool_backward(const float* dy, const std::uint8_t* route, float* dz, const PoolGeometry& g,
                        const DropoutCall* dropout);

// y (N,OUT) = x (N,IN) w (IN,OUT) + b.
template <typename T>
void dense_forward(const T* x, const T* w, const T* b, T* y, std::int64_t n, std::int64_t in, std::int64_t out);
// dx = dy w^T, dw = x^T dy, db = sum_rows dy. dx and db may be null.
template <typename T>
void dense_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, std::int64_t n, std::int64_t in,
                    std::int64_t out);

// relu: max(z, 0); linear: z; softmax: exp(z - max) / sum over each row of `cols`.
template <typename T>
void activation_forward(ActivationKind kind, const T* z, T* y, std::int64_t rows, std::int64_t cols);
// relu: dy * (y > 0); linear: dy; softmax: y * (dy - sum(dy * y)) per row.
template <typename T>
void activation_backward(ActivationKind kind, const T* y, const T* dy, T* dz, std::int64_t rows, std::int64_t cols);

// out[i] = (word i of the Philox stream (seed, step) < threshold) for i < count: word i is
// philox_block(seed, step, i / 4).w[i % 4], so with threshold = dropout_keep_threshold(p) out[i] is
// dropout_keep(word, p), the draw every Bernoulli mask of the dropout family makes (Dropout's and
// AlphaDropout's keep bytes, DropBlock2D's seeds). Vectorised Philox (cpu/dropout.cpp).
void draw_below(std::uint64_t seed, std::uint64_t step, std::uint64_t threshold, std::int64_t count,
                unsigned char* out);

// out = in * mask / (1 - rate) with the mask of kernels/dropout_math.hpp broadcast from call.mask_shape;
// forward (x -> y) and backward (dy -> dx) are the same map.
template <typename T>
void dropout_apply(const T* in, T* out, const DropoutCall& call);

// out = in * mask * (total / kept) with DropBlock2D's mask (kernels/dropblock_math.hpp) for a checked call
// of geometry g; forward (x -> y) and backward (dy -> dx) are the same map. Returns the kept count.
template <typename T>
std::uint64_t dropblock_apply(const T* in, T* out, const DropBlockCall& call, const kernels::DropBlockGeometry& g);

// Per row i: loss_i = logsumexp(z_i) - sum_j t_ij z_ij; adds sum loss_i to loss_sum and the count of rows
// whose first argmax of z equals the first argmax of t to correct; dz (if not null) = (softmax(z) - t) * scale.
template <typename T>
void softmax_cross_entropy(const T* z, const T* t, T* dz, T grad_scale, std::int64_t rows, std::int64_t cols,
                           double& loss_sum, double& correct);

// Keras' losses and metrics (Backend::loss, kernels/loss_math.hpp) on `rows` rows of `cols` values: the sums of
// the row losses and row metric values, unscaled, in the CUDA kernel's order; dy (if not null) as the op's.
template <typename T>
void loss(const T* y, const T* t, T* dy, const LossCall& call, std::int64_t rows, std::int64_t cols, T& loss_sum,
          T& metric_sum);

void adam_update(float* params, const float* grads, float* m, float* v, std::size_t count,
                 const kernels::AdamStep& step);
void maxnorm(float* w, const MaxNormCall& call);

}  // namespace dropnet::backend::cpu
