// conv_cudnn.cpp: Conv2D through cuDNN (layouts, padding and algorithm choice: see conv_cudnn.hpp).
#include "backend/cuda/conv_cudnn.hpp"

#include <string>

#include "dropnet/errors.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::backend::cuda {

struct CudnnConv::Plan {
  bool explicit_pad = false;
  kernels::PadGeometry pad{};  // the zero-padded copy of x cuDNN reads when explicit_pad
  TensorDesc x = make_tensor_desc(), y = make_tensor_desc(), bias = make_tensor_desc();
  FilterDesc w = make_filter_desc();
  // One descriptor per direction: each carries the math type that goes with its algorithm.
  ConvDesc fwd = make_conv_desc(), data = make_conv_desc(), filter = make_conv_desc();
  cudnnConvolutionFwdAlgo_t fwd_algo{};
  std::size_t fwd_workspace = 0;
  bool backward_chosen = false;
  cudnnConvolutionBwdDataAlgo_t data_algo{};
  std::size_t data_workspace = 0;
  cudnnConvolutionBwdFilterAlgo_t filter_algo{};
  std::size_t filter_workspace = 0;
};

namespace {

constexpr float kOne = 1.0f, kZero = 0.0f;

// The chosen algorithm among cuDNN's answers (sorted fastest first for cudnnFind*, best first for the
// heuristics), or nullptr. See conv_cudnn.hpp for the rules.
template <typename Perf>
const Perf* pick(const std::vector<Perf>& results, int returned, const NumericSettings& s, bool timed) {
  const Perf* best = nullptr;
  for (int i = 0; i < returned; ++i) {
    const Perf& p = results[static_cast<std::size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > s.workspace_limit) continue;
    if (s.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (!s.allow_tf32 && p.mathType != CUDNN_FMA_MATH) continue;
    if (best == nullptr) {
      best = &p;
      if (!timed) return best;
    } else if (p.time <= best->time * 1.1f && p.memory < best->memory) {
      best = &p;
    }
  }
  return best;
}

[[noreturn]] void no_algorithm(const char* direction, const ConvGeometry& g, const NumericSettings& s) {
  throw DeviceError(std::string("cuDNN offers no usable ") + direction + " algorithm for a Conv2D with input (" +
                    std::to_string(g.n) + ", " + std::to_string(g.h) + ", " + std::to_string(g.w) + ", " +
                    std::to_string(g.c) + "), kernel (" + std::to_string(g.kh) + ", " + std::to_string(g.kw) +
                    ", " + std::to_string(g.c) + ", " + std::to_string(g.k) + ")" +
                    (s.deterministic ? ", deterministic" : "") + (s.allow_tf32 ? "" : ", float32 (no TF32)") +
                    ", workspace <= " + std::to_string(s.workspace_limit >> 20) + " MiB");
}

// The cudnnMathType_t each descriptor starts from: cuDNN then reports, per algorithm, the math type it
// would run with, and the chosen one is set back on the descriptor.
cudnnMathType_t base_math(const NumericSettings& s) { return s.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; }

}  // namespace

CudnnConv::CudnnConv(DeviceContext& ctx) : ctx_(ctx) {}
CudnnConv::~CudnnConv() = default;

void CudnnConv::clear() noexcept { plans_.clear(); }

CudnnConv::Plan& CudnnConv::plan_for(const ConvGeometry& g) {
  const NumericSettings& s = ctx_.settings();
  std::vector<std::int64_t> key = {g.n,  g.h,  g.w,       g.c,        g.kh, g.kw, g.k,
                                   g.sh, g.sw, g.pad_top, g.pad_left, g.oh, g.ow,
                                   s.deterministic, s.allow_tf32, static_cast<std::int64_t>(s.workspace_limit)};
  auto found = plans_.find(key);
  if (found != plans_.end()) return *found->second;
  // cudnnFind* allocates and synchronizes: never while recording (the step before chose every plan).
  if (ctx_.capturing()) throw_while_capturing("Conv2D would have to choose a cuDNN algorithm for a new shape");

  auto plan = std::make_unique<Plan>();
  // cuDNN's output size with the top/left padding applied on both sides; when it is not Keras' size the
  // padding is asymmetric and done explicitly.
  const auto sym_out = [](std::int64_t in, std::int64_t pad, std::int64_t k, std::int64_t s) {
    return (in + 2 * pad - k) / s + 1;
  };
  plan->explicit_pad = sym_out(g.h, g.pad_top, g.kh, g.sh) != g.oh || sym_out(g.w, g.pad_left, g.kw, g.sw) != g.ow;
  std::int64_t in_h = g.h, in_w = g.w, pad_h = g.pad_top, pad_w = g.pad_left;
  if (plan->explicit_pad) {
    // Exactly the extent the windows cover: (O - 1) * S + K.
    plan->pad = kernels::PadGeometry{g.n, g.h, g.w, g.c, (g.oh - 1) * g.sh + g.kh, (g.ow - 1) * g.sw + g.kw,
                                     g.pad_top, g.pad_left};
    in_h = plan->pad.ph;
    in_w = plan->pad.pw;
    pad_h = pad_w = 0;
  }
  set_nhwc(plan->x, g.n, in_h, in_w, g.c);
  set_nhwc(plan->y, g.n, g.oh, g.ow, g.k);
  set_nhwc(plan->bias, 1, 1, 1, g.k);
  // Filter dims are given as (K, C, KH, KW) whatever the format; NHWC stores them (K, KH, KW, C).
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, static_cast<int>(g.k),
                                         static_cast<int>(g.c), static_cast<int>(g.kh), static_cast<int>(g.kw)));
  for (const ConvDesc* d : {&plan->fwd, &plan->data, &plan->filter}) {
    // Keras' Conv2D is a cross-correlation (the kernel is not flipped).
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d->get(), static_cast<int>(pad_h), static_cast<int>(pad_w),
                                                static_cast<int>(g.sh), static_cast<int>(g.sw), 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(d->get(), base_math(s)));
  }
  int n = 0, c = 0, h = 0, w = 0;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->fwd.get(), plan->x.get(), plan->w.get(), &n, &c, &h, &w));
  if (n != g.n || c != g.k || h != g.oh || w != g.ow)
    throw DeviceError("cuDNN's Conv2D output (" + std::to_string(n) + ", " + std::to_string(h) + ", " +
                      std::to_string(w) + ", " + std::to_string(c) + ") is not the expected one");

  cudnnHandle_t handle = ctx_.cudnn();
  int max_count = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &max_count));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> results(static_cast<std::size_t>(max_count));
  int returned = 0;
  const cudnnConvolutionFwdAlgoPerf_t* chosen = nullptr;
  if (!s.deterministic &&
      cudnnFindConvolutionForwardAlgorithm(handle, plan->x.get(), plan->w.get(), plan->fwd.get(), plan->y.get(),
                                           max_count, &returned, results.data()) == CUDNN_STATUS_SUCCESS)
    chosen = pick(results, returned, s, true);
  if (chosen == nullptr) {
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, plan->x.get(), plan->w.get(), plan->fwd.get(),
                                                       plan->y.get(), max_count, &returned, results.data()));
    chosen = pick(results, returned, s, false);
  }
  if (chosen == nullptr) no_algorithm("forward", g, s);
  plan->fwd_algo = chosen->algo;
  CUDNN_CHECK(cudnnSetConvolutionMathType(plan->fwd.get(), chosen->mathType));
  CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, plan->x.get(), plan->w.get(), plan->fwd.get(),
                                                      plan->y.get(), plan->fwd_algo, &plan->fwd_workspace));
  return *plans_.emplace(std::move(key), std::move(plan)).first->second;
}

