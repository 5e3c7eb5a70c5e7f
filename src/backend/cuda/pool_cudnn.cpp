// pool_cudnn.cpp: MaxPooling2D through cuDNN (padding and ties: see pool_cudnn.hpp).
#include "backend/cuda/pool_cudnn.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "dropnet/errors.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {

struct CudnnPool::Plan {
  bool explicit_pad = false;
  kernels::PadGeometry pad{};
  TensorDesc x = make_tensor_desc(), y = make_tensor_desc();
  PoolDesc pool = make_pool_desc();
};

namespace {
constexpr float kOne = 1.0f, kZero = 0.0f;
}  // namespace

CudnnPool::CudnnPool(DeviceContext& ctx) : ctx_(ctx) {}
CudnnPool::~CudnnPool() = default;

void CudnnPool::clear() noexcept { plans_.clear(); }

CudnnPool::Plan& CudnnPool::plan_for(const PoolGeometry& g) {
  const NumericSettings& s = ctx_.settings();
  std::vector<std::int64_t> key = {g.n,  g.h,  g.w,       g.c,        g.ph, g.pw, g.sh,
                                   g.sw, g.pad_top, g.pad_left, g.oh, g.ow, s.deterministic};
  auto found = plans_.find(key);
  if (found != plans_.end()) return *found->second;

  auto plan = std::make_unique<Plan>();
  // The extent the windows cover; any of it outside the image needs the explicit -inf padding.
  const std::int64_t span_h = (g.oh - 1) * g.sh + g.ph, span_w = (g.ow - 1) * g.sw + g.pw;
  plan->explicit_pad = g.pad_top > 0 || g.pad_left > 0 || span_h - g.pad_top > g.h || span_w - g.pad_left > g.w;
  std::int64_t in_h = g.h, in_w = g.w;
  if (plan->explicit_pad) {
    plan->pad = kernels::PadGeometry{g.n, g.h, g.w, g.c, span_h, span_w, g.pad_top, g.pad_left};
    in_h = span_h;
    in_w = span_w;
  }
  set_nhwc(plan->x, g.n, in_h, in_w, g.c);
  set_nhwc(plan->y, g.n, g.oh, g.ow, g.c);
  CUDNN_CHECK(cudnnSetPooling2dDescriptor(plan->pool.get(),
                                          s.deterministic ? CUDNN_POOLING_MAX_DETERMINISTIC : CUDNN_POOLING_MAX,
                                          CUDNN_PROPAGATE_NAN, static_cast<int>(g.ph), static_cast<int>(g.pw), 0, 0,
                                          static_cast<int>(g.sh), static_cast<int>(g.sw)));
  int n = 0, c = 0, h = 0, w = 0;
  CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(plan->pool.get(), plan->x.get(), &n, &c, &h, &w));
  if (n != g.n || c != g.c || h != g.oh || w != g.ow)
    throw DeviceError("cuDNN's MaxPooling2D output (" + std::to_string(n) + ", " + std::to_string(h) + ", " +
                      std::to_string(w) + ", " + std::to_string(c) + ") is not the expected one");
  return *plans_.emplace(std::move(key), std::move(plan)).first->second;
}

const float* CudnnPool::input_for_cudnn(const float* x, const Plan& plan, const PoolGeometry& g) {
  if (!plan.explicit_pad) return x;
  float* xp = ctx_.scratch_as<float>(Scratch::PaddedInput,
                                     static_cast<std::size_t>(g.n * plan.pad.ph * plan.pad.pw * g.c));
  kernels::launch_pad_nhwc(x, xp, plan.pad, -std::numeric_limits<float>::infinity(), ctx_.stream_ptr());
  return xp;
}

void CudnnPool::forward(const float* x, float* y, const PoolGeometry& g) {
  Plan& plan = plan_for(g);
  const float* xin = input_for_cudnn(x, plan, g);
  CUDNN_CHECK(cudnnPoolingForward(ctx_.cudnn(), plan.pool.get(), &kOne, plan.x.get(), xin, &kZero, plan.y.get(), y));
}

void CudnnPool::backward(const float* x, const float* y, const float* dy, float* dx, const PoolGeometry& g) {
  Plan& plan = plan_for(g);
  const float* xin = input_for_cudnn(x, plan, g);
  float* dx_out = dx;
  if (plan.explicit_pad)
    dx_out = ctx_.scratch_as<float>(Scratch::PaddedGrad,
                                    static_cast<std::size_t>(g.n * plan.pad.ph * plan.pad.pw * g.c));
  CUDNN_CHECK(cudnnPoolingBackward(ctx_.cudnn(), plan.pool.get(), &kOne, plan.y.get(), y, plan.y.get(), dy,
                                   plan.x.get(), xin, &kZero, plan.x.get(), dx_out));
  if (plan.explicit_pad) kernels::launch_crop_nhwc(dx_out, dx, plan.pad, ctx_.stream_ptr());
}

}  // namespace dropnet::backend::cuda
