// cudnn_compute.cpp: the emulated device's cuDNN, part 3 (test-only; see device_state.hpp): the calls that
// compute. Each checks its arguments now (cuDNN's documented statuses), reads the descriptors into plain
// values, and queues a closure on the handle's stream; the closure runs when the host waits.
//
// alpha and beta are host pointers for these calls (cuDNN's legacy API always reads the scaling factors
// from host memory), so their values are taken at call time. Every output is alpha * result + beta * out,
// and with beta == 0 the output is not read (it may hold NaN), as cuDNN documents.
//
// Convolutions gather patches (im2col, through the descriptor strides so NCHW and NHWC both work) and
// multiply with OpenBLAS, a chunk of images at a time to bound the temporary memory.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "emulated_device/cudnn_internal.hpp"

using namespace dropnet::emulated::cudnn_double;

namespace {

// At most this many floats of patches (or of patch gradients) at a time.
constexpr std::size_t kChunkFloats = std::size_t{4} << 20;

// out = alpha * v + beta * out, not reading out when beta == 0.
inline void blend(float& out, float v, float alpha, float beta) {
  out = beta == 0.0f ? alpha * v : alpha * v + beta * out;
}

// The patch matrix of a chunk of images: row (b * OH*OW + oh*OW + ow), column q = (r*KW + s)*C + c, the
// input element the kernel tap (r, s) of channel c meets at output (oh, ow), or 0 in the padding.
// Columns are channel-fastest so that NHWC inputs are read contiguously.
struct Patches {
  const ConvShape& s;
  int q() const { return s.w.c * s.w.h * s.w.w; }
  int p() const { return s.y.h * s.y.w; }
  int images_per_chunk() const {
    const std::size_t per_image = static_cast<std::size_t>(p()) * static_cast<std::size_t>(std::max(q(), s.w.n));
    return static_cast<int>(std::clamp<std::size_t>(kChunkFloats / per_image, 1, static_cast<std::size_t>(s.x.n)));
  }
  // Input (ih, iw) of tap (r, s) at output (oh, ow); false in the padding.
  bool tap(int oh, int ow, int r, int t, std::int64_t* ih, std::int64_t* iw) const {
    *ih = std::int64_t{oh} * s.stride_h - s.pad_h + std::int64_t{r} * s.dilation_h;
    *iw = std::int64_t{ow} * s.stride_w - s.pad_w + std::int64_t{t} * s.dilation_w;
    return *ih >= 0 && *ih < s.x.h && *iw >= 0 && *iw < s.x.w;
  }
  void gather(const float* x, int n0, int count, float* col) const {
    const int C = s.x.c, KH = s.w.h, KW = s.w.w, Q = q();
    for (int b = 0; b < count; ++b)
      for (int oh = 0; oh < s.y.h; ++oh)
        for (int ow = 0; ow < s.y.w; ++ow) {
          float* row = col + (static_cast<std::size_t>(b) * p() + static_cast<std::size_t>(oh) * s.y.w + ow) * Q;
          for (int r = 0; r < KH; ++r)
            for (int t = 0; t < KW; ++t) {
              float* dst = row + (r * KW + t) * C;
              std::int64_t ih = 0, iw = 0;
              if (!tap(oh, ow, r, t, &ih, &iw)) {
                std::fill(dst, dst + C, 0.0f);
                continue;
              }
              const float* src = x + s.x.at(n0 + b, 0, ih, iw);
              if (s.x.sc == 1)  // NHWC: the channels are contiguous
                std::copy(src, src + C, dst);
              else
                for (int c = 0; c < C; ++c) dst[c] = src[c * s.x.sc];
            }
        }
  }
  // The transpose of gather: adds each patch-gradient entry into acc, laid out (b, ih, iw, c) packed
  // (channel-fastest, like the patch columns).
  void scatter_add(const float* gcol, int count, float* acc) const {
    const int C = s.x.c, H = s.x.h, W = s.x.w, KH = s.w.h, KW = s.w.w, Q = q();
    for (int b = 0; b < count; ++b)
      for (int oh = 0; oh < s.y.h; ++oh)
        for (int ow = 0; ow < s.y.w; ++ow) {
          const float* row =
              gcol + (static_cast<std::size_t>(b) * p() + static_cast<std::size_t>(oh) * s.y.w + ow) * Q;
          for (int r = 0; r < KH; ++r)
            for (int t = 0; t < KW; ++t) {
              std::int64_t ih = 0, iw = 0;
              if (!tap(oh, ow, r, t, &ih, &iw)) continue;
              const float* src = row + (r * KW + t) * C;
              float* dst = acc + ((static_cast<std::size_t>(b) * H + ih) * W + iw) * C;
              for (int c = 0; c < C; ++c) dst[c] += src[c];
            }
        }
  }
  // The (K x Q) filter matrix matching the patch columns. CUDNN_CONVOLUTION (a true convolution) flips the
  // kernel: tap (r, s) meets weight (KH-1-r, KW-1-s); CUDNN_CROSS_CORRELATION uses it as it is.
  std::size_t weight_index(int k, int r, int t, int c) const {
    const int rr = s.flip ? s.w.h - 1 - r : r, tt = s.flip ? s.w.w - 1 - t : t;
    return static_cast<std::size_t>(s.w.at(k, c, rr, tt));
  }
  std::vector<float> filter_matrix(const float* w) const {
    const int K = s.w.n, C = s.w.c, KH = s.w.h, KW = s.w.w, Q = q();
    std::vector<float> m(static_cast<std::size_t>(K) * Q);
    for (int k = 0; k < K; ++k)
      for (int r = 0; r < KH; ++r)
        for (int t = 0; t < KW; ++t)
          for (int c = 0; c < C; ++c)
            m[static_cast<std::size_t>(k) * Q + (r * KW + t) * C + c] = w[weight_index(k, r, t, c)];
    return m;
  }
  // dy of a chunk as a (count*OH*OW x K) matrix.
  void gather_dy(const float* dy, int n0, int count, float* m) const {
    const int K = s.y.c;
    for (int b = 0; b < count; ++b)
      for (int oh = 0; oh < s.y.h; ++oh)
        for (int ow = 0; ow < s.y.w; ++ow) {
          float* row = m + (static_cast<std::size_t>(b) * p() + static_cast<std::size_t>(oh) * s.y.w + ow) * K;
          for (int k = 0; k < K; ++k) row[k] = dy[s.y.at(n0 + b, k, oh, ow)];
        }
  }
};

// The checks every convolution direction shares: handle, alpha/beta, the descriptors (conv_shape), the
// algorithm and its workspace. cuDNN: a workspace smaller than the algorithm needs is BAD_PARAM; the
// workspace is device memory the kernels write, so a non-device pointer is BAD_PARAM too.
cudnnStatus_t check_conv(Direction dir, cudnnHandle_t handle, const void* alpha, const void* beta,
                         const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv,
                         const cudnnTensorStruct* y, int algo, const void* workspace, std::size_t workspace_bytes,
                         ConvShape* s) {
  if (handle == nullptr || alpha == nullptr || beta == nullptr) return CUDNN_STATUS_BAD_PARAM;
  if (cudnnStatus_t st = conv_shape(x, w, conv, y, s); st != CUDNN_STATUS_SUCCESS) return st;
  std::size_t need = 0;
  if (!workspace_for(dir, algo, *s, &need)) return CUDNN_STATUS_NOT_SUPPORTED;
  if (workspace_bytes < need) return CUDNN_STATUS_BAD_PARAM;
  if (workspace_bytes > 0 && !device(workspace, workspace_bytes)) return CUDNN_STATUS_BAD_PARAM;
  return CUDNN_STATUS_SUCCESS;
}

// Run first by every convolution: nothing may rely on the workspace's contents, so it gets NaN bytes.
void scribble(void* workspace, std::size_t bytes) {
  if (workspace != nullptr && bytes > 0) std::memset(workspace, 0xFF, bytes);
}

}  // namespace

