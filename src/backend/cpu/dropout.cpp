// dropout.cpp: Dropout on the CPU. The mask comes from kernels/dropout_math.hpp, element by element, so it
// is bit-identical to the CUDA backend's; it is drawn per mask element and broadcast over the input. The
// Philox draw and the float mask loop come in the CPU's widest vectors (isa.hpp); the file is compiled with
// -ffp-contract=off.
#include <algorithm>
#include <vector>

#include "backend/cpu/isa.hpp"
#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "kernels/dropout_math.hpp"

namespace dropnet::backend::cpu {
namespace {

constexpr std::int64_t kBlocksPerBatch = 64;

// Words of Philox blocks first .. first + 63 of (seed, subsequence), block j's word w at out[4 j + w]:
// philox4x32_10 on 64 counters at once, lane by lane, so that the compiler vectorises the rounds (with
// 16 or fewer it unrolls the lanes into scalars first).
[[gnu::noinline, DROPNET_ISA_CLONES]] void philox_batch(std::uint64_t seed, std::uint64_t subsequence,
                                                        std::uint64_t first, std::uint32_t* out) {
  std::uint32_t x0[kBlocksPerBatch], x1[kBlocksPerBatch], x2[kBlocksPerBatch], x3[kBlocksPerBatch];
  for (std::int64_t j = 0; j < kBlocksPerBatch; ++j) {
    const std::uint64_t block = first + std::uint64_t(j);
    x0[j] = std::uint32_t(block);
    x1[j] = std::uint32_t(block >> 32);
    x2[j] = std::uint32_t(subsequence);
    x3[j] = std::uint32_t(subsequence >> 32);
  }
  const kernels::PhiloxKey key = kernels::philox_key(seed);
  std::uint32_t k0 = key.w[0], k1 = key.w[1];
  for (int round = 0; round < 10; ++round) {
    for (std::int64_t j = 0; j < kBlocksPerBatch; ++j) kernels::philox_round(x0[j], x1[j], x2[j], x3[j], k0, k1);
    k0 += kernels::kPhiloxW0;
    k1 += kernels::kPhiloxW1;
  }
  for (std::int64_t j = 0; j < kBlocksPerBatch; ++j) {
    out[4 * j] = x0[j];
    out[4 * j + 1] = x1[j];
    out[4 * j + 2] = x2[j];
    out[4 * j + 3] = x3[j];
  }
}

// out[i] = words[i] < threshold for i < n: the keep bytes of draw_below. A threshold <= 2^32 - 1 is compared
// as 32 bits, which every ISA vectorises (the 64-bit comparison it equals stayed scalar without AVX-512).
[[DROPNET_ISA_CLONES]] void mark_below(const std::uint32_t* words, std::uint64_t threshold, std::int64_t n,
                                       unsigned char* out) {
  if (threshold > 0xffffffffu) {  // every word
    std::fill(out, out + n, 1);
    return;
  }
  const auto t = static_cast<std::uint32_t>(threshold);
  for (std::int64_t i = 0; i < n; ++i) out[i] = words[i] < t;
}

template <typename T>
[[gnu::always_inline]] inline void apply_mask_loop(const T* in, T* out, const unsigned char* keep, T keep_prob,
                                                   std::int64_t begin, std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i) out[i] = kernels::dropout_apply(in[i], keep[i] != 0, keep_prob);
}

// out = in * mask / keep_prob over [begin, end), the mask one byte per element. float: one version per ISA;
// double (the gradient checks): baseline only.
[[DROPNET_ISA_CLONES]] void apply_mask_range(const float* in, float* out, const unsigned char* keep,
                                             float keep_prob, std::int64_t begin, std::int64_t end) {
  apply_mask_loop(in, out, keep, keep_prob, begin, end);
}
void apply_mask_range(const double* in, double* out, const unsigned char* keep, double keep_prob,
                      std::int64_t begin, std::int64_t end) {
  apply_mask_loop(in, out, keep, keep_prob, begin, end);
}

}  // namespace

void draw_below(std::uint64_t seed, std::uint64_t step, std::uint64_t threshold, std::int64_t count,
                unsigned char* out) {
  constexpr std::int64_t kBatchElements = 4 * kBlocksPerBatch;
  parallel_for((count + kBatchElements - 1) / kBatchElements, 64, [&](std::int64_t b0, std::int64_t b1) {
    std::uint32_t words[kBatchElements];
    for (std::int64_t batch = b0; batch < b1; ++batch) {
      const std::int64_t first = batch * kBatchElements;
      philox_batch(seed, step, std::uint64_t(first / 4), words);
      mark_below(words, threshold, std::min<std::int64_t>(count - first, kBatchElements), out + first);
    }
  });
}

template <typename T>
void dropout_apply(const T* in, T* out, const DropoutCall& call) {
  const std::uint64_t step = call.slot != nullptr ? call.slot->step : call.step;
  const float rate = call.slot != nullptr ? call.slot->rate : call.rate;
  const std::int64_t n = element_count(call.input_shape);
  if (const int edge = kernels::dropout_rate_edge(rate); edge >= 0) {
    if (edge == 1) std::copy(in, in + n, out);
    else std::fill(out, out + n, T(0));
    return;
  }
  const float keep_prob = kernels::dropout_keep_prob(rate);
  const std::int64_t mask_count = element_count(call.mask_shape);

  // One byte per mask element; four elements share one Philox block. The buffer is kept between calls.
  thread_local std::vector<unsigned char> keep;
  keep.resize(static_cast<std::size_t>(mask_count));
  const unsigned char* keep_bytes = keep.data();
  draw_below(call.seed, step, kernels::dropout_keep_threshold(keep_prob), mask_count, keep.data());

  const T p = T(keep_prob);
  if (mask_count == n) {
    parallel_for(n, 1 << 16, [&](std::int64_t begin, std::int64_t end) {
      apply_mask_range(in, out, keep_bytes, p, begin, end);
    });
    return;
  }
  // Broadcast (noise_shape): the mask index of each input element, as the GPU's broadcast kernel finds it.
  const kernels::DropoutBroadcast broadcast = kernels::dropout_broadcast(
      call.input_shape.data(), call.mask_shape.data(), static_cast<int>(call.input_shape.size()));
  parallel_for(n, 1 << 14, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i)
      out[i] = kernels::dropout_apply(in[i], keep_bytes[kernels::dropout_mask_index(i, broadcast)] != 0, p);
  });
}

template void dropout_apply<float>(const float*, float*, const DropoutCall&);
template void dropout_apply<double>(const double*, double*, const DropoutCall&);

}  // namespace dropnet::backend::cpu
