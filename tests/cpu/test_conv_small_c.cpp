// The small-C convolution kernels (backend/cpu/conv2d_small_c.hpp) against a direct convolution in double,
// on every instruction-set path this CPU has: forward, weight gradient and bias gradient, on the seed
// model's first layer and on odd shapes; the same bits for any thread count; and conv2d.cpp taking them
// for the first layer only.
//
// Errors are measured relative to the sum of the magnitudes of the terms an output adds up (|b| plus
// sum |x w| for y, sum |x dy| for dw, sum |dy| for db). For y, float accumulation of the seed's 28 terms
// errs by at most 28 * 2^-24 = 1.7e-6 of that (the forward bound rounds it up). Measured on an AMD EPYC
// (Zen 5; avx512, avx2 and baseline paths): at most 4.0e-7 for y (the seed shape), 1.5e-7 for dw and
// 1.3e-7 for db; the gradient bound is ~15x that, while one term lost or counted twice errs by 1e-3 or
// more on the small shapes.
#include "support/catch.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/conv2d_small_c.hpp"
#include "backend/cpu/isa.hpp"
#include "backend/cpu/ops.hpp"
#include "support/testing.hpp"

using namespace dropnet;
using backend::ConvGeometry;
using backend::cpu::CpuIsa;

namespace {

constexpr double kForwardBound = 2e-6;
constexpr double kGradientBound = 2e-6;

struct Shape4 {
  std::int64_t n, h, w, c, kh, kw, k, sh, sw;
  bool same;
};

ConvGeometry geometry_of(const Shape4& s) {
  const backend::AxisGeometry y = backend::axis_geometry(s.h, s.kh, s.sh, s.same);
  const backend::AxisGeometry x = backend::axis_geometry(s.w, s.kw, s.sw, s.same);
  return {s.n, s.h, s.w, s.c, s.kh, s.kw, s.k, s.sh, s.sw, y.pad_before, x.pad_before, y.out, x.out};
}

// Calls fn(n, oy, ox, tap, x value) for every tap of every output pixel's window that lies inside x.
template <typename F>
void for_each_term(const std::vector<float>& x, const ConvGeometry& g, F&& fn) {
  for (std::int64_t n = 0; n < g.n; ++n)
    for (std::int64_t oy = 0; oy < g.oh; ++oy)
      for (std::int64_t ox = 0; ox < g.ow; ++ox)
        for (std::int64_t ky = 0; ky < g.kh; ++ky)
          for (std::int64_t kx = 0; kx < g.kw; ++kx) {
            const std::int64_t iy = oy * g.sh - g.pad_top + ky, ix = ox * g.sw - g.pad_left + kx;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            for (std::int64_t c = 0; c < g.c; ++c)
              fn(n, oy, ox, (ky * g.kw + kx) * g.c + c, double(x[std::size_t(((n * g.h + iy) * g.w + ix) * g.c + c)]));
          }
}

// Reference values and the magnitudes of their terms.
struct Reference {
  std::vector<double> value, magnitude;
};

Reference forward_reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                            const ConvGeometry& g) {
  const auto outputs = std::size_t(g.n * g.oh * g.ow * g.k);
  Reference r{std::vector<double>(outputs), std::vector<double>(outputs)};
  for (std::size_t i = 0; i < r.value.size(); ++i) {
    r.value[i] = b[i % std::size_t(g.k)];
    r.magnitude[i] = std::abs(r.value[i]);
  }
  for_each_term(x, g, [&](std::int64_t n, std::int64_t oy, std::int64_t ox, std::int64_t tap, double xv) {
    const std::size_t out = std::size_t(((n * g.oh + oy) * g.ow + ox) * g.k);
    for (std::int64_t k = 0; k < g.k; ++k) {
      const double term = xv * double(w[std::size_t(tap * g.k + k)]);
      r.value[out + std::size_t(k)] += term;
      r.magnitude[out + std::size_t(k)] += std::abs(term);
    }
  });
  return r;
}

// dw (taps x K), then db (K) appended.
Reference gradient_reference(const std::vector<float>& x, const std::vector<float>& dy, const ConvGeometry& g) {
  const std::int64_t taps = g.kh * g.kw * g.c;
  Reference r{std::vector<double>(std::size_t((taps + 1) * g.k)), std::vector<double>(std::size_t((taps + 1) * g.k))};
  for_each_term(x, g, [&](std::int64_t n, std::int64_t oy, std::int64_t ox, std::int64_t tap, double xv) {
    const std::size_t out = std::size_t(((n * g.oh + oy) * g.ow + ox) * g.k);
    for (std::int64_t k = 0; k < g.k; ++k) {
      const double term = xv * double(dy[out + std::size_t(k)]);
      r.value[std::size_t(tap * g.k + k)] += term;
      r.magnitude[std::size_t(tap * g.k + k)] += std::abs(term);
    }
  });
  for (std::size_t i = 0; i < dy.size(); ++i) {
    r.value[std::size_t(taps * g.k) + i % std::size_t(g.k)] += dy[i];
    r.magnitude[std::size_t(taps * g.k) + i % std::size_t(g.k)] += std::abs(double(dy[i]));
  }
  return r;
}

