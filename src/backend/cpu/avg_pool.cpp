// avg_pool.cpp: AveragePooling2D and GlobalAveragePooling2D on the CPU, NHWC, through the per-element math
// the CUDA kernels share (kernels/avg_pool_math.hpp), so both give the same bits. Each output (forward) or
// input gradient (backward) is computed by one thread; the threads split the positions.
#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/op_checks.hpp"
#include "kernels/avg_pool_math.hpp"

namespace dropnet::backend::cpu {
namespace {

kernels::AvgPoolGeometry avg_geometry(const PoolGeometry& g) {
  return {g.n, g.h, g.w, g.c, g.ph, g.pw, g.sh, g.sw, g.pad_top, g.pad_left, g.oh, g.ow};
}

constexpr std::int64_t kGrainPositions = 256;

}  // namespace

void CpuBackend::avgpool2d_forward(const Tensor& x, Tensor& y, const PoolGeometry& g) {
  const ThreadShare share(settings_.cpu_threads);
  checks::tensor_of(Device::CPU, x, g.n * g.h * g.w * g.c, "avgpool2d_forward x");
  checks::tensor_of(Device::CPU, y, g.n * g.oh * g.ow * g.c, "avgpool2d_forward y");
  const kernels::AvgPoolGeometry a = avg_geometry(g);
  const float* xp = x.data();
  float* yp = y.data();
  parallel_for(g.n * g.oh * g.ow, kGrainPositions, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::int64_t img = p / (a.oh * a.ow), oy = p / a.ow % a.oh, ox = p % a.ow;
      for (std::int64_t ch = 0; ch < a.c; ++ch) yp[p * a.c + ch] = kernels::avg_pool_output(xp, a, img, oy, ox, ch);
    }
  });
}

void CpuBackend::avgpool2d_backward(const Tensor& dy, Tensor& dx, const PoolGeometry& g) {
  const ThreadShare share(settings_.cpu_threads);
  checks::tensor_of(Device::CPU, dy, g.n * g.oh * g.ow * g.c, "avgpool2d_backward dy");
  checks::tensor_of(Device::CPU, dx, g.n * g.h * g.w * g.c, "avgpool2d_backward dx");
  const kernels::AvgPoolGeometry a = avg_geometry(g);
  const float* dyp = dy.data();
  float* dxp = dx.data();
  parallel_for(g.n * g.h * g.w, kGrainPositions, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::int64_t img = p / (a.h * a.w), iy = p / a.w % a.h, ix = p % a.w;
      for (std::int64_t ch = 0; ch < a.c; ++ch)
        dxp[p * a.c + ch] = kernels::avg_pool_input_grad(dyp, a, img, iy, ix, ch);
    }
  });
}

}  // namespace dropnet::backend::cpu