extern "C" {

cudnnStatus_t CUDNNWINAPI cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha,
                                                  const cudnnTensorDescriptor_t xDesc, const void* x,
                                                  const cudnnFilterDescriptor_t wDesc, const void* w,
                                                  const cudnnConvolutionDescriptor_t convDesc,
                                                  cudnnConvolutionFwdAlgo_t algo, void* workSpace,
                                                  size_t workSpaceSizeInBytes, const void* beta,
                                                  const cudnnTensorDescriptor_t yDesc, void* y) {
  ConvShape s;
  if (cudnnStatus_t st = check_conv(Direction::Forward, handle, alpha, beta, xDesc, wDesc, convDesc, yDesc, algo,
                                    workSpace, workSpaceSizeInBytes, &s);
      st != CUDNN_STATUS_SUCCESS)
    return st;
  if (!device(x, s.x.bytes()) || !device(w, s.w.bytes()) || !device(y, s.y.bytes())) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const auto* xp = static_cast<const float*>(x);
  const auto* wp = static_cast<const float*>(w);
  auto* yp = static_cast<float*>(y);
  return queue(*handle, "cudnnConvolutionForward", [=] {
    scribble(workSpace, workSpaceSizeInBytes);
    const Patches pt{s};
    const int K = s.w.n, Q = pt.q(), P = pt.p(), chunk = pt.images_per_chunk();
    const std::vector<float> wm = pt.filter_matrix(wp);
    std::vector<float> col(static_cast<std::size_t>(chunk) * P * Q), out(static_cast<std::size_t>(chunk) * P * K);
    for (int n0 = 0; n0 < s.x.n; n0 += chunk) {
      const int count = std::min(chunk, s.x.n - n0);
      pt.gather(xp, n0, count, col.data());
      // out (count*P x K) = patches (count*P x Q) * filter^T (Q x K).
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, count * P, K, Q, 1.0f, col.data(), Q, wm.data(), Q, 0.0f,
                  out.data(), K);
      for (int bi = 0; bi < count; ++bi)
        for (int oh = 0; oh < s.y.h; ++oh)
          for (int ow = 0; ow < s.y.w; ++ow) {
            const float* row = out.data() + (static_cast<std::size_t>(bi) * P + oh * s.y.w + ow) * K;
            for (int k = 0; k < K; ++k) blend(yp[s.y.at(n0 + bi, k, oh, ow)], row[k], a, b);
          }
    }
  });
}

