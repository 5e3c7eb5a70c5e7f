// softmax_xent_math.hpp: softmax cross-entropy on logits, both backends, in float (double only in the
// CPU's gradient checks).
//
//   loss_i    = logsumexp(z_i) - sum_j t_ij z_ij          logsumexp = m + log sum_j exp(z_ij - m), m = max_j z_ij
//   correct_i = argmax_j z_ij == argmax_j t_ij           (first maximum, row_math.hpp)
//   dz_ij     = (exp(z_ij - m) / sum_j exp(z_ij - m) - t_ij) * grad_scale
//
// The row sums (sum exp, sum t z) are added in the lanes' order of row_math.hpp, and the batch's losses
// and hits in the order of the CUDA kernels' blocks (xent_batch_sum below), so the CPU and the GPU do the
// same float additions in the same order. Keras computes the loss in float32 too; tests/cpu/
// test_keras_parity.cpp holds its goldens.
#pragma once

#include <cstddef>
#include <cstdint>

#include "activation_math.hpp"
#include "hd.hpp"
#include "row_math.hpp"

namespace dropnet::kernels {

// loss_i from the row's maximum, its sum of exp(z - max) and its sum of t * z.
template <typename T>
DROPNET_HD T xent_row_loss(T zmax, T sum_exp, T dot) {
  return zmax + row_log(sum_exp) - dot;
}

// dz_ij.
template <typename T>
DROPNET_HD T xent_grad(T z, T t, T zmax, T sum_exp, T grad_scale) {
  return (softmax_term(z, zmax) / sum_exp - t) * grad_scale;
}

// ---- how the batch adds up (the CUDA kernels' launch shape, fixed so that the order is too) -----------

constexpr int kXentWarpsPerBlock = 8;         // 256 threads, one warp per row
constexpr std::size_t kXentMaxBlocks = 256;   // not derived from the GPU
constexpr int kXentTotalThreads = 256;        // the one block that adds the blocks' partial sums

DROPNET_HD std::size_t xent_blocks(std::size_t rows) {
  const std::size_t b = (rows + kXentWarpsPerBlock - 1) / kXentWarpsPerBlock;
  return b < 1 ? 1 : (b > kXentMaxBlocks ? kXentMaxBlocks : b);
}

// The batch's sum of row_value(r), r < rows, in the kernels' order: warp w of block b adds rows
// b * 8 + w, then + 8 * blocks, ...; each block adds its 8 warps in order; the last launch's thread k adds
// block k (blocks <= 256), and a halving tree adds the 256 threads' values. The CPU's run of that order.
template <typename T, typename F>
inline T xent_batch_sum(std::size_t rows, F&& row_value) {
  const std::size_t blocks = xent_blocks(rows);
  T slot[kXentTotalThreads];
  for (int k = 0; k < kXentTotalThreads; ++k) slot[k] = T(0);
  for (std::size_t b = 0; b < blocks; ++b) {
    T block = T(0);
    for (int w = 0; w < kXentWarpsPerBlock; ++w) {
      T warp = T(0);
      for (std::size_t r = b * kXentWarpsPerBlock + std::size_t(w); r < rows; r += blocks * kXentWarpsPerBlock)
        warp += row_value(r);
      block += warp;
    }
    slot[b] = T(0) + block;  // thread b's sum, starting from 0 as the kernel's does
  }
  for (int half = kXentTotalThreads / 2; half > 0; half /= 2)
    for (int k = 0; k < half; ++k) slot[k] += slot[k + half];
  return slot[0];
}

}  // namespace dropnet::kernels
