// test_library_doubles.cpp: the emulated device's cuBLAS and cuDNN doubles (cublas.cpp, cudnn_*.cpp)
// against naive reference loops written here. Memory comes from cudaMalloc (the emulated one fills it with
// NaN bytes), results come back with cudaMemcpy after a synchronize, so the library calls go through the
// emulated streams' asynchronous queueing as the backend's do. Outputs are poisoned with NaN wherever
// beta == 0, so a double that reads them would fail.
#include "support/catch.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random_values(std::size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

// A cudaMalloc'ed float buffer.
struct DeviceFloats {
  float* ptr = nullptr;
  std::size_t count = 0;
  explicit DeviceFloats(std::size_t n, float fill = kNaN) : DeviceFloats(std::vector<float>(n, fill)) {}
  explicit DeviceFloats(const std::vector<float>& v) : count(v.size()) {
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&ptr), std::max<std::size_t>(count, 1) * sizeof(float)) ==
            cudaSuccess);
    put(v);
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  ~DeviceFloats() { cudaFree(ptr); }
  void put(const std::vector<float>& v) const {
    REQUIRE(v.size() == count);
    REQUIRE(cudaMemcpy(ptr, v.data(), count * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  // Waits for all queued work first: the device's work runs only when the host waits.
  std::vector<float> get() const {
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<float> v(count);
    REQUIRE(cudaMemcpy(v.data(), ptr, count * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
};

// Every element within tolerance (relative to the magnitude of the expected values); one CHECK per call.
void check_close(const std::vector<float>& got, const std::vector<double>& want, const std::string& what,
                 double tol = 2e-5) {
  REQUIRE(got.size() == want.size());
  double scale = 1.0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * scale)) {
      if (bad++ == 0) first = i;
    }
  INFO(what << ": " << bad << " of " << got.size() << " differ; first at " << first << ": got "
            << (bad ? got[first] : 0.0f) << ", want " << (bad ? want[first] : 0.0));
  CHECK(bad == 0);
}

// ---- Tensors in a layout: logical (n, c, h, w) index to the offset in NCHW or NHWC. ----
struct Dims {
  int n, c, h, w;
  std::size_t count() const { return static_cast<std::size_t>(n) * c * h * w; }
  std::size_t at(cudnnTensorFormat_t f, int in, int ic, int ih, int iw) const {
    return f == CUDNN_TENSOR_NHWC ? ((static_cast<std::size_t>(in) * h + ih) * w + iw) * c + ic
                                  : ((static_cast<std::size_t>(in) * c + ic) * h + ih) * w + iw;
  }
};

struct Handles {
  cudnnHandle_t dnn = nullptr;
  cudaStream_t stream = nullptr;
  Handles() {
    REQUIRE(cudnnCreate(&dnn) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
    REQUIRE(cudnnSetStream(dnn, stream) == CUDNN_STATUS_SUCCESS);
  }
  ~Handles() {
    cudaStreamSynchronize(stream);
    cudnnDestroy(dnn);
    cudaStreamDestroy(stream);
  }
};

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(cudnnTensorFormat_t f, Dims dims, cudnnDataType_t t = CUDNN_DATA_FLOAT) {
    REQUIRE(cudnnCreateTensorDescriptor(&d) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(d, f, t, dims.n, dims.c, dims.h, dims.w) == CUDNN_STATUS_SUCCESS);
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
};

// ---- Convolution ----

struct ConvCase {
  cudnnTensorFormat_t format;
  int n, c, h, w, k, kh, kw, pad_h, pad_w, sh, sw, dh, dw;
  cudnnConvolutionMode_t mode;
  std::string name() const {
    return std::string(format == CUDNN_TENSOR_NHWC ? "NHWC" : "NCHW") + " x(" + std::to_string(n) + "," +
           std::to_string(c) + "," + std::to_string(h) + "," + std::to_string(w) + ") k" + std::to_string(k) + " " +
           std::to_string(kh) + "x" + std::to_string(kw) + " pad " + std::to_string(pad_h) + "," +
           std::to_string(pad_w) + " stride " + std::to_string(sh) + "," + std::to_string(sw) + " dilation " +
           std::to_string(dh) + "," + std::to_string(dw) + (mode == CUDNN_CONVOLUTION ? " convolution" : " xcorr");
  }
  int oh() const { return (h + 2 * pad_h - ((kh - 1) * dh + 1)) / sh + 1; }
  int ow() const { return (w + 2 * pad_w - ((kw - 1) * dw + 1)) / sw + 1; }
  Dims x() const { return {n, c, h, w}; }
  Dims f() const { return {k, c, kh, kw}; }  // NHWC filters are stored (K, KH, KW, C): Dims::at does that
  Dims y() const { return {n, k, oh(), ow()}; }
};

// The three directions by the definition, in double: y = x (*) w, dx = dy (*)^T w, dw = dy (*)^T x.
struct ConvReference {
  std::vector<double> y, dx, dw;
  ConvReference(const ConvCase& p, const std::vector<float>& x, const std::vector<float>& w,
                const std::vector<float>& dy) {
    const auto fmt = p.format;
    const Dims X = p.x(), F = p.f(), Y = p.y();
    y.assign(Y.count(), 0.0), dx.assign(X.count(), 0.0), dw.assign(F.count(), 0.0);
    for (int n = 0; n < p.n; ++n)
      for (int k = 0; k < p.k; ++k)
        for (int oh = 0; oh < Y.h; ++oh)
          for (int ow = 0; ow < Y.w; ++ow)
            for (int c = 0; c < p.c; ++c)
              for (int r = 0; r < p.kh; ++r)
                for (int t = 0; t < p.kw; ++t) {
                  const int ih = oh * p.sh - p.pad_h + r * p.dh, iw = ow * p.sw - p.pad_w + t * p.dw;
                  if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
                  // A true convolution flips the kernel; cross-correlation does not.
                  const int fr = p.mode == CUDNN_CONVOLUTION ? p.kh - 1 - r : r;
                  const int ft = p.mode == CUDNN_CONVOLUTION ? p.kw - 1 - t : t;
                  const std::size_t xi = X.at(fmt, n, c, ih, iw), wi = F.at(fmt, k, c, fr, ft),
                                    yi = Y.at(fmt, n, k, oh, ow);
                  y[yi] += double{x[xi]} * w[wi];
                  dx[xi] += double{dy[yi]} * w[wi];
                  dw[wi] += double{dy[yi]} * x[xi];
                }
  }
};

std::vector<double> blend(const std::vector<double>& v, double alpha, const std::vector<float>& prior, double beta) {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = alpha * v[i] + (beta == 0 ? 0.0 : beta * prior[i]);
  return out;
}

struct ConvDescs {
  TensorDesc x, y;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  explicit ConvDescs(const ConvCase& p, cudnnMathType_t math = CUDNN_DEFAULT_MATH)
      : x(p.format, p.x()), y(p.format, p.y()) {
    REQUIRE(cudnnCreateFilterDescriptor(&w) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, p.format, p.k, p.c, p.kh, p.kw) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateConvolutionDescriptor(&conv) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolution2dDescriptor(conv, p.pad_h, p.pad_w, p.sh, p.sw, p.dh, p.dw, p.mode,
                                            CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolutionMathType(conv, math) == CUDNN_STATUS_SUCCESS);
  }
  ~ConvDescs() {
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
};

const ConvCase kConvCases[] = {
    {CUDNN_TENSOR_NHWC, 2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION},
    {CUDNN_TENSOR_NCHW, 2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, CUDNN_CONVOLUTION},
    {CUDNN_TENSOR_NHWC, 3, 2, 9, 8, 5, 3, 2, 2, 0, 2, 2, 1, 1, CUDNN_CONVOLUTION},
    {CUDNN_TENSOR_NCHW, 2, 3, 10, 9, 3, 3, 3, 1, 2, 1, 2, 2, 2, CUDNN_CROSS_CORRELATION},
    {CUDNN_TENSOR_NHWC, 1, 4, 8, 8, 2, 2, 3, 0, 1, 2, 1, 2, 1, CUDNN_CONVOLUTION},
    {CUDNN_TENSOR_NCHW, 2, 2, 5, 5, 3, 1, 1, 0, 0, 2, 2, 1, 1, CUDNN_CROSS_CORRELATION},
    // Large enough that the double works through the batch in several chunks.
    {CUDNN_TENSOR_NHWC, 9, 16, 64, 64, 4, 3, 3, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION},
};

}  // namespace

TEST_CASE("emulated cuDNN convolutions match the definition in every direction", "[emulation][cudnn]") {
  Handles h;
  for (const ConvCase& p : kConvCases) {
    INFO(p.name());
    ConvDescs d(p);
    int on = 0, oc = 0, ohh = 0, oww = 0;
    REQUIRE(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x.d, d.w, &on, &oc, &ohh, &oww) == CUDNN_STATUS_SUCCESS);
    CHECK((on == p.n && oc == p.k && ohh == p.oh() && oww == p.ow()));

    const auto xv = random_values(p.x().count(), 1), wv = random_values(p.f().count(), 2),
               dyv = random_values(p.y().count(), 3);
    const ConvReference ref(p, xv, wv, dyv);
    DeviceFloats x(xv), w(wv), dy(dyv);

    // Each algorithm the heuristics offer, with the workspace it asks for.
    int max_count = 0, returned = 0;
    REQUIRE(cudnnGetConvolutionForwardAlgorithmMaxCount(h.dnn, &max_count) == CUDNN_STATUS_SUCCESS);
    std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(static_cast<std::size_t>(max_count));
    REQUIRE(cudnnGetConvolutionForwardAlgorithm_v7(h.dnn, d.x.d, d.w, d.conv, d.y.d, max_count, &returned,
                                                   fwd.data()) == CUDNN_STATUS_SUCCESS);
    REQUIRE(returned > 0);
    for (int i = 0; i < returned; ++i) {
      const auto algo = fwd[static_cast<std::size_t>(i)].algo;
      INFO("forward algo " << algo);
      std::size_t ws_bytes = 0;
      REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(h.dnn, d.x.d, d.w, d.conv, d.y.d, algo, &ws_bytes) ==
              CUDNN_STATUS_SUCCESS);
      CHECK(ws_bytes == fwd[static_cast<std::size_t>(i)].memory);
      DeviceFloats ws((ws_bytes + 3) / 4, 0.0f), y(p.y().count());  // y: NaN
      const float one = 1, zero = 0;
      REQUIRE(cudnnConvolutionForward(h.dnn, &one, d.x.d, x.ptr, d.w, w.ptr, d.conv, algo, ws.ptr, ws_bytes, &zero,
                                      d.y.d, y.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(y.get(), ref.y, "forward, beta 0 over NaN");
      if (ws_bytes > 0) CHECK(std::isnan(ws.get()[0]));  // the double scribbles its workspace
      const auto prior = random_values(p.y().count(), 4);
      y.put(prior);
      const float alpha = 0.5f, beta = -2.0f;
      REQUIRE(cudnnConvolutionForward(h.dnn, &alpha, d.x.d, x.ptr, d.w, w.ptr, d.conv, algo, ws.ptr, ws_bytes, &beta,
                                      d.y.d, y.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(y.get(), blend(ref.y, 0.5, prior, -2.0), "forward, alpha 0.5 beta -2");
    }

    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(static_cast<std::size_t>(max_count) + 8);
    REQUIRE(cudnnFindConvolutionBackwardDataAlgorithm(h.dnn, d.w, d.y.d, d.conv, d.x.d, 8, &returned, data.data()) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(returned > 0);
    for (int i = 0; i < returned; ++i) {
      const auto algo = data[static_cast<std::size_t>(i)].algo;
      INFO("backward-data algo " << algo);
      std::size_t ws_bytes = 0;
      REQUIRE(cudnnGetConvolutionBackwardDataWorkspaceSize(h.dnn, d.w, d.y.d, d.conv, d.x.d, algo, &ws_bytes) ==
              CUDNN_STATUS_SUCCESS);
      DeviceFloats ws((ws_bytes + 3) / 4), dx(p.x().count());
      const float one = 1, zero = 0;
      REQUIRE(cudnnConvolutionBackwardData(h.dnn, &one, d.w, w.ptr, d.y.d, dy.ptr, d.conv, algo, ws.ptr, ws_bytes,
                                           &zero, d.x.d, dx.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(dx.get(), ref.dx, "backward-data, beta 0 over NaN");
      const auto prior = random_values(p.x().count(), 5);
      dx.put(prior);
      const float alpha = 2.0f, beta = 0.25f;
      REQUIRE(cudnnConvolutionBackwardData(h.dnn, &alpha, d.w, w.ptr, d.y.d, dy.ptr, d.conv, algo, ws.ptr, ws_bytes,
                                           &beta, d.x.d, dx.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(dx.get(), blend(ref.dx, 2.0, prior, 0.25), "backward-data, alpha 2 beta 0.25");
    }

    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(8);
    REQUIRE(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h.dnn, d.x.d, d.y.d, d.conv, d.w, 8, &returned,
                                                          filter.data()) == CUDNN_STATUS_SUCCESS);
    REQUIRE(returned > 0);
    for (int i = 0; i < returned; ++i) {
      const auto algo = filter[static_cast<std::size_t>(i)].algo;
      INFO("backward-filter algo " << algo);
      std::size_t ws_bytes = 0;
      REQUIRE(cudnnGetConvolutionBackwardFilterWorkspaceSize(h.dnn, d.x.d, d.y.d, d.conv, d.w, algo, &ws_bytes) ==
              CUDNN_STATUS_SUCCESS);
      DeviceFloats ws((ws_bytes + 3) / 4), dw(p.f().count());
      const float one = 1, zero = 0;
      REQUIRE(cudnnConvolutionBackwardFilter(h.dnn, &one, d.x.d, x.ptr, d.y.d, dy.ptr, d.conv, algo, ws.ptr, ws_bytes,
                                             &zero, d.w, dw.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(dw.get(), ref.dw, "backward-filter, beta 0 over NaN", 1e-4);
      const auto prior = random_values(p.f().count(), 6);
      dw.put(prior);
      const float alpha = -1.0f, beta = 3.0f;
      REQUIRE(cudnnConvolutionBackwardFilter(h.dnn, &alpha, d.x.d, x.ptr, d.y.d, dy.ptr, d.conv, algo, ws.ptr,
                                             ws_bytes, &beta, d.w, dw.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(dw.get(), blend(ref.dw, -1.0, prior, 3.0), "backward-filter, alpha -1 beta 3", 1e-4);
    }
  }
}

TEST_CASE("emulated cuDNN queued work keeps the values of its call", "[emulation][cudnn]") {
  // Descriptors and host alpha/beta are read when the call is made: changing them before the work runs
  // (it runs only when the host waits) must not change the result.
  Handles h;
  const ConvCase p{CUDNN_TENSOR_NHWC, 2, 3, 6, 6, 2, 3, 3, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
  ConvDescs d(p);
  const auto xv = random_values(p.x().count(), 7), wv = random_values(p.f().count(), 8),
             dyv = random_values(p.y().count(), 9);
  const ConvReference ref(p, xv, wv, dyv);
  DeviceFloats x(xv), w(wv), y(p.y().count());
  float alpha = 1, beta = 0;
  REQUIRE(cudnnConvolutionForward(h.dnn, &alpha, d.x.d, x.ptr, d.w, w.ptr, d.conv,
                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &beta, d.y.d,
                                  y.ptr) == CUDNN_STATUS_SUCCESS);
  alpha = 100, beta = 100;
  REQUIRE(cudnnSetConvolution2dDescriptor(d.conv, 0, 0, 2, 2, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 1, 1, 1, 1) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(d.y.d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, 1) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudaStreamSynchronize(h.stream) == cudaSuccess);
  check_close(y.get(), ref.y, "forward after the descriptors changed");
}

TEST_CASE("emulated cuDNN algorithm queries", "[emulation][cudnn]") {
  Handles h;
  const ConvCase p{CUDNN_TENSOR_NHWC, 4, 8, 16, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
  for (cudnnMathType_t math : {CUDNN_DEFAULT_MATH, CUDNN_FMA_MATH}) {
    INFO("math type " << math);
    ConvDescs d(p, math);
    int count = 0, returned = 0;
    REQUIRE(cudnnGetConvolutionForwardAlgorithmMaxCount(h.dnn, &count) == CUDNN_STATUS_SUCCESS);
    CHECK(count == CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(static_cast<std::size_t>(count));
    REQUIRE(cudnnFindConvolutionForwardAlgorithm(h.dnn, d.x.d, d.w, d.conv, d.y.d, count, &returned, fwd.data()) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(returned >= 2);
    bool tensor_op = false, workspace = false, no_workspace = false;
    for (int i = 0; i < returned; ++i) {
      const auto& r = fwd[static_cast<std::size_t>(i)];
      CHECK(r.status == CUDNN_STATUS_SUCCESS);
      if (i > 0) CHECK(r.time >= fwd[static_cast<std::size_t>(i) - 1].time);  // fastest first
      std::size_t ws = 1;
      REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(h.dnn, d.x.d, d.w, d.conv, d.y.d, r.algo, &ws) ==
              CUDNN_STATUS_SUCCESS);
      CHECK(ws == r.memory);
      tensor_op |= r.mathType == CUDNN_TENSOR_OP_MATH;
      workspace |= r.memory > 0;
      no_workspace |= r.memory == 0 && r.determinism == CUDNN_DETERMINISTIC;
      if (math == CUDNN_FMA_MATH) CHECK(r.mathType == CUDNN_FMA_MATH);  // FMA math never offers TF32
    }
    CHECK(tensor_op == (math == CUDNN_DEFAULT_MATH));
    CHECK(workspace);
    CHECK(no_workspace);
    // Fewer results when fewer are asked for; none is BAD_PARAM.
    REQUIRE(cudnnFindConvolutionForwardAlgorithm(h.dnn, d.x.d, d.w, d.conv, d.y.d, 1, &returned, fwd.data()) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(returned == 1);
    CHECK(cudnnFindConvolutionForwardAlgorithm(h.dnn, d.x.d, d.w, d.conv, d.y.d, 0, &returned, fwd.data()) ==
          CUDNN_STATUS_BAD_PARAM);

    // Backward-data ALGO_0 and backward-filter ALGO_0/ALGO_3 are non-deterministic, as in cuDNN.
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(8);
    REQUIRE(cudnnGetConvolutionBackwardDataAlgorithm_v7(h.dnn, d.w, d.y.d, d.conv, d.x.d, 8, &returned,
                                                        data.data()) == CUDNN_STATUS_SUCCESS);
    bool data_nondeterministic = false, data_deterministic = false;
    for (int i = 0; i < returned; ++i) {
      const auto& r = data[static_cast<std::size_t>(i)];
      CHECK((r.determinism == CUDNN_NON_DETERMINISTIC) == (r.algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0));
      data_nondeterministic |= r.determinism == CUDNN_NON_DETERMINISTIC;
      data_deterministic |= r.determinism == CUDNN_DETERMINISTIC;
    }
    CHECK((data_nondeterministic && data_deterministic));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(8);
    REQUIRE(cudnnFindConvolutionBackwardFilterAlgorithm(h.dnn, d.x.d, d.y.d, d.conv, d.w, 8, &returned,
                                                        filter.data()) == CUDNN_STATUS_SUCCESS);
    bool filter_deterministic = false;
    for (int i = 0; i < returned; ++i) {
      const auto& r = filter[static_cast<std::size_t>(i)];
      const bool nondet =
          r.algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || r.algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
      CHECK((r.determinism == CUDNN_NON_DETERMINISTIC) == nondet);
      filter_deterministic |= !nondet;
    }
    CHECK(filter_deterministic);

    // An algorithm the double does not offer.
    std::size_t ws = 0;
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h.dnn, d.x.d, d.w, d.conv, d.y.d, CUDNN_CONVOLUTION_FWD_ALGO_FFT,
                                                  &ws) == CUDNN_STATUS_NOT_SUPPORTED);
  }
}

TEST_CASE("emulated cuDNN convolution argument errors", "[emulation][cudnn]") {
  Handles h;
  const ConvCase p{CUDNN_TENSOR_NHWC, 2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
  ConvDescs d(p);
  DeviceFloats x(p.x().count(), 0.0f), w(p.f().count(), 0.0f), y(p.y().count());
  const float one = 1, zero = 0;
  const auto fwd = [&](cudnnConvolutionFwdAlgo_t algo, void* ws, std::size_t bytes, const void* xp,
                       cudnnTensorDescriptor_t xd, cudnnTensorDescriptor_t yd) {
    return cudnnConvolutionForward(h.dnn, &one, xd, xp, d.w, w.ptr, d.conv, algo, ws, bytes, &zero, yd, y.ptr);
  };
  const auto precomp = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  std::size_t need = 0;
  REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(h.dnn, d.x.d, d.w, d.conv, d.y.d, precomp, &need) ==
          CUDNN_STATUS_SUCCESS);
  REQUIRE(need > 0);
  DeviceFloats ws(need / 4 + 1, 0.0f);

  SECTION("a workspace smaller than the algorithm needs") {
    CHECK(fwd(precomp, ws.ptr, need - 4, x.ptr, d.x.d, d.y.d) == CUDNN_STATUS_BAD_PARAM);
    CHECK(fwd(precomp, nullptr, 0, x.ptr, d.x.d, d.y.d) == CUDNN_STATUS_BAD_PARAM);
    CHECK(fwd(precomp, ws.ptr, need, x.ptr, d.x.d, d.y.d) == CUDNN_STATUS_SUCCESS);
  }
  SECTION("host memory where device memory is required") {
    std::vector<float> host(p.x().count() + need);
    CHECK(fwd(precomp, ws.ptr, need, host.data(), d.x.d, d.y.d) == CUDNN_STATUS_BAD_PARAM);
    CHECK(fwd(precomp, host.data(), need, x.ptr, d.x.d, d.y.d) == CUDNN_STATUS_BAD_PARAM);
    // A device buffer too small for the tensor the descriptor describes.
    DeviceFloats small(p.x().count() - 1, 0.0f);
    CHECK(fwd(precomp, ws.ptr, need, small.ptr, d.x.d, d.y.d) == CUDNN_STATUS_BAD_PARAM);
  }
  SECTION("inconsistent shapes") {
    TensorDesc wrong_y(p.format, {p.n, p.k, p.oh() + 1, p.ow()}), wrong_c(p.format, {p.n, p.c + 1, p.h, p.w});
    CHECK(fwd(precomp, ws.ptr, need, x.ptr, d.x.d, wrong_y.d) == CUDNN_STATUS_BAD_PARAM);
    int n, c, hh, ww;
    CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv, wrong_c.d, d.w, &n, &c, &hh, &ww) == CUDNN_STATUS_BAD_PARAM);
    // A dilated kernel larger than the padded input leaves no output.
    TensorDesc tiny(p.format, {1, p.c, 1, 1});
    REQUIRE(cudnnSetConvolution2dDescriptor(d.conv, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv, tiny.d, d.w, &n, &c, &hh, &ww) == CUDNN_STATUS_BAD_PARAM);
  }
  SECTION("unsupported data types and formats") {
    TensorDesc dx(p.format, p.x(), CUDNN_DATA_DOUBLE);
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, x.ptr, dx.d, d.y.d) == CUDNN_STATUS_NOT_SUPPORTED);
    cudnnTensorDescriptor_t t = nullptr;
    REQUIRE(cudnnCreateTensorDescriptor(&t) == CUDNN_STATUS_SUCCESS);
    CHECK(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NCHW_VECT_C, CUDNN_DATA_FLOAT, 1, 4, 2, 2) ==
          CUDNN_STATUS_NOT_SUPPORTED);
    CHECK(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 0, 4, 2, 2) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 4, -2, 2) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnDestroyTensorDescriptor(t) == CUDNN_STATUS_SUCCESS);
    CHECK(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW_VECT_C, 4, 4, 3, 3) ==
          CUDNN_STATUS_NOT_SUPPORTED);
    CHECK(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, 4, 0, 3, 3) == CUDNN_STATUS_BAD_PARAM);
  }
  SECTION("bad convolution descriptors") {
    const auto set = [&](int ph, int pw, int u, int v, int dh, int dw) {
      return cudnnSetConvolution2dDescriptor(d.conv, ph, pw, u, v, dh, dw, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT);
    };
    CHECK(set(-1, 0, 1, 1, 1, 1) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 0, 1, 1, 1) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 1, 1, 1, 0) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetConvolutionMathType(d.conv, static_cast<cudnnMathType_t>(42)) == CUDNN_STATUS_BAD_PARAM);
  }
  SECTION("a null handle") {
    CHECK(cudnnConvolutionForward(nullptr, &one, d.x.d, x.ptr, d.w, w.ptr, d.conv,
                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y.d,
                                  y.ptr) == CUDNN_STATUS_BAD_PARAM);
  }
}

TEST_CASE("emulated cuDNN backward bias and add tensor", "[emulation][cudnn]") {
  Handles h;
  const Dims dyd{3, 5, 4, 2};
  for (cudnnTensorFormat_t f : {CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NCHW}) {
    INFO("format " << f);
    const auto dyv = random_values(dyd.count(), 10);
    std::vector<double> sum(5, 0.0);
    for (int n = 0; n < dyd.n; ++n)
      for (int c = 0; c < dyd.c; ++c)
        for (int hh = 0; hh < dyd.h; ++hh)
          for (int w = 0; w < dyd.w; ++w) sum[static_cast<std::size_t>(c)] += dyv[dyd.at(f, n, c, hh, w)];
    TensorDesc dyt(f, dyd), dbt(f, {1, 5, 1, 1});
    DeviceFloats dy(dyv), db(5);
    const float one = 1, zero = 0, alpha = 2, beta = 0.5f;
    REQUIRE(cudnnConvolutionBackwardBias(h.dnn, &one, dyt.d, dy.ptr, &zero, dbt.d, db.ptr) == CUDNN_STATUS_SUCCESS);
    check_close(db.get(), sum, "backward bias");
    const auto prior = random_values(5, 11);
    db.put(prior);
    REQUIRE(cudnnConvolutionBackwardBias(h.dnn, &alpha, dyt.d, dy.ptr, &beta, dbt.d, db.ptr) == CUDNN_STATUS_SUCCESS);
    check_close(db.get(), blend(sum, 2, prior, 0.5), "backward bias, alpha 2 beta 0.5");
    TensorDesc wrong(f, {1, 4, 1, 1});
    CHECK(cudnnConvolutionBackwardBias(h.dnn, &one, dyt.d, dy.ptr, &zero, wrong.d, db.ptr) == CUDNN_STATUS_BAD_PARAM);
  }

  // C = alpha A + beta C, A broadcast along its dimensions of 1 (A may even be in another layout).
  const Dims cd{2, 3, 4, 5};
  for (Dims ad : {Dims{1, 3, 1, 1}, Dims{2, 1, 4, 1}, Dims{1, 1, 1, 1}, Dims{2, 3, 4, 5}, Dims{1, 3, 4, 5}})
    for (cudnnTensorFormat_t af : {CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NCHW}) {
      const cudnnTensorFormat_t cf = CUDNN_TENSOR_NHWC;
      INFO("A (" << ad.n << "," << ad.c << "," << ad.h << "," << ad.w << ") format " << af);
      const auto av = random_values(ad.count(), 12), prior = random_values(cd.count(), 13);
      std::vector<double> want(cd.count());
      for (int n = 0; n < cd.n; ++n)
        for (int c = 0; c < cd.c; ++c)
          for (int hh = 0; hh < cd.h; ++hh)
            for (int w = 0; w < cd.w; ++w) {
              const float a =
                  av[ad.at(af, ad.n == 1 ? 0 : n, ad.c == 1 ? 0 : c, ad.h == 1 ? 0 : hh, ad.w == 1 ? 0 : w)];
              const std::size_t i = cd.at(cf, n, c, hh, w);
              want[i] = 1.5 * a + 0.5 * prior[i];
            }
      TensorDesc at(af, ad), ct(cf, cd);
      DeviceFloats a(av), c(prior);
      const float alpha = 1.5f, beta = 0.5f;
      REQUIRE(cudnnAddTensor(h.dnn, &alpha, at.d, a.ptr, &beta, ct.d, c.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(c.get(), want, "add tensor");
    }
  TensorDesc bad(CUDNN_TENSOR_NHWC, {1, 2, 1, 1}), ct(CUDNN_TENSOR_NHWC, cd);
  DeviceFloats a(2, 0.0f), c(cd.count(), 0.0f);
  const float one = 1;
  CHECK(cudnnAddTensor(h.dnn, &one, bad.d, a.ptr, &one, ct.d, c.ptr) == CUDNN_STATUS_BAD_PARAM);
}

// ---- Max pooling ----

namespace {
struct PoolCase {
  cudnnTensorFormat_t format;
  int n, c, h, w, wh, ww, ph, pw, sh, sw;
  int oh() const { return 1 + (h + 2 * ph - wh) / sh; }
  int ow() const { return 1 + (w + 2 * pw - ww) / sw; }
};

// Forward: the max over the window's image cells (padding never wins); backward: dy to the first cell
// (row-major in the window) equal to the max, summed over overlapping windows.
void pool_reference(const PoolCase& p, const std::vector<float>& x, const std::vector<float>& dy,
                    std::vector<double>* y, std::vector<double>* dx) {
  const Dims X{p.n, p.c, p.h, p.w}, Y{p.n, p.c, p.oh(), p.ow()};
  y->assign(Y.count(), 0.0), dx->assign(X.count(), 0.0);
  for (int n = 0; n < p.n; ++n)
    for (int c = 0; c < p.c; ++c)
      for (int oh = 0; oh < Y.h; ++oh)
        for (int ow = 0; ow < Y.w; ++ow) {
          double m = -INFINITY;
          std::size_t arg = 0;
          for (int i = 0; i < p.wh; ++i)
            for (int j = 0; j < p.ww; ++j) {
              const int ih = oh * p.sh - p.ph + i, iw = ow * p.sw - p.pw + j;
              if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
              const std::size_t xi = X.at(p.format, n, c, ih, iw);
              if (x[xi] > m) m = x[xi], arg = xi;
            }
          const std::size_t yi = Y.at(p.format, n, c, oh, ow);
          (*y)[yi] = m;
          (*dx)[arg] += dy[yi];
        }
}
}  // namespace

TEST_CASE("emulated cuDNN max pooling forward and backward", "[emulation][cudnn]") {
  Handles h;
  const PoolCase cases[] = {
      {CUDNN_TENSOR_NHWC, 2, 3, 6, 6, 2, 2, 0, 0, 2, 2, },   // the usual 2x2/2
      {CUDNN_TENSOR_NCHW, 2, 3, 7, 6, 3, 3, 1, 1, 2, 2},     // overlapping windows and padding
      {CUDNN_TENSOR_NHWC, 1, 2, 9, 8, 3, 2, 2, 1, 1, 3},     // windows reaching mostly into the padding
  };
  for (const PoolCase& p : cases)
    for (cudnnPoolingMode_t mode : {CUDNN_POOLING_MAX, CUDNN_POOLING_MAX_DETERMINISTIC}) {
      INFO("pool " << p.wh << "x" << p.ww << " pad " << p.ph << "," << p.pw << " stride " << p.sh << "," << p.sw
                   << " format " << p.format << " mode " << mode);
      const Dims X{p.n, p.c, p.h, p.w}, Y{p.n, p.c, p.oh(), p.ow()};
      // Negative integers: ties are everywhere (the first in window order must get the gradient) and a
      // padding cell counted as 0 would win.
      std::vector<float> xv = random_values(X.count(), 14, -4.0f, -1.0f);
      for (float& v : xv) v = std::round(v);
      const auto dyv = random_values(Y.count(), 15);
      std::vector<double> yref, dxref;
      pool_reference(p, xv, dyv, &yref, &dxref);

      cudnnPoolingDescriptor_t pd = nullptr;
      REQUIRE(cudnnCreatePoolingDescriptor(&pd) == CUDNN_STATUS_SUCCESS);
      REQUIRE(cudnnSetPooling2dDescriptor(pd, mode, CUDNN_PROPAGATE_NAN, p.wh, p.ww, p.ph, p.pw, p.sh, p.sw) ==
              CUDNN_STATUS_SUCCESS);
      TensorDesc xt(p.format, X), yt(p.format, Y);
      int n, c, oh, ow;
      REQUIRE(cudnnGetPooling2dForwardOutputDim(pd, xt.d, &n, &c, &oh, &ow) == CUDNN_STATUS_SUCCESS);
      CHECK((n == p.n && c == p.c && oh == p.oh() && ow == p.ow()));
      DeviceFloats x(xv), y(Y.count()), dy(dyv), dx(X.count());
      const float one = 1, zero = 0;
      REQUIRE(cudnnPoolingForward(h.dnn, pd, &one, xt.d, x.ptr, &zero, yt.d, y.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(y.get(), yref, "pooling forward");
      REQUIRE(cudnnPoolingBackward(h.dnn, pd, &one, yt.d, y.ptr, yt.d, dy.ptr, xt.d, x.ptr, &zero, xt.d, dx.ptr) ==
              CUDNN_STATUS_SUCCESS);
      check_close(dx.get(), dxref, "pooling backward");

      const auto prior_y = random_values(Y.count(), 16), prior_dx = random_values(X.count(), 17);
      DeviceFloats y2(prior_y), dx2(prior_dx);
      const float alpha = 2, beta = -0.5f;
      REQUIRE(cudnnPoolingForward(h.dnn, pd, &alpha, xt.d, x.ptr, &beta, yt.d, y2.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(y2.get(), blend(yref, 2, prior_y, -0.5), "pooling forward, alpha 2 beta -0.5");
      REQUIRE(cudnnPoolingBackward(h.dnn, pd, &alpha, yt.d, y.ptr, yt.d, dy.ptr, xt.d, x.ptr, &beta, xt.d,
                                   dx2.ptr) == CUDNN_STATUS_SUCCESS);
      check_close(dx2.get(), blend(dxref, 2, prior_dx, -0.5), "pooling backward, alpha 2 beta -0.5");
      REQUIRE(cudnnDestroyPoolingDescriptor(pd) == CUDNN_STATUS_SUCCESS);
    }
}

TEST_CASE("emulated cuDNN max pooling NaN option and errors", "[emulation][cudnn]") {
  Handles h;
  const Dims X{1, 1, 2, 4}, Y{1, 1, 1, 2};
  const std::vector<float> xv = {1, kNaN, 3, 4, 2, 0, 5, 6};  // window 2x2/2: {1, NaN, 2, 0} and {3, 4, 5, 6}
  DeviceFloats x(xv), y(Y.count());
  TensorDesc xt(CUDNN_TENSOR_NCHW, X), yt(CUDNN_TENSOR_NCHW, Y);
  cudnnPoolingDescriptor_t pd = nullptr;
  REQUIRE(cudnnCreatePoolingDescriptor(&pd) == CUDNN_STATUS_SUCCESS);
  const float one = 1, zero = 0;

  REQUIRE(cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_MAX, CUDNN_PROPAGATE_NAN, 2, 2, 0, 0, 2, 2) ==
          CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnPoolingForward(h.dnn, pd, &one, xt.d, x.ptr, &zero, yt.d, y.ptr) == CUDNN_STATUS_SUCCESS);
  auto got = y.get();
  CHECK(std::isnan(got[0]));
  CHECK(got[1] == 6.0f);
  REQUIRE(cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_MAX, CUDNN_NOT_PROPAGATE_NAN, 2, 2, 0, 0, 2, 2) ==
          CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnPoolingForward(h.dnn, pd, &one, xt.d, x.ptr, &zero, yt.d, y.ptr) == CUDNN_STATUS_SUCCESS);
  got = y.get();
  CHECK(got[0] == 2.0f);
  CHECK(got[1] == 6.0f);

  // Average pooling is legal to describe but not implemented by the double; bad windows are BAD_PARAM.
  REQUIRE(cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING, CUDNN_NOT_PROPAGATE_NAN, 2, 2,
                                      0, 0, 2, 2) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnPoolingForward(h.dnn, pd, &one, xt.d, x.ptr, &zero, yt.d, y.ptr) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_MAX, CUDNN_NOT_PROPAGATE_NAN, 0, 2, 0, 0, 2, 2) ==
        CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_MAX, CUDNN_NOT_PROPAGATE_NAN, 2, 2, -1, 0, 2, 2) ==
        CUDNN_STATUS_BAD_PARAM);
  REQUIRE(cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_MAX, CUDNN_NOT_PROPAGATE_NAN, 2, 2, 0, 0, 2, 2) ==
          CUDNN_STATUS_SUCCESS);
  TensorDesc wrong_y(CUDNN_TENSOR_NCHW, {1, 1, 1, 3});
  CHECK(cudnnPoolingForward(h.dnn, pd, &one, xt.d, x.ptr, &zero, wrong_y.d, y.ptr) == CUDNN_STATUS_BAD_PARAM);
  std::vector<float> host(8);
  CHECK(cudnnPoolingForward(h.dnn, pd, &one, xt.d, host.data(), &zero, yt.d, y.ptr) == CUDNN_STATUS_BAD_PARAM);
  REQUIRE(cudnnDestroyPoolingDescriptor(pd) == CUDNN_STATUS_SUCCESS);
}

TEST_CASE("emulated cuDNN version and status names", "[emulation][cudnn]") {
  CHECK(cudnnGetVersion() == static_cast<std::size_t>(CUDNN_VERSION));
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_SUCCESS)) == "CUDNN_STATUS_SUCCESS");
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM)) == "CUDNN_STATUS_BAD_PARAM");
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED)) == "CUDNN_STATUS_NOT_SUPPORTED");
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_EXECUTION_FAILED)) == "CUDNN_STATUS_EXECUTION_FAILED");
}

