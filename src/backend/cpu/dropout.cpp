// dropout.cpp: Dropout on the CPU. The mask comes from kernels/dropout_math.hpp, element by element, so it
// is bit-identical to the CUDA backend's; it is drawn per mask element and broadcast over the input.
#include <vector>

#include "backend/cpu/ops.hpp"
#include "kernels/dropout_math.hpp"

namespace dropnet::backend::cpu {

template <typename T>
void dropout_apply(const T* in, T* out, const DropoutCall& call) {
  const float keep_prob = kernels::dropout_keep_prob(call.rate);
  const std::int64_t n = element_count(call.input_shape);
  const std::int64_t mask_count = element_count(call.mask_shape);

  // One byte per mask element; four elements share one Philox block. The buffer is kept between calls.
  thread_local std::vector<unsigned char> keep;
  keep.resize(static_cast<std::size_t>(mask_count));
  for (std::int64_t block = 0; block < (mask_count + 3) / 4; ++block) {
    const kernels::PhiloxBlock bits = kernels::philox_block(call.seed, call.step, std::uint64_t(block));
    for (std::int64_t lane = 0; lane < 4 && block * 4 + lane < mask_count; ++lane)
      keep[std::size_t(block * 4 + lane)] = kernels::dropout_keep(bits.w[lane], keep_prob);
  }

  const T p = T(keep_prob);
  if (mask_count == n) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = kernels::dropout_apply(in[i], keep[std::size_t(i)] != 0, p);  // vectorises
    return;
  }
  // Broadcast: the mask index of input element i drops the coordinates of the mask's size-1 axes.
  const int rank = static_cast<int>(call.input_shape.size());
  std::vector<std::int64_t> mask_stride(std::size_t(rank), 0);
  for (std::int64_t d = rank - 1, s = 1; d >= 0; --d) {
    const std::int64_t md = call.mask_shape[std::size_t(d)];
    mask_stride[std::size_t(d)] = (md == 1) ? 0 : s;
    s *= md;
  }
  std::vector<std::int64_t> coord(std::size_t(rank), 0);
  std::int64_t m = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = kernels::dropout_apply(in[i], keep[std::size_t(m)] != 0, p);
    for (int d = rank - 1; d >= 0; --d) {  // odometer step, keeping m in sync
      const std::size_t du = std::size_t(d);
      m += mask_stride[du];
      if (++coord[du] < call.input_shape[du]) break;
      m -= mask_stride[du] * coord[du];
      coord[du] = 0;
    }
  }
}

template void dropout_apply<float>(const float*, float*, const DropoutCall&);
template void dropout_apply<double>(const double*, double*, const DropoutCall&);

}  // namespace dropnet::backend::cpu