const float* CudnnConv::transposed_filter(const float* w, const ConvGeometry& g) {
  const auto rows = static_cast<std::size_t>(g.kh * g.kw * g.c), cols = static_cast<std::size_t>(g.k);
  float* wt = ctx_.scratch_as<float>(Scratch::Filter, rows * cols);
  kernels::launch_transpose(w, wt, rows, cols, ctx_.stream_ptr());  // (KH*KW*C, K) -> (K, KH*KW*C)
  return wt;
}

const float* CudnnConv::input_for_cudnn(const float* x, const Plan& plan, const ConvGeometry& g) {
  if (!plan.explicit_pad) return x;
  float* xp = ctx_.scratch_as<float>(Scratch::PaddedInput,
                                     static_cast<std::size_t>(g.n * plan.pad.ph * plan.pad.pw * g.c));
  kernels::launch_pad_nhwc(x, xp, plan.pad, 0.0f, ctx_.stream_ptr());
  return xp;
}

void CudnnConv::forward(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g) {
  Plan& plan = plan_for(g);
  const float* wt = transposed_filter(w, g);
  const float* xin = input_for_cudnn(x, plan, g);
  void* ws = ctx_.scratch(Scratch::CudnnWorkspace, plan.fwd_workspace);
  CUDNN_CHECK(cudnnConvolutionForward(ctx_.cudnn(), &kOne, plan.x.get(), xin, plan.w.get(), wt, plan.fwd.get(),
                                      plan.fwd_algo, ws, plan.fwd_workspace, &kZero, plan.y.get(), y));
  // The bias (1, 1, 1, K) broadcast over (N, OH, OW, K): y = 1 * b + 1 * y.
  if (b != nullptr) CUDNN_CHECK(cudnnAddTensor(ctx_.cudnn(), &kOne, plan.bias.get(), b, &kOne, plan.y.get(), y));
}