// ---- cuBLAS ----

namespace {
struct Cublas {
  cublasHandle_t h = nullptr;
  cudaStream_t stream = nullptr;
  Cublas() {
    REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
    REQUIRE(cublasSetStream(h, stream) == CUBLAS_STATUS_SUCCESS);
  }
  ~Cublas() {
    cudaStreamSynchronize(stream);
    cublasDestroy(h);
    cudaStreamDestroy(stream);
  }
};
}  // namespace

TEST_CASE("emulated cuBLAS sgemm in every transpose combination", "[emulation][cublas]") {
  Cublas b;
  const int m = 5, n = 4, k = 3;
  for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
    for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
      INFO("transa " << ta << " transb " << tb);
      // Column-major, leading dimensions larger than the rows: the gaps must be neither read nor written.
      const int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
      const int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
      const int lda = a_rows + 2, ldb = b_rows + 1, ldc = m + 3;
      const auto av = random_values(static_cast<std::size_t>(lda) * a_cols, 20),
                 bv = random_values(static_cast<std::size_t>(ldb) * b_cols, 21),
                 prior = random_values(static_cast<std::size_t>(ldc) * n, 22);
      const auto opa = [&](int i, int l) { return ta == CUBLAS_OP_N ? av[i + l * lda] : av[l + i * lda]; };
      const auto opb = [&](int l, int j) { return tb == CUBLAS_OP_N ? bv[l + j * ldb] : bv[j + l * ldb]; };
      std::vector<double> prod(prior.size(), 0.0);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j)
          for (int l = 0; l < k; ++l) prod[i + j * ldc] += double{opa(i, l)} * opb(l, j);

      DeviceFloats a(av), bm(bv), c(prior.size());  // c: NaN, including the gaps
      const float alpha = 1.5f, zero = 0, beta = 0.5f;
      REQUIRE(cublasSgemm(b.h, ta, tb, m, n, k, &alpha, a.ptr, lda, bm.ptr, ldb, &zero, c.ptr, ldc) ==
              CUBLAS_STATUS_SUCCESS);
      REQUIRE(cudaStreamSynchronize(b.stream) == cudaSuccess);
      auto got = c.get();
      std::vector<float> rows(static_cast<std::size_t>(m) * n);
      std::vector<double> want(rows.size());
      for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
          rows[i + j * m] = got[i + j * ldc], want[i + j * m] = 1.5 * prod[i + j * ldc];
          for (int g = m; g < ldc; ++g) CHECK(std::isnan(got[g + j * ldc]));  // gaps untouched
        }
      check_close(rows, want, "sgemm, beta 0 over NaN");

      c.put(prior);
      REQUIRE(cublasSgemm(b.h, ta, tb, m, n, k, &alpha, a.ptr, lda, bm.ptr, ldb, &beta, c.ptr, ldc) ==
              CUBLAS_STATUS_SUCCESS);
      got = c.get();
      std::vector<double> want_full(prior.size());
      for (std::size_t i = 0; i < prior.size(); ++i)
        want_full[i] = static_cast<int>(i % ldc) < m ? 1.5 * prod[i] + 0.5 * prior[i] : prior[i];
      check_close(got, want_full, "sgemm, alpha 1.5 beta 0.5");
    }
}