cudnnStatus_t CUDNNWINAPI cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha,
                                                       const cudnnFilterDescriptor_t wDesc, const void* w,
                                                       const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                                       const cudnnConvolutionDescriptor_t convDesc,
                                                       cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                                                       size_t workSpaceSizeInBytes, const void* beta,
                                                       const cudnnTensorDescriptor_t dxDesc, void* dx) {
  ConvShape s;
  if (cudnnStatus_t st = check_conv(Direction::BackwardData, handle, alpha, beta, dxDesc, wDesc, convDesc, dyDesc,
                                    algo, workSpace, workSpaceSizeInBytes, &s);
      st != CUDNN_STATUS_SUCCESS)
    return st;
  if (!device(w, s.w.bytes()) || !device(dy, s.y.bytes()) || !device(dx, s.x.bytes())) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const auto* wp = static_cast<const float*>(w);
  const auto* dyp = static_cast<const float*>(dy);
  auto* dxp = static_cast<float*>(dx);
  return queue(*handle, "cudnnConvolutionBackwardData", [=] {
    scribble(workSpace, workSpaceSizeInBytes);
    const Patches pt{s};
    const int K = s.w.n, Q = pt.q(), P = pt.p(), chunk = pt.images_per_chunk();
    const int C = s.x.c, H = s.x.h, W = s.x.w;
    const std::vector<float> wm = pt.filter_matrix(wp);
    std::vector<float> dym(static_cast<std::size_t>(chunk) * P * K), gcol(static_cast<std::size_t>(chunk) * P * Q);
    std::vector<float> acc(static_cast<std::size_t>(chunk) * C * H * W);
    for (int n0 = 0; n0 < s.x.n; n0 += chunk) {
      const int count = std::min(chunk, s.x.n - n0);
      pt.gather_dy(dyp, n0, count, dym.data());
      // Patch gradients (count*P x Q) = dy (count*P x K) * filter (K x Q), then summed back onto the input.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, count * P, Q, K, 1.0f, dym.data(), K, wm.data(), Q,
                  0.0f, gcol.data(), Q);
      std::fill(acc.begin(), acc.end(), 0.0f);
      pt.scatter_add(gcol.data(), count, acc.data());
      for (int bi = 0; bi < count; ++bi)
        for (int ih = 0; ih < H; ++ih)
          for (int iw = 0; iw < W; ++iw) {
            const float* v = acc.data() + ((static_cast<std::size_t>(bi) * H + ih) * W + iw) * C;
            for (int c = 0; c < C; ++c) blend(dxp[s.x.at(n0 + bi, c, ih, iw)], v[c], a, b);
          }
    }
  });
}