void CudnnConv::backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                         const ConvGeometry& g) {
  Plan& plan = plan_for(g);
  const NumericSettings& s = ctx_.settings();
  cudnnHandle_t handle = ctx_.cudnn();
  if (!plan.backward_chosen) {
    if (ctx_.capturing())
      throw_while_capturing("Conv2D would have to choose cuDNN backward algorithms for a new shape");
    // Backward-data.
    int max_count = 0, returned = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(static_cast<std::size_t>(max_count));
    const cudnnConvolutionBwdDataAlgoPerf_t* d = nullptr;
    if (!s.deterministic &&
        cudnnFindConvolutionBackwardDataAlgorithm(handle, plan.w.get(), plan.y.get(), plan.data.get(), plan.x.get(),
                                                  max_count, &returned, data.data()) == CUDNN_STATUS_SUCCESS)
      d = pick(data, returned, s, true);
    if (d == nullptr) {
      CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, plan.w.get(), plan.y.get(), plan.data.get(),
                                                              plan.x.get(), max_count, &returned, data.data()));
      d = pick(data, returned, s, false);
    }
    if (d == nullptr) no_algorithm("backward-data", g, s);
    plan.data_algo = d->algo;
    CUDNN_CHECK(cudnnSetConvolutionMathType(plan.data.get(), d->mathType));
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, plan.w.get(), plan.y.get(), plan.data.get(),
                                                             plan.x.get(), plan.data_algo, &plan.data_workspace));
    // Backward-filter.
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(static_cast<std::size_t>(max_count));
    const cudnnConvolutionBwdFilterAlgoPerf_t* f = nullptr;
    if (!s.deterministic &&
        cudnnFindConvolutionBackwardFilterAlgorithm(handle, plan.x.get(), plan.y.get(), plan.filter.get(),
                                                    plan.w.get(), max_count, &returned,
                                                    filter.data()) == CUDNN_STATUS_SUCCESS)
      f = pick(filter, returned, s, true);
    if (f == nullptr) {
      CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, plan.x.get(), plan.y.get(),
                                                                plan.filter.get(), plan.w.get(), max_count,
                                                                &returned, filter.data()));
      f = pick(filter, returned, s, false);
    }
    if (f == nullptr) no_algorithm("backward-filter", g, s);
    plan.filter_algo = f->algo;
    CUDNN_CHECK(cudnnSetConvolutionMathType(plan.filter.get(), f->mathType));
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, plan.x.get(), plan.y.get(), plan.filter.get(),
                                                               plan.w.get(), plan.filter_algo,
                                                               &plan.filter_workspace));
    plan.backward_chosen = true;
  }

  if (dx != nullptr) {
    const float* wt = transposed_filter(w, g);
    float* dx_out = dx;
    if (plan.explicit_pad)
      dx_out = ctx_.scratch_as<float>(Scratch::PaddedGrad,
                                      static_cast<std::size_t>(g.n * plan.pad.ph * plan.pad.pw * g.c));
    void* ws = ctx_.scratch(Scratch::CudnnWorkspace, plan.data_workspace);
    CUDNN_CHECK(cudnnConvolutionBackwardData(handle, &kOne, plan.w.get(), wt, plan.y.get(), dy, plan.data.get(),
                                             plan.data_algo, ws, plan.data_workspace, &kZero, plan.x.get(), dx_out));
    if (plan.explicit_pad) kernels::launch_crop_nhwc(dx_out, dx, plan.pad, ctx_.stream_ptr());
  }

  const float* xin = input_for_cudnn(x, plan, g);
  const auto filter_count = static_cast<std::size_t>(g.k * g.kh * g.kw * g.c);
  float* dwt = ctx_.scratch_as<float>(Scratch::FilterGrad, filter_count);
  void* ws = ctx_.scratch(Scratch::CudnnWorkspace, plan.filter_workspace);
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, &kOne, plan.x.get(), xin, plan.y.get(), dy, plan.filter.get(),
                                             plan.filter_algo, ws, plan.filter_workspace, &kZero, plan.w.get(), dwt));
  // (K, KH*KW*C) -> Keras' (KH*KW*C, K).
  kernels::launch_transpose(dwt, dw, static_cast<std::size_t>(g.k), static_cast<std::size_t>(g.kh * g.kw * g.c),
                            ctx_.stream_ptr());

  if (db != nullptr)
    CUDNN_CHECK(cudnnConvolutionBackwardBias(handle, &kOne, plan.y.get(), dy, &kZero, plan.bias.get(), db));
}

}  // namespace dropnet::backend::cuda