TEST_CASE("emulated cuBLAS sgemm quick returns, pointer modes and queued values", "[emulation][cublas]") {
  Cublas b;
  const int m = 3, n = 2, k = 4;
  DeviceFloats a(random_values(m * k, 30)), bm(random_values(k * n, 31)), c(m * n);
  const float zero = 0, two = 2;
  SECTION("alpha == 0 and beta == 0 write zeros without reading C") {
    REQUIRE(cublasSgemm(b.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &zero, a.ptr, m, bm.ptr, k, &zero, c.ptr, m) ==
            CUBLAS_STATUS_SUCCESS);
    check_close(c.get(), std::vector<double>(m * n, 0.0), "C");
  }
  SECTION("k == 0 scales C by beta") {
    const auto prior = random_values(m * n, 32);
    c.put(prior);
    REQUIRE(cublasSgemm(b.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, 0, &two, a.ptr, m, bm.ptr, 1, &two, c.ptr, m) ==
            CUBLAS_STATUS_SUCCESS);
    check_close(c.get(), blend(std::vector<double>(m * n, 0.0), 0, prior, 2), "C");
  }
  SECTION("host alpha/beta are read at call time") {
    float alpha = 1, beta = 0;
    REQUIRE(cublasSgemm(b.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, a.ptr, m, bm.ptr, k, &beta, c.ptr, m) ==
            CUBLAS_STATUS_SUCCESS);
    alpha = 1000, beta = 1000;
    const auto want = c.get();
    for (float v : want) CHECK(std::isfinite(v));
    REQUIRE(cublasSgemm(b.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &two, a.ptr, m, bm.ptr, k, &zero, c.ptr, m) ==
            CUBLAS_STATUS_SUCCESS);
    const auto twice = c.get();
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(twice[i] == Approx(2 * want[i]));
  }
  SECTION("device pointer mode reads alpha/beta from device memory") {
    DeviceFloats scalars(std::vector<float>{3.0f, 0.0f});
    const float one = 1;
    REQUIRE(cublasSgemm(b.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a.ptr, m, bm.ptr, k, &zero, c.ptr, m) ==
            CUBLAS_STATUS_SUCCESS);
    const auto once = c.get();
    REQUIRE(cublasSetPointerMode(b.h, CUBLAS_POINTER_MODE_DEVICE) == CUBLAS_STATUS_SUCCESS);
    CHECK(cublasSgemm(b.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a.ptr, m, bm.ptr, k, &zero, c.ptr, m) ==
          CUBLAS_STATUS_INVALID_VALUE);  // host scalars in device mode
    REQUIRE(cublasSgemm(b.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, scalars.ptr, a.ptr, m, bm.ptr, k, scalars.ptr + 1,
                        c.ptr, m) == CUBLAS_STATUS_SUCCESS);
    const auto thrice = c.get();
    for (std::size_t i = 0; i < once.size(); ++i) CHECK(thrice[i] == Approx(3 * once[i]));
  }
}