cudnnStatus_t CUDNNWINAPI cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                                         const cudnnTensorDescriptor_t xDesc, const void* x,
                                                         const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                                         const cudnnConvolutionDescriptor_t convDesc,
                                                         cudnnConvolutionBwdFilterAlgo_t algo, void* workSpace,
                                                         size_t workSpaceSizeInBytes, const void* beta,
                                                         const cudnnFilterDescriptor_t dwDesc, void* dw) {
  ConvShape s;
  if (cudnnStatus_t st = check_conv(Direction::BackwardFilter, handle, alpha, beta, xDesc, dwDesc, convDesc, dyDesc,
                                    algo, workSpace, workSpaceSizeInBytes, &s);
      st != CUDNN_STATUS_SUCCESS)
    return st;
  if (!device(x, s.x.bytes()) || !device(dy, s.y.bytes()) || !device(dw, s.w.bytes())) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const auto* xp = static_cast<const float*>(x);
  const auto* dyp = static_cast<const float*>(dy);
  auto* dwp = static_cast<float*>(dw);
  return queue(*handle, "cudnnConvolutionBackwardFilter", [=] {
    scribble(workSpace, workSpaceSizeInBytes);
    const Patches pt{s};
    const int K = s.w.n, Q = pt.q(), P = pt.p(), chunk = pt.images_per_chunk();
    std::vector<float> col(static_cast<std::size_t>(chunk) * P * Q), dym(static_cast<std::size_t>(chunk) * P * K);
    std::vector<float> dwm(static_cast<std::size_t>(K) * Q, 0.0f);
    for (int n0 = 0; n0 < s.x.n; n0 += chunk) {
      const int count = std::min(chunk, s.x.n - n0);
      pt.gather(xp, n0, count, col.data());
      pt.gather_dy(dyp, n0, count, dym.data());
      // Filter gradient (K x Q) += dy^T (K x count*P) * patches (count*P x Q).
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, Q, count * P, 1.0f, dym.data(), K, col.data(), Q,
                  1.0f, dwm.data(), Q);
    }
    const int C = s.w.c, KH = s.w.h, KW = s.w.w;
    for (int k = 0; k < K; ++k)
      for (int r = 0; r < KH; ++r)
        for (int t = 0; t < KW; ++t)
          for (int c = 0; c < C; ++c)
            blend(dwp[pt.weight_index(k, r, t, c)], dwm[static_cast<std::size_t>(k) * Q + (r * KW + t) * C + c], a, b);
  });
}

// db (1, K, 1, 1) = alpha * (dy summed over N, H, W) + beta * db.
cudnnStatus_t CUDNNWINAPI cudnnConvolutionBackwardBias(cudnnHandle_t handle, const void* alpha,
                                                       const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                                       const void* beta, const cudnnTensorDescriptor_t dbDesc,
                                                       void* db) {
  if (handle == nullptr || alpha == nullptr || beta == nullptr || dyDesc == nullptr || dbDesc == nullptr ||
      !dyDesc->set || !dbDesc->set)
    return CUDNN_STATUS_BAD_PARAM;
  // The bias gradient has one value per channel of dy.
  if (dbDesc->n != 1 || dbDesc->c != dyDesc->c || dbDesc->h != 1 || dbDesc->w != 1) return CUDNN_STATUS_BAD_PARAM;
  if (dyDesc->type != CUDNN_DATA_FLOAT || dbDesc->type != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  const Tensor4 tdy = view(*dyDesc), tdb = view(*dbDesc);
  if (!device(dy, tdy.bytes()) || !device(db, tdb.bytes())) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const auto* dyp = static_cast<const float*>(dy);
  auto* dbp = static_cast<float*>(db);
  return queue(*handle, "cudnnConvolutionBackwardBias", [=] {
    std::vector<double> sum(static_cast<std::size_t>(tdy.c), 0.0);
    for (int n = 0; n < tdy.n; ++n)
      for (int h = 0; h < tdy.h; ++h)
        for (int w = 0; w < tdy.w; ++w)
          for (int c = 0; c < tdy.c; ++c) sum[static_cast<std::size_t>(c)] += dyp[tdy.at(n, c, h, w)];
    for (int c = 0; c < tdy.c; ++c)
      blend(dbp[tdb.at(0, c, 0, 0)], static_cast<float>(sum[static_cast<std::size_t>(c)]), a, b);
  });
}

// C = alpha * A + beta * C, A broadcast: cuDNN requires each dimension of A to be C's or 1.
cudnnStatus_t CUDNNWINAPI cudnnAddTensor(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t aDesc,
                                         const void* A, const void* beta, const cudnnTensorDescriptor_t cDesc,
                                         void* C) {
  if (handle == nullptr || alpha == nullptr || beta == nullptr || aDesc == nullptr || cDesc == nullptr ||
      !aDesc->set || !cDesc->set)
    return CUDNN_STATUS_BAD_PARAM;
  const Tensor4 ta = view(*aDesc), tc = view(*cDesc);
  const auto fits = [](int a, int c) { return a == c || a == 1; };
  if (!fits(ta.n, tc.n) || !fits(ta.c, tc.c) || !fits(ta.h, tc.h) || !fits(ta.w, tc.w)) return CUDNN_STATUS_BAD_PARAM;
  if (aDesc->type != CUDNN_DATA_FLOAT || cDesc->type != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!device(A, ta.bytes()) || !device(C, tc.bytes())) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const auto* ap = static_cast<const float*>(A);
  auto* cp = static_cast<float*>(C);
  return queue(*handle, "cudnnAddTensor", [=] {
    for (int n = 0; n < tc.n; ++n)
      for (int c = 0; c < tc.c; ++c)
        for (int h = 0; h < tc.h; ++h)
          for (int w = 0; w < tc.w; ++w) {
            const float v = ap[ta.at(ta.n == 1 ? 0 : n, ta.c == 1 ? 0 : c, ta.h == 1 ? 0 : h, ta.w == 1 ? 0 : w)];
            blend(cp[tc.at(n, c, h, w)], v, a, b);
          }
  });
}

}  // extern "C"