// Largest |a - value| / magnitude over [begin, end) (a magnitude of 0 needs a == value exactly).
double worst_relative(const std::vector<float>& a, const Reference& r, std::size_t begin, std::size_t end) {
  double worst = 0;
  for (std::size_t i = begin; i < end; ++i) {
    const double err = std::abs(double(a[i - begin]) - r.value[i]);
    worst = std::max(worst, r.magnitude[i] > 0 ? err / r.magnitude[i] : err > 0 ? 1e30 : 0.0);
  }
  return worst;
}

std::vector<CpuIsa> isas_here() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::Baseline, CpuIsa::Avx2, CpuIsa::Avx512})
    if (backend::cpu::cpu_supports(isa)) isas.push_back(isa);
  return isas;
}

const Shape4 kSeed{250, 32, 32, 3, 3, 3, 64, 1, 1, false};
const Shape4 kShapes[] = {
    kSeed,
    {1, 7, 9, 1, 3, 3, 5, 1, 1, true},      // batch 1, C = 1, K = 5 (< one vector), "same"
    {2, 11, 6, 2, 3, 3, 70, 1, 1, false},   // C = 2, K = 70 (64 + a partial chunk)
    {3, 8, 9, 3, 3, 3, 64, 2, 2, true},     // stride 2, "same"
    {1, 6, 5, 4, 3, 3, 16, 1, 1, true},     // C = 4, K = 16 (one zmm)
    {2, 13, 12, 3, 2, 4, 33, 2, 1, true},   // uneven kernel and strides, K = 33
    {2, 33, 31, 3, 3, 3, 64, 1, 1, true},   // images of more than a block (1023 pixels)
    {300, 4, 4, 3, 3, 3, 8, 1, 1, false},   // 4 pixels per image: 256 images a block, chunks across images
    {2, 10, 9, 8, 5, 5, 20, 1, 2, true},    // C = 8 (the most small_c_applies takes), 5x5: 200 taps
};

}  // namespace

TEST_CASE("small-C convolution forward matches a direct convolution in double on every ISA path", "[conv]") {
  for (const Shape4& s : kShapes) {
    const ConvGeometry g = geometry_of(s);
    const std::int64_t taps = g.kh * g.kw * g.c;
    const auto x = testing::uniform<float>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, 11);
    const auto w = testing::uniform<float>(std::size_t(taps * g.k), -0.5, 0.5, 12);
    const auto b = testing::uniform<float>(std::size_t(g.k), -0.5, 0.5, 13);
    const Reference ref = forward_reference(x, w, b, g);
    const Reference ref_no_bias = forward_reference(x, w, std::vector<float>(std::size_t(g.k), 0.0f), g);
    for (CpuIsa isa : isas_here()) {
      INFO(backend::cpu::cpu_isa_name(isa) << ": n " << s.n << " " << s.h << "x" << s.w << "x" << s.c << " kernel "
                                           << s.kh << "x" << s.kw << " K " << s.k << (s.same ? " same" : " valid"));
      std::vector<float> y(ref.value.size(), std::nanf(""));
      backend::cpu::conv2d_small_c_forward(x.data(), w.data(), b.data(), y.data(), g, isa);
      CHECK(worst_relative(y, ref, 0, y.size()) <= kForwardBound);
      std::fill(y.begin(), y.end(), std::nanf(""));
      backend::cpu::conv2d_small_c_forward(x.data(), w.data(), nullptr, y.data(), g, isa);
      CHECK(worst_relative(y, ref_no_bias, 0, y.size()) <= kForwardBound);
    }
  }
}

TEST_CASE("small-C convolution weight and bias gradients match sums in double on every ISA path", "[conv]") {
  for (const Shape4& s : kShapes) {
    const ConvGeometry g = geometry_of(s);
    const std::int64_t taps = g.kh * g.kw * g.c;
    const auto x = testing::uniform<float>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, 21);
    const auto dy = testing::uniform<float>(std::size_t(g.n * g.oh * g.ow * g.k), -1, 1, 22);
    const Reference ref = gradient_reference(x, dy, g);
    const auto dw_size = std::size_t(taps * g.k);
    for (CpuIsa isa : isas_here()) {
      INFO(backend::cpu::cpu_isa_name(isa) << ": n " << s.n << " " << s.h << "x" << s.w << "x" << s.c << " kernel "
                                           << s.kh << "x" << s.kw << " K " << s.k << (s.same ? " same" : " valid"));
      std::vector<float> dw(dw_size, std::nanf("")), db(std::size_t(g.k), std::nanf(""));
      backend::cpu::conv2d_small_c_weight_gradient(x.data(), dy.data(), dw.data(), db.data(), g, isa);
      CHECK(worst_relative(dw, ref, 0, dw_size) <= kGradientBound);
      CHECK(worst_relative(db, ref, dw_size, ref.value.size()) <= kGradientBound);
      std::vector<float> dw_alone(dw_size, std::nanf(""));  // without db: no bias tap, the same dw
      backend::cpu::conv2d_small_c_weight_gradient(x.data(), dy.data(), dw_alone.data(), nullptr, g, isa);
      CHECK(dw_alone == dw);
    }
  }
}