TEST_CASE("emulated cuBLAS sgemv in both transposes", "[emulation][cublas]") {
  Cublas b;
  const int m = 5, n = 3, lda = 7, incx = 2, incy = 3;
  const auto av = random_values(static_cast<std::size_t>(lda) * n, 40);
  for (cublasOperation_t t : {CUBLAS_OP_N, CUBLAS_OP_T}) {
    INFO("trans " << t);
    const int xl = t == CUBLAS_OP_N ? n : m, yl = t == CUBLAS_OP_N ? m : n;
    const auto xv = random_values(static_cast<std::size_t>(xl) * incx, 41);
    const auto prior = random_values(static_cast<std::size_t>(yl) * incy, 42);
    std::vector<double> want(prior.size()), want_beta(prior.size());
    for (std::size_t i = 0; i < prior.size(); ++i) want[i] = want_beta[i] = prior[i];
    for (int i = 0; i < yl; ++i) {
      double s = 0;
      for (int j = 0; j < xl; ++j) s += double{t == CUBLAS_OP_N ? av[i + j * lda] : av[j + i * lda]} * xv[j * incx];
      want[i * incy] = 2.0 * s;
      want_beta[i * incy] = 2.0 * s - prior[i * incy];
    }
    DeviceFloats a(av), x(xv), y(prior);
    // beta == 0: the elements of y are overwritten without being read (NaN there), the gaps stay.
    std::vector<float> poisoned = prior;
    for (int i = 0; i < yl; ++i) poisoned[i * incy] = kNaN;
    y.put(poisoned);
    const float alpha = 2, zero = 0, minus_one = -1;
    REQUIRE(cublasSgemv(b.h, t, m, n, &alpha, a.ptr, lda, x.ptr, incx, &zero, y.ptr, incy) == CUBLAS_STATUS_SUCCESS);
    check_close(y.get(), want, "sgemv, beta 0 over NaN");
    y.put(prior);
    REQUIRE(cublasSgemv(b.h, t, m, n, &alpha, a.ptr, lda, x.ptr, incx, &minus_one, y.ptr, incy) ==
            CUBLAS_STATUS_SUCCESS);
    check_close(y.get(), want_beta, "sgemv, alpha 2 beta -1");
  }
}

