// Conv2D and MaxPooling2D forward (through the layers and the CPU backend) against naive loops written
// from Keras' definitions, for "valid" and "same" padding and several strides.
#include "support/catch.hpp"

#include <limits>

#include "backend/backend.hpp"
#include "layers/run_context.hpp"
#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "dropnet/layers.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {

// out[n, oy, ox, k] = b[k] + sum x[n, oy*s - pad + ky, ox*s - pad + kx, c] * w[ky, kx, c, k]
std::vector<float> naive_conv(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                              std::int64_t n, std::int64_t h, std::int64_t wd, std::int64_t c, std::int64_t kh,
                              std::int64_t kw, std::int64_t k, std::int64_t s, bool same, std::int64_t& oh,
                              std::int64_t& ow) {
  std::int64_t pt = 0, pl = 0;
  if (same) {
    oh = (h + s - 1) / s;
    ow = (wd + s - 1) / s;
    pt = std::max<std::int64_t>((oh - 1) * s + kh - h, 0) / 2;
    pl = std::max<std::int64_t>((ow - 1) * s + kw - wd, 0) / 2;
  } else {
    oh = (h - kh) / s + 1;
    ow = (wd - kw) / s + 1;
  }
  std::vector<float> y(std::size_t(n * oh * ow * k));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t oy = 0; oy < oh; ++oy)
      for (std::int64_t ox = 0; ox < ow; ++ox)
        for (std::int64_t f = 0; f < k; ++f) {
          double acc = b[std::size_t(f)];
          for (std::int64_t ky = 0; ky < kh; ++ky)
            for (std::int64_t kx = 0; kx < kw; ++kx)
              for (std::int64_t ch = 0; ch < c; ++ch) {
                const std::int64_t iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += double(x[std::size_t(((i * h + iy) * wd + ix) * c + ch)]) *
                       double(w[std::size_t(((ky * kw + kx) * c + ch) * k + f)]);
              }
          y[std::size_t(((i * oh + oy) * ow + ox) * k + f)] = float(acc);
        }
  return y;
}

}  // namespace

TEST_CASE("Conv2D forward matches a naive loop", "[conv]") {
  const auto context = backend::make_backend(Device::CPU);
  auto& cpu = *context;
  struct Case { std::int64_t n, h, w, c, kh, kw, k, s; const char* padding; };
  const Case cases[] = {{2, 9, 7, 3, 3, 3, 5, 1, "valid"}, {3, 8, 8, 4, 3, 3, 6, 2, "same"},
                        {1, 7, 10, 2, 2, 3, 3, 2, "valid"}, {2, 5, 6, 3, 5, 5, 2, 1, "same"},
                        {2, 11, 11, 3, 3, 3, 64, 1, "valid"}};
  for (const Case& c : cases) {
    Conv2D conv(c.k, {c.kh, c.kw}, {.strides = {c.s, c.s}, .padding = c.padding, .bias_initializer = "glorot_uniform"});
    conv.set_name("conv");
    const Shape out = conv.build({c.h, c.w, c.c}, 5);
    const Tensor x = testing::random_tensor({c.n, c.h, c.w, c.c}, 6);
    Tensor y({c.n, out[0], out[1], out[2]});
    y.fill(std::numeric_limits<float>::quiet_NaN());
    RunContext ctx{cpu, false};
    conv.forward(x, y, ctx);
    std::int64_t oh = 0, ow = 0;
    const auto ref = naive_conv(x.to_vector(), conv.params()[0].value.to_vector(), conv.params()[1].value.to_vector(),
                                c.n, c.h, c.w, c.c, c.kh, c.kw, c.k, c.s, std::string(c.padding) == "same", oh, ow);
    INFO(c.padding << " " << c.kh << "x" << c.kw << " stride " << c.s);
    REQUIRE(out == Shape{oh, ow, c.k});
    CHECK(testing::worst_ratio(y.to_vector(), ref, 1e-5, 1e-5) <= 1.0);
  }
}