// ---- Max pooling ----

namespace {

// The checks pooling forward and backward share: descriptors set, a max mode (the double implements no
// average pooling: NOT_SUPPORTED), float data, and y of exactly the size cudnnGetPooling2dForwardOutputDim
// gives for x (BAD_PARAM otherwise).
cudnnStatus_t check_pool(cudnnHandle_t handle, cudnnPoolingDescriptor_t pool, const void* alpha, const void* beta,
                         cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t y) {
  if (handle == nullptr || pool == nullptr || alpha == nullptr || beta == nullptr || x == nullptr || y == nullptr ||
      !pool->set || !x->set || !y->set)
    return CUDNN_STATUS_BAD_PARAM;
  if (pool->mode != CUDNN_POOLING_MAX && pool->mode != CUDNN_POOLING_MAX_DETERMINISTIC)
    return CUDNN_STATUS_NOT_SUPPORTED;
  if (x->type != CUDNN_DATA_FLOAT || y->type != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  int n = 0, c = 0, h = 0, w = 0;
  if (cudnnStatus_t st = cudnnGetPooling2dForwardOutputDim(pool, x, &n, &c, &h, &w); st != CUDNN_STATUS_SUCCESS)
    return st;
  if (y->n != n || y->c != c || y->h != h || y->w != w) return CUDNN_STATUS_BAD_PARAM;
  return CUDNN_STATUS_SUCCESS;
}

// One pooling window: the image cells it covers (padding cells are skipped, so they never win).
struct Window {
  const cudnnPoolingStruct& p;
  const Tensor4& x;
  template <typename F>  // f(ih, iw) -> true to stop; visited in row-major window order
  void each(int oh, int ow, F f) const {
    for (int i = 0; i < p.window_h; ++i) {
      const int ih = oh * p.stride_h - p.pad_h + i;
      if (ih < 0 || ih >= x.h) continue;
      for (int j = 0; j < p.window_w; ++j) {
        const int iw = ow * p.stride_w - p.pad_w + j;
        if (iw >= 0 && iw < x.w && f(ih, iw)) return;
      }
    }
  }
};

}  // namespace

extern "C" {

cudnnStatus_t CUDNNWINAPI cudnnPoolingForward(cudnnHandle_t handle, const cudnnPoolingDescriptor_t poolingDesc,
                                              const void* alpha, const cudnnTensorDescriptor_t xDesc, const void* x,
                                              const void* beta, const cudnnTensorDescriptor_t yDesc, void* y) {
  if (cudnnStatus_t st = check_pool(handle, poolingDesc, alpha, beta, xDesc, yDesc); st != CUDNN_STATUS_SUCCESS)
    return st;
  const Tensor4 tx = view(*xDesc), ty = view(*yDesc);
  if (!device(x, tx.bytes()) || !device(y, ty.bytes())) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const cudnnPoolingStruct pool = *poolingDesc;
  const auto* xp = static_cast<const float*>(x);
  auto* yp = static_cast<float*>(y);
  return queue(*handle, "cudnnPoolingForward", [=] {
    const Window win{pool, tx};
    const bool propagate = pool.nan == CUDNN_PROPAGATE_NAN;
    for (int n = 0; n < ty.n; ++n)
      for (int c = 0; c < ty.c; ++c)
        for (int oh = 0; oh < ty.h; ++oh)
          for (int ow = 0; ow < ty.w; ++ow) {
            // A window with no image cell (or only NaN without propagation) gives -inf.
            float m = -std::numeric_limits<float>::infinity();
            win.each(oh, ow, [&](int ih, int iw) {
              const float v = xp[tx.at(n, c, ih, iw)];
              if (std::isnan(v)) {
                if (!propagate) return false;  // CUDNN_NOT_PROPAGATE_NAN: NaN never wins
                m = v;                         // CUDNN_PROPAGATE_NAN: any NaN makes the max NaN
                return true;
              }
              if (v > m) m = v;
              return false;
            });
            blend(yp[ty.at(n, c, oh, ow)], m, a, b);
          }
  });
}

// dx = alpha * (each dy routed to the window cell equal to y, the first in row-major window order, summed
// over overlapping windows) + beta * dx. CUDNN_POOLING_MAX and MAX_DETERMINISTIC give the same here.
cudnnStatus_t CUDNNWINAPI cudnnPoolingBackward(cudnnHandle_t handle, const cudnnPoolingDescriptor_t poolingDesc,
                                               const void* alpha, const cudnnTensorDescriptor_t yDesc, const void* y,
                                               const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                               const cudnnTensorDescriptor_t xDesc, const void* x, const void* beta,
                                               const cudnnTensorDescriptor_t dxDesc, void* dx) {
  if (cudnnStatus_t st = check_pool(handle, poolingDesc, alpha, beta, xDesc, yDesc); st != CUDNN_STATUS_SUCCESS)
    return st;
  // dy has y's shape and dx has x's (BAD_PARAM otherwise, as cuDNN documents).
  if (dyDesc == nullptr || dxDesc == nullptr || !dyDesc->set || !dxDesc->set) return CUDNN_STATUS_BAD_PARAM;
  const Tensor4 tx = view(*xDesc), ty = view(*yDesc), tdy = view(*dyDesc), tdx = view(*dxDesc);
  if (!tdy.same_dims(ty) || !tdx.same_dims(tx)) return CUDNN_STATUS_BAD_PARAM;
  if (dyDesc->type != CUDNN_DATA_FLOAT || dxDesc->type != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!device(x, tx.bytes()) || !device(y, ty.bytes()) || !device(dy, tdy.bytes()) || !device(dx, tdx.bytes()))
    return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const cudnnPoolingStruct pool = *poolingDesc;
  const auto* xp = static_cast<const float*>(x);
  const auto* yp = static_cast<const float*>(y);
  const auto* dyp = static_cast<const float*>(dy);
  auto* dxp = static_cast<float*>(dx);
  return queue(*handle, "cudnnPoolingBackward", [=] {
    const Window win{pool, tx};
    std::vector<float> acc(tx.count(), 0.0f);  // packed (n, c, h, w)
    const auto packed = [&](int n, int c, int h, int w) {
      return ((static_cast<std::size_t>(n) * tx.c + c) * tx.h + h) * tx.w + w;
    };
    for (int n = 0; n < ty.n; ++n)
      for (int c = 0; c < ty.c; ++c)
        for (int oh = 0; oh < ty.h; ++oh)
          for (int ow = 0; ow < ty.w; ++ow) {
            const float yv = yp[ty.at(n, c, oh, ow)], g = dyp[tdy.at(n, c, oh, ow)];
            win.each(oh, ow, [&](int ih, int iw) {
              const float v = xp[tx.at(n, c, ih, iw)];
              if (v != yv && !(std::isnan(v) && std::isnan(yv))) return false;
              acc[packed(n, c, ih, iw)] += g;
              return true;
            });
          }
    for (int n = 0; n < tx.n; ++n)
      for (int c = 0; c < tx.c; ++c)
        for (int h = 0; h < tx.h; ++h)
          for (int w = 0; w < tx.w; ++w) blend(dxp[tdx.at(n, c, h, w)], acc[packed(n, c, h, w)], a, b);
  });
}

}  // extern "C"