TEST_CASE("emulated cuBLAS argument errors", "[emulation][cublas]") {
  Cublas b;
  DeviceFloats a(64, 0.0f), bm(64, 0.0f), c(64, 0.0f);
  const float one = 1;
  const auto gemm = [&](cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb, int ldc,
                        const float* ap = nullptr) {
    return cublasSgemm(b.h, ta, tb, m, n, k, &one, ap ? ap : a.ptr, lda, bm.ptr, ldb, &one, c.ptr, ldc);
  };
  const auto N = CUBLAS_OP_N, T = CUBLAS_OP_T;
  CHECK(gemm(N, N, 4, 4, 4, 4, 4, 4) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(N, N, -1, 4, 4, 4, 4, 4) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(N, N, 4, 4, -1, 4, 4, 4) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(N, N, 4, 4, 4, 3, 4, 4) == CUBLAS_STATUS_INVALID_VALUE);  // lda < m
  CHECK(gemm(T, N, 4, 4, 2, 1, 4, 4) == CUBLAS_STATUS_INVALID_VALUE);  // A^T: lda < k
  CHECK(gemm(T, N, 6, 4, 2, 2, 4, 6) == CUBLAS_STATUS_SUCCESS);        // ... lda == k is enough
  CHECK(gemm(N, T, 4, 4, 2, 4, 3, 4) == CUBLAS_STATUS_INVALID_VALUE);  // B^T: ldb < n
  CHECK(gemm(N, N, 4, 4, 4, 4, 4, 3) == CUBLAS_STATUS_INVALID_VALUE);  // ldc < m
  CHECK(gemm(N, N, 0, 0, 0, 0, 1, 1) == CUBLAS_STATUS_INVALID_VALUE);  // lda < max(1, m)
  CHECK(gemm(static_cast<cublasOperation_t>(7), N, 4, 4, 4, 4, 4, 4) == CUBLAS_STATUS_INVALID_VALUE);
  std::vector<float> host(64);
  CHECK(gemm(N, N, 4, 4, 4, 4, 4, 4, host.data()) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(N, N, 8, 8, 8, 8, 8, 8) == CUBLAS_STATUS_SUCCESS);        // 64 floats each: exactly enough
  CHECK(gemm(N, N, 8, 8, 8, 8, 8, 9) == CUBLAS_STATUS_INVALID_VALUE);  // C with ldc 9 spans 71 floats
  CHECK(cublasSgemm(nullptr, N, N, 1, 1, 1, &one, a.ptr, 1, bm.ptr, 1, &one, c.ptr, 1) ==
        CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(cublasSgemm(b.h, N, N, 1, 1, 1, nullptr, a.ptr, 1, bm.ptr, 1, &one, c.ptr, 1) == CUBLAS_STATUS_INVALID_VALUE);

  CHECK(cublasSgemv(b.h, N, 4, 4, &one, a.ptr, 4, bm.ptr, 0, &one, c.ptr, 1) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemv(b.h, N, 4, 4, &one, a.ptr, 4, bm.ptr, 1, &one, c.ptr, 0) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemv(b.h, N, 4, 4, &one, a.ptr, 3, bm.ptr, 1, &one, c.ptr, 1) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemv(b.h, N, -1, 4, &one, a.ptr, 4, bm.ptr, 1, &one, c.ptr, 1) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemv(b.h, T, 4, 4, &one, a.ptr, 4, host.data(), 1, &one, c.ptr, 1) == CUBLAS_STATUS_INVALID_VALUE);

  CHECK(cublasSetWorkspace(b.h, host.data(), host.size() * sizeof(float)) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSetWorkspace(b.h, a.ptr, 64 * sizeof(float)) == CUBLAS_STATUS_SUCCESS);
  CHECK(cublasSetWorkspace(b.h, a.ptr, 65 * sizeof(float)) == CUBLAS_STATUS_INVALID_VALUE);  // past the allocation
  CHECK(cublasSetMathMode(b.h, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS);
  CHECK(cublasSetMathMode(b.h, static_cast<cublasMath_t>(9)) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSetAtomicsMode(b.h, CUBLAS_ATOMICS_NOT_ALLOWED) == CUBLAS_STATUS_SUCCESS);
  CHECK(cublasSetPointerMode(b.h, static_cast<cublasPointerMode_t>(5)) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(std::string(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)) == "CUBLAS_STATUS_INVALID_VALUE");
  CHECK(std::string(cublasGetStatusString(CUBLAS_STATUS_NOT_INITIALIZED)) == "CUBLAS_STATUS_NOT_INITIALIZED");
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}