TEST_CASE("MaxPooling2D forward matches a naive loop", "[pool]") {
  const auto context = backend::make_backend(Device::CPU);
  auto& cpu = *context;
  struct Case { std::int64_t p, s; const char* padding; };
  for (const Case& c : {Case{2, 2, "valid"}, Case{3, 2, "same"}, Case{2, 1, "valid"}, Case{3, 3, "same"}}) {
    const std::int64_t n = 2, h = 7, w = 9, ch = 4;
    MaxPooling2D pool({.pool_size = {c.p, c.p}, .strides = std::array<std::int64_t, 2>{c.s, c.s}, .padding = c.padding});
    const Shape out = pool.build({h, w, ch}, 0);
    const Tensor x = testing::random_tensor({n, h, w, ch}, 7);
    Tensor y({n, out[0], out[1], out[2]});
    RunContext ctx{cpu, false};
    pool.forward(x, y, ctx);
    const bool same = std::string(c.padding) == "same";
    const std::int64_t oh = same ? (h + c.s - 1) / c.s : (h - c.p) / c.s + 1;
    const std::int64_t ow = same ? (w + c.s - 1) / c.s : (w - c.p) / c.s + 1;
    const std::int64_t pt = same ? std::max<std::int64_t>((oh - 1) * c.s + c.p - h, 0) / 2 : 0;
    const std::int64_t pl = same ? std::max<std::int64_t>((ow - 1) * c.s + c.p - w, 0) / 2 : 0;
    REQUIRE(out == Shape{oh, ow, ch});
    const auto xv = x.to_vector(), yv = y.to_vector();
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t oy = 0; oy < oh; ++oy)
        for (std::int64_t ox = 0; ox < ow; ++ox)
          for (std::int64_t k = 0; k < ch; ++k) {
            float m = -std::numeric_limits<float>::infinity();
            for (std::int64_t ky = 0; ky < c.p; ++ky)
              for (std::int64_t kx = 0; kx < c.p; ++kx) {
                const std::int64_t iy = oy * c.s - pt + ky, ix = ox * c.s - pl + kx;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) m = std::max(m, xv[std::size_t(((i * h + iy) * w + ix) * ch + k)]);
              }
            REQUIRE(yv[std::size_t(((i * oh + oy) * ow + ox) * ch + k)] == m);
          }
  }
}

TEST_CASE("Conv2D on a batch large enough to be split into chunks matches the per-chunk results", "[conv]") {
  // 80 images of 30x30x8 with a 3x3 kernel: patch rows of 73 floats, so the CPU conv works in chunks of
  // 73 images (~16 MiB of patches); the whole batch must equal its two halves computed on their own.
  using backend::ConvGeometry;
  const std::int64_t n = 80, h = 30, w = 30, c = 8, k = 5;
  const auto whole = [&](std::int64_t batch) {
    return ConvGeometry{batch, h, w, c, 3, 3, k, 1, 1, 0, 0, 28, 28};
  };
  const auto x = testing::uniform<float>(std::size_t(n * h * w * c), -1, 1, 21);
  const auto kern = testing::uniform<float>(std::size_t(9 * c * k), -1, 1, 22);
  const auto bias = testing::uniform<float>(std::size_t(k), -1, 1, 23);
  const auto dy = testing::uniform<float>(std::size_t(n * 28 * 28 * k), -1, 1, 24);
  const std::int64_t split = 73, in_per = h * w * c, out_per = 28 * 28 * k;

  std::vector<float> y(dy.size()), dx(x.size()), dw(kern.size()), db(bias.size());
  backend::cpu::conv2d_forward(x.data(), kern.data(), bias.data(), y.data(), whole(n));
  backend::cpu::conv2d_backward(x.data(), kern.data(), dy.data(), dx.data(), dw.data(), db.data(), whole(n));

  std::vector<float> y2(dy.size()), dx2(x.size()), dw_a(kern.size()), dw_b(kern.size()), db_a(bias.size()), db_b(bias.size());
  backend::cpu::conv2d_forward(x.data(), kern.data(), bias.data(), y2.data(), whole(split));
  backend::cpu::conv2d_forward(x.data() + split * in_per, kern.data(), bias.data(), y2.data() + split * out_per,
                               whole(n - split));
  backend::cpu::conv2d_backward(x.data(), kern.data(), dy.data(), dx2.data(), dw_a.data(), db_a.data(), whole(split));
  backend::cpu::conv2d_backward(x.data() + split * in_per, kern.data(), dy.data() + split * out_per,
                                dx2.data() + split * in_per, dw_b.data(), db_b.data(), whole(n - split));
  CHECK(y == y2);
  CHECK(dx == dx2);
  std::vector<double> dw_sum(kern.size()), db_sum(static_cast<std::size_t>(k));
  for (std::size_t i = 0; i < dw_sum.size(); ++i) dw_sum[i] = double(dw_a[i]) + dw_b[i];
  for (std::size_t i = 0; i < db_sum.size(); ++i) db_sum[i] = double(db_a[i]) + db_b[i];
  CHECK(testing::worst_ratio(dw, dw_sum, 1e-4, 1e-5) <= 1.0);
  CHECK(testing::worst_ratio(db, db_sum, 1e-4, 1e-5) <= 1.0);
}

TEST_CASE("parallel_for covers every index exactly once", "[cpu]") {
  for (std::int64_t n : {0, 1, 7, 1000, 65537, 1 << 20}) {
    for (std::int64_t grain : {1, 64, 1 << 16}) {
      std::vector<int> hits(static_cast<std::size_t>(n), 0);
      backend::cpu::parallel_for(n, grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) ++hits[std::size_t(i)];
      });
      INFO("n " << n << " grain " << grain);
      CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
    }
  }
}