TEST_CASE("small-C convolution gives the same bits for any thread count", "[conv]") {
  for (const Shape4& s : kShapes) {
    const ConvGeometry g = geometry_of(s);
    const std::int64_t taps = g.kh * g.kw * g.c;
    const auto x = testing::uniform<float>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, 31);
    const auto w = testing::uniform<float>(std::size_t(taps * g.k), -0.5, 0.5, 32);
    const auto b = testing::uniform<float>(std::size_t(g.k), -0.5, 0.5, 33);
    const auto dy = testing::uniform<float>(std::size_t(g.n * g.oh * g.ow * g.k), -1, 1, 34);
    for (CpuIsa isa : isas_here()) {
      std::vector<float> y1(dy.size()), dw1(std::size_t(taps * g.k)), db1(std::size_t(g.k));
      backend::cpu::conv2d_small_c_forward(x.data(), w.data(), b.data(), y1.data(), g, isa, 1);
      backend::cpu::conv2d_small_c_weight_gradient(x.data(), dy.data(), dw1.data(), db1.data(), g, isa, 1);
      for (std::int64_t threads : {2, 3, 7}) {
        INFO(backend::cpu::cpu_isa_name(isa) << ", " << threads << " threads, n " << s.n << " K " << s.k);
        std::vector<float> y(dy.size()), dw(dw1.size()), db(db1.size());
        backend::cpu::conv2d_small_c_forward(x.data(), w.data(), b.data(), y.data(), g, isa, threads);
        backend::cpu::conv2d_small_c_weight_gradient(x.data(), dy.data(), dw.data(), db.data(), g, isa, threads);
        CHECK(std::memcmp(y.data(), y1.data(), y.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(dw.data(), dw1.data(), dw.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(db.data(), db1.data(), db.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("Conv2D on the CPU takes the small-C kernels for the first layer only, and without dx", "[conv]") {
  // Without AVX2 + FMA, im2col + GEMM was faster (conv2d_small_c.hpp), and this test has nothing to check.
  if (backend::cpu::cpu_isa() == CpuIsa::Baseline || !backend::cpu::cpu_has_fma()) {
    CHECK_FALSE(backend::cpu::small_c_applies(geometry_of(kSeed)));
    return;
  }
  CHECK(backend::cpu::small_c_applies(geometry_of(kSeed)));
  CHECK_FALSE(backend::cpu::small_c_applies(geometry_of({250, 15, 15, 64, 3, 3, 64, 1, 1, false})));  // conv2

  const ConvGeometry g = geometry_of(kSeed);
  const auto x = testing::uniform<float>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, 41);
  const auto w = testing::uniform<float>(std::size_t(27 * g.k), -0.5, 0.5, 42);
  const auto b = testing::uniform<float>(std::size_t(g.k), -0.5, 0.5, 43);
  const auto dy = testing::uniform<float>(std::size_t(g.n * g.oh * g.ow * g.k), -1, 1, 44);
  std::vector<float> y(dy.size()), y_small(dy.size());
  backend::cpu::conv2d_forward<float>(x.data(), w.data(), b.data(), y.data(), g);
  backend::cpu::conv2d_small_c_forward(x.data(), w.data(), b.data(), y_small.data(), g);
  CHECK(y == y_small);

  std::vector<float> dw(27 * 64), db(64), dw_small(27 * 64), db_small(64);
  backend::cpu::conv2d_backward<float>(x.data(), w.data(), dy.data(), nullptr, dw.data(), db.data(), g);
  backend::cpu::conv2d_small_c_weight_gradient(x.data(), dy.data(), dw_small.data(), db_small.data(), g);
  CHECK(dw == dw_small);
  CHECK(db == db_small);

  // With dx wanted, im2col + GEMM computes all three: dw within the bound of the same sums.
  std::vector<float> dx(x.size(), std::nanf(""));
  backend::cpu::conv2d_backward<float>(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), g);
  const Reference ref = gradient_reference(x, dy, g);
  CHECK(worst_relative(dw, ref, 0, dw.size()) <= kGradientBound);
  CHECK(std::all_of(dx.begin(), dx.end(), [](float v) { return std::isfinite(v); }));
}
