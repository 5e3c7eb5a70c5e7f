// noise.cpp: GaussianDropout, GaussianNoise and AlphaDropout on the CPU (CpuBackend::noise_forward and
// noise_backward). Every value comes from kernels/noise_math.hpp and kernels/normal_math.hpp, element by
// element, so the results are the CUDA backend's bit for bit; this file is compiled with -ffp-contract=off
// (src/CMakeLists.txt) so that no multiply-add the headers leave separate is fused here.
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/op_checks.hpp"
#include "kernels/noise_math.hpp"

namespace dropnet::backend::cpu {
namespace {

using kernels::NoiseKind;
static_assert(int(NoiseCall::Kind::GaussianDropout) == int(NoiseKind::GaussianDropout) &&
              int(NoiseCall::Kind::GaussianNoise) == int(NoiseKind::GaussianNoise) &&
              int(NoiseCall::Kind::AlphaDropout) == int(NoiseKind::AlphaDropout));

// Elements drawn per task: large enough that a thread's start-up is noise.
constexpr std::int64_t kGroupsPerTask = 1 << 12;

// GaussianDropout and GaussianNoise: the four normals of block j serve elements 4j .. 4j + 3.
void apply_normals(const float* in, float* out, std::int64_t n, std::uint64_t seed, std::uint64_t step,
                   const kernels::NoiseParams& p, bool backward) {
  parallel_for((n + 3) / 4, kGroupsPerTask, [&](std::int64_t g0, std::int64_t g1) {
    for (std::int64_t j = g0; j < g1; ++j) {
      const kernels::PhiloxBlock b = kernels::philox_block(seed, step, std::uint64_t(j));
      const kernels::NormalPair lo = kernels::normal_pair(b.w[0], b.w[1]);
      const kernels::NormalPair hi = kernels::normal_pair(b.w[2], b.w[3]);
      const float normals[4] = {lo.first, lo.second, hi.first, hi.second};
      const std::int64_t base = 4 * j, count = std::min<std::int64_t>(4, n - base);
      for (std::int64_t c = 0; c < count; ++c)
        out[base + c] = kernels::noise_apply(p, backward, in[base + c], normals[c], false);
    }
  });
}

// AlphaDropout: the keep rule per mask element (one byte each), then the affine map, broadcast as Dropout's.
void apply_alpha(const float* in, float* out, const NoiseCall& call, std::uint64_t step,
                 const kernels::NoiseParams& p, bool backward) {
  const Shape& shape = call.input_shape;
  const Shape& mask = call.mask_shape.empty() ? shape : call.mask_shape;
  const std::int64_t n = element_count(shape), mask_count = element_count(mask);
  thread_local std::vector<unsigned char> keep;  // kept between calls
  keep.resize(static_cast<std::size_t>(mask_count));
  unsigned char* kept = keep.data();
  // Dropout's keep rule (dropout_keep), drawn as Dropout draws it.
  draw_below(call.seed, step, kernels::dropout_keep_threshold(p.keep_prob), mask_count, kept);
  if (mask_count == n) {
    parallel_for(n, 1 << 16, [&](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) out[i] = kernels::noise_apply(p, backward, in[i], 0.0f, kept[i] != 0);
    });
    return;
  }
  const kernels::DropoutBroadcast broadcast =
      kernels::dropout_broadcast(shape.data(), mask.data(), static_cast<int>(shape.size()));
  parallel_for(n, 1 << 14, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i)
      out[i] = kernels::noise_apply(p, backward, in[i], 0.0f, kept[kernels::dropout_mask_index(i, broadcast)] != 0);
  });
}

void noise_apply(const float* in, float* out, const NoiseCall& call, bool backward) {
  // The step and the rate are the slot's when the layer passes one (a scheduled rate may be 0 or 1).
  const std::uint64_t step = call.slot != nullptr ? call.slot->step : call.step;
  const float rate = call.slot != nullptr ? call.slot->rate : call.rate;
  const auto kind = static_cast<NoiseKind>(call.kind);
  const kernels::NoiseParams p = kernels::noise_params(kind, rate);
  const std::int64_t n = element_count(call.input_shape);
  if (p.edge >= 0 || (backward && kind == NoiseKind::GaussianNoise)) {
    parallel_for(n, 1 << 16, [&](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) out[i] = p.edge >= 0 ? kernels::noise_edge_value(p.edge, in[i]) : in[i];
    });
    return;
  }
  if (kernels::noise_draws_normals(kind)) apply_normals(in, out, n, call.seed, step, p, backward);
  else apply_alpha(in, out, call, step, p, backward);
}

}  // namespace

void CpuBackend::noise_forward(const Tensor& x, Tensor& y, const NoiseCall& call) {
  const ThreadShare share(settings_.cpu_threads);
  checks::noise(Device::CPU, x, y, call, /*backward=*/false);
  noise_apply(x.data(), y.data(), call, false);
}

void CpuBackend::noise_backward(const Tensor& dy, Tensor& dx, const NoiseCall& call) {
  const ThreadShare share(settings_.cpu_threads);
  checks::noise(Device::CPU, dy, dx, call, /*backward=*/true);
  noise_apply(dy.data(), dx.data(), call, true);
}

}  // namespace dropnet::backend::cpu
