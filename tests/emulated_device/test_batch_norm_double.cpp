// test_batch_norm_double.cpp: the emulated cuDNN's batch normalization (cudnn_batch_norm.cpp) against
// reference loops written here from the textbook definitions (Ioffe and Szegedy 2015; the backward pass
// through dvar and dmean, not the double's closed form), in both tensor formats, with alpha/beta blending,
// cuDNN's unbiased running variance, and the argument errors the backend must never hit.
#include "support/catch.hpp"

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cmath>
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

struct DeviceFloats {
  float* ptr = nullptr;
  std::size_t count = 0;
  explicit DeviceFloats(std::size_t n, float fill = kNaN) : DeviceFloats(std::vector<float>(n, fill)) {}
  explicit DeviceFloats(const std::vector<float>& v) : count(v.size()) {
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&ptr), count * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(ptr, v.data(), count * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  ~DeviceFloats() { cudaFree(ptr); }
  std::vector<float> get() const {
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<float> v(count);
    REQUIRE(cudaMemcpy(v.data(), ptr, count * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
};

void check_close(const std::vector<float>& got, const std::vector<double>& want, const std::string& what,
                 double tol = 2e-5) {
  REQUIRE(got.size() == want.size());
  double scale = 1.0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * scale) && bad++ == 0) first = i;
  INFO(what << ": " << bad << " of " << got.size() << " differ; first at " << first);
  CHECK(bad == 0);
}

struct Dims {
  int n, c, h, w;
  std::size_t count() const { return static_cast<std::size_t>(n) * c * h * w; }
  std::size_t at(cudnnTensorFormat_t f, int in, int ic, int ih, int iw) const {
    return f == CUDNN_TENSOR_NHWC ? ((static_cast<std::size_t>(in) * h + ih) * w + iw) * c + ic
                                  : ((static_cast<std::size_t>(in) * c + ic) * h + ih) * w + iw;
  }
};

struct Desc {
  cudnnTensorDescriptor_t d = nullptr;
  Desc(cudnnTensorFormat_t f, int n, int c, int h, int w) {
    REQUIRE(cudnnCreateTensorDescriptor(&d) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(d, f, CUDNN_DATA_FLOAT, n, c, h, w) == CUDNN_STATUS_SUCCESS);
  }
  ~Desc() { cudnnDestroyTensorDescriptor(d); }
};

struct Reference {
  std::vector<double> y, mean, inv, unbiased, dx, dgamma, dbeta;
};

// The definitions, per channel over (n, h, w): forward, and backward by the chain rule through the
// variance and the mean.
Reference reference(cudnnTensorFormat_t f, const Dims& d, const std::vector<float>& x, const std::vector<float>& gamma,
                    const std::vector<float>& beta, const std::vector<float>& dy, double eps) {
  Reference r;
  r.y.assign(d.count(), 0.0);
  r.dx.assign(d.count(), 0.0);
  const double m = double(d.n) * d.h * d.w;
  for (int c = 0; c < d.c; ++c) {
    std::vector<std::size_t> idx;
    for (int n = 0; n < d.n; ++n)
      for (int h = 0; h < d.h; ++h)
        for (int w = 0; w < d.w; ++w) idx.push_back(d.at(f, n, c, h, w));
    double mean = 0.0;
    for (std::size_t i : idx) mean += x[i];
    mean /= m;
    double var = 0.0;
    for (std::size_t i : idx) var += (x[i] - mean) * (x[i] - mean);
    var /= m;
    const double inv = 1.0 / std::sqrt(var + eps);
    r.mean.push_back(mean);
    r.inv.push_back(inv);
    r.unbiased.push_back(var * m / (m - 1));
    double dvar = 0.0, dmean = 0.0, dgamma = 0.0, dbeta = 0.0, sum_centered = 0.0;
    for (std::size_t i : idx) {
      r.y[i] = gamma[c] * (x[i] - mean) * inv + beta[c];
      const double dxhat = dy[i] * gamma[c];
      dvar += dxhat * (x[i] - mean) * -0.5 * std::pow(var + eps, -1.5);
      dmean += -dxhat * inv;
      sum_centered += -2.0 * (x[i] - mean);
      dgamma += dy[i] * (x[i] - mean) * inv;
      dbeta += dy[i];
    }
    dmean += dvar * sum_centered / m;
    for (std::size_t i : idx) r.dx[i] = dy[i] * gamma[c] * inv + dvar * 2.0 * (x[i] - mean) / m + dmean / m;
    r.dgamma.push_back(dgamma);
    r.dbeta.push_back(dbeta);
  }
  return r;
}

}  // namespace

TEST_CASE("emulated cuDNN batch normalization matches the definitions in both formats", "[emulation][cudnn]") {
  cudnnHandle_t handle = nullptr;
  REQUIRE(cudnnCreate(&handle) == CUDNN_STATUS_SUCCESS);
  const double eps = 1e-3;
  for (cudnnTensorFormat_t f : {CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NCHW}) {
    INFO("format " << f);
    const Dims d{3, 4, 2, 5};
    const auto xv = random_values(d.count(), 1, -2.0f, 3.0f), dyv = random_values(d.count(), 2);
    const auto gv = random_values(4, 3, 0.5f, 1.5f), bv = random_values(4, 4);
    const Reference ref = reference(f, d, xv, gv, bv, dyv, eps);
    Desc xd(f, d.n, d.c, d.h, d.w), pd(CUDNN_TENSOR_NCHW, 1, d.c, 1, 1);
    DeviceFloats x(xv), y(d.count()), gamma(gv), beta(bv), dy(dyv), dx(d.count());
    DeviceFloats save_mean(4), save_inv(4), run_mean(std::vector<float>(4, 0.5f)), run_var(std::vector<float>(4, 2.0f));
    const float one = 1, zero = 0;
    const double factor = 0.25;
    REQUIRE(cudnnBatchNormalizationForwardTraining(handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd.d, x.ptr, xd.d,
                                                   y.ptr, pd.d, gamma.ptr, beta.ptr, factor, run_mean.ptr,
                                                   run_var.ptr, eps, save_mean.ptr, save_inv.ptr) ==
            CUDNN_STATUS_SUCCESS);
    check_close(y.get(), ref.y, "training forward");
    check_close(save_mean.get(), ref.mean, "saved mean");
    check_close(save_inv.get(), ref.inv, "saved inverse standard deviation");
    std::vector<double> want_mean, want_var;
    for (int c = 0; c < 4; ++c) {
      want_mean.push_back(0.5 * (1 - factor) + factor * ref.mean[std::size_t(c)]);
      want_var.push_back(2.0 * (1 - factor) + factor * ref.unbiased[std::size_t(c)]);  // cuDNN: unbiased
    }
    check_close(run_mean.get(), want_mean, "running mean");
    check_close(run_var.get(), want_var, "running variance (unbiased)");

    // Inference with the batch's own statistics gives the training output.
    std::vector<float> biased;
    for (int c = 0; c < 4; ++c) biased.push_back(float(1.0 / (ref.inv[std::size_t(c)] * ref.inv[std::size_t(c)]) - eps));
    DeviceFloats mean_in(std::vector<float>(save_mean.get())), var_in(biased), y2(d.count());
    REQUIRE(cudnnBatchNormalizationForwardInference(handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd.d, x.ptr, xd.d,
                                                    y2.ptr, pd.d, gamma.ptr, beta.ptr, mean_in.ptr, var_in.ptr,
                                                    eps) == CUDNN_STATUS_SUCCESS);
    check_close(y2.get(), ref.y, "inference forward", 1e-4);

    DeviceFloats dgamma(4), dbeta(4);
    REQUIRE(cudnnBatchNormalizationBackward(handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, xd.d, x.ptr,
                                            xd.d, dy.ptr, xd.d, dx.ptr, pd.d, gamma.ptr, dgamma.ptr, dbeta.ptr, eps,
                                            save_mean.ptr, save_inv.ptr) == CUDNN_STATUS_SUCCESS);
    check_close(dx.get(), ref.dx, "dx");
    check_close(dgamma.get(), ref.dgamma, "dgamma");
    check_close(dbeta.get(), ref.dbeta, "dbeta");
    // Without the saved statistics (recomputed), and blending into the parameter gradients.
    DeviceFloats dgamma2(std::vector<float>(4, 1.0f)), dbeta2(std::vector<float>(4, 1.0f));
    const float half = 0.5f;
    REQUIRE(cudnnBatchNormalizationBackward(handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &half, xd.d, x.ptr,
                                            xd.d, dy.ptr, xd.d, dx.ptr, pd.d, gamma.ptr, dgamma2.ptr, dbeta2.ptr, eps,
                                            nullptr, nullptr) == CUDNN_STATUS_SUCCESS);
    std::vector<double> blended_gamma, blended_beta;
    for (int c = 0; c < 4; ++c) {
      blended_gamma.push_back(ref.dgamma[std::size_t(c)] + 0.5);
      blended_beta.push_back(ref.dbeta[std::size_t(c)] + 0.5);
    }
    check_close(dgamma2.get(), blended_gamma, "dgamma, beta 0.5");
    check_close(dbeta2.get(), blended_beta, "dbeta, beta 0.5");
    check_close(dx.get(), ref.dx, "dx, recomputed statistics");
  }
  cudnnDestroy(handle);
}

TEST_CASE("emulated cuDNN batch normalization argument errors", "[emulation][cudnn]") {
  cudnnHandle_t handle = nullptr;
  REQUIRE(cudnnCreate(&handle) == CUDNN_STATUS_SUCCESS);
  Desc xd(CUDNN_TENSOR_NCHW, 4, 3, 1, 1), pd(CUDNN_TENSOR_NCHW, 1, 3, 1, 1), wrong(CUDNN_TENSOR_NCHW, 1, 2, 1, 1);
  DeviceFloats x(12, 1.0f), y(12), p(3, 1.0f), s1(3), s2(3);
  const float one = 1, zero = 0;
  CHECK(cudnnBatchNormalizationForwardTraining(handle, CUDNN_BATCHNORM_PER_ACTIVATION, &one, &zero, xd.d, x.ptr, xd.d,
                                               y.ptr, pd.d, p.ptr, p.ptr, 0.0, nullptr, nullptr, 1e-3, s1.ptr,
                                               s2.ptr) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnBatchNormalizationForwardTraining(handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd.d, x.ptr, xd.d, y.ptr,
                                               wrong.d, p.ptr, p.ptr, 0.0, nullptr, nullptr, 1e-3, s1.ptr,
                                               s2.ptr) == CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnBatchNormalizationForwardTraining(handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd.d, x.ptr, xd.d, y.ptr,
                                               pd.d, p.ptr, p.ptr, 0.0, s1.ptr, nullptr, 1e-3, nullptr,
                                               nullptr) == CUDNN_STATUS_BAD_PARAM);
  int on_host[12] = {};
  CHECK(cudnnBatchNormalizationForwardInference(handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd.d, on_host, xd.d,
                                                y.ptr, pd.d, p.ptr, p.ptr, p.ptr, p.ptr, 1e-3) ==
        CUDNN_STATUS_BAD_PARAM);
  cudnnDestroy(handle);
}
