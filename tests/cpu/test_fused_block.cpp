// test_fused_block.cpp: the fused Conv2D(relu) -> MaxPooling2D [-> Dropout] block (model/fused_blocks.hpp,
// backend/cpu/relu_pool.cpp) gives the bits of the layers run one by one: the op against the unfused ops
// (relu, max pool, dropout and their backwards) on values full of ties, zeros and negatives, over odd
// geometries, channel counts that do not fill a vector and every kind of dropout call; and whole models
// trained, evaluated and predicted with fusion on and off.
#include "support/catch.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/ops.hpp"
#include "dropnet/dropnet.hpp"
#include "model/impl.hpp"
#include "support/cpu_backend.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {

backend::Backend& cpu() { return dropnet::testing::cpu_backend(); }

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Values from a few multiples of 0.5 in [-2, 2], so that windows hold ties (also at the max), zeros,
// -0.0 and windows with no positive value.
Tensor tied_values(Shape shape, std::uint64_t seed) {
  const auto n = static_cast<std::size_t>(element_count(shape));
  std::vector<float> v = dropnet::testing::uniform<float>(n, 0.0, 9.0, seed);
  for (float& x : v) {
    x = (std::floor(x) - 4.0f) * 0.5f;
    if (x == 0.0f && (&x - v.data()) % 3 == 0) x = -0.0f;
  }
  return Tensor::from_vector(std::move(shape), v);
}

struct PoolCase {
  std::int64_t n, h, w, c, ph, pw, sh, sw;
  bool same;
};

backend::PoolGeometry geometry(const PoolCase& p) {
  const auto gy = backend::axis_geometry(p.h, p.ph, p.sh, p.same);
  const auto gx = backend::axis_geometry(p.w, p.pw, p.sw, p.same);
  return {p.n, p.h, p.w, p.c, p.ph, p.pw, p.sh, p.sw, gy.pad_before, gx.pad_before, gy.out, gx.out};
}

// The unfused chain's forward and backward, and the fused op's, on the same z, dy and call.
struct Results {
  Tensor y, dz;
};

Results unfused(const Tensor& z, const Tensor& dy, const backend::PoolGeometry& g, const backend::DropoutCall* call) {
  auto& be = cpu();
  Tensor a(z.shape(), Device::CPU), pooled(dy.shape(), Device::CPU), y(dy.shape(), Device::CPU);
  be.activation_forward(ActivationKind::ReLU, z, a);
  be.maxpool2d_forward(a, pooled, g);
  if (call != nullptr) be.dropout_forward(pooled, y, *call);
  else y.copy_from(pooled);
  Tensor dpooled(dy.shape(), Device::CPU), da(z.shape(), Device::CPU), dz(z.shape(), Device::CPU);
  if (call != nullptr) be.dropout_backward(dy, dpooled, *call);
  else dpooled.copy_from(dy);
  be.maxpool2d_backward(a, pooled, dpooled, da, g);
  be.activation_backward(ActivationKind::ReLU, a, da, dz);
  return {y, dz};
}

Results fused(const Tensor& z, const Tensor& dy, const backend::PoolGeometry& g, const backend::DropoutCall* call) {
  auto& be = cpu();
  Tensor y(dy.shape(), Device::CPU), dz(z.shape(), Device::CPU);
  y.fill(7.0f);   // every element must be written
  dz.fill(7.0f);
  backend::DeviceArray<std::uint8_t> route(static_cast<std::size_t>(y.size()), Device::CPU);
  be.relu_pool_forward(z, y, route.data(), g, call);
  be.relu_pool_backward(dy, route.data(), dz, g, call);
  // Inference writes no route and the same output.
  Tensor y_inference(dy.shape(), Device::CPU);
  be.relu_pool_forward(z, y_inference, nullptr, g, call);
  CHECK(same_bits(y, y_inference));
  return {y, dz};
}

}  // namespace

TEST_CASE("fused relu-pool-dropout op: the bits of relu, max pool and dropout one by one", "[fused]") {
  REQUIRE(cpu().fuses_relu_pool());
  const PoolCase cases[] = {
      {1, 4, 4, 1, 2, 2, 2, 2, false},     // batch 1, one channel
      {3, 30, 30, 64, 2, 2, 2, 2, false},  // the seed model's first block
      {2, 13, 13, 17, 2, 2, 2, 2, false},  // odd size (last row and column in no window), C not a multiple of 16
      {2, 9, 7, 70, 2, 2, 2, 2, false},    // more channels than one chunk of the op
      {2, 7, 9, 5, 2, 2, 2, 2, true},      // "same": windows past the edge, no leading pad
      {2, 9, 8, 6, 3, 3, 2, 2, false},     // overlapping windows
      {2, 7, 6, 5, 3, 2, 1, 1, true},      // overlapping, padded on every side
      {1, 6, 9, 3, 2, 3, 2, 3, false},     // non-square window
  };
  for (const PoolCase& p : cases) {
    const backend::PoolGeometry g = geometry(p);
    const Shape z_shape{p.n, p.h, p.w, p.c}, y_shape{p.n, g.oh, g.ow, p.c};
    const Tensor z = tied_values(z_shape, 100 + std::uint64_t(p.c));
    const Tensor dy = tied_values(y_shape, 200 + std::uint64_t(p.h));
    // A schedule's step and rate, read from the slot when the op runs (the call's own rate is then unused).
    const backend::StepSlot slot{.step = 5, .advances = 1, .rate = 0.3f, .schedule = {}};
    const backend::StepSlot slot_zero{.step = 5, .advances = 1, .rate = 0.0f, .schedule = {}};
    const backend::StepSlot slot_one{.step = 5, .advances = 1, .rate = 1.0f, .schedule = {}};
    struct CallCase {
      const char* name;
      std::optional<backend::DropoutCall> call;
    };
    auto call = [&](float rate, Shape mask, const backend::StepSlot* s) {
      backend::DropoutCall c{11, 3, rate, y_shape, std::move(mask)};
      c.slot = s;
      return std::optional<backend::DropoutCall>(c);
    };
    const CallCase calls[] = {
        {"no dropout", std::nullopt},
        {"rate 0", call(0.0f, y_shape, nullptr)},
        {"rate 1", call(1.0f, y_shape, nullptr)},
        {"rate 0.5", call(0.5f, y_shape, nullptr)},
        {"rate 0.3 through a slot", call(0.5f, y_shape, &slot)},
        {"a slot at rate 0", call(0.5f, y_shape, &slot_zero)},
        {"a slot at rate 1", call(0.5f, y_shape, &slot_one)},
        {"spatial mask (N, 1, 1, C)", call(0.5f, {p.n, 1, 1, p.c}, nullptr)},
        {"mask (1, OH, 1, C)", call(0.4f, {1, g.oh, 1, p.c}, nullptr)},
    };
    for (const CallCase& c : calls) {
      INFO("z " << to_string(z_shape) << " pool " << p.ph << "x" << p.pw << " stride " << p.sh << "x" << p.sw
                << (p.same ? " same" : " valid") << ", " << c.name);
      const backend::DropoutCall* dc = c.call ? &*c.call : nullptr;
      const Results a = unfused(z, dy, g, dc);
      const Results b = fused(z, dy, g, dc);
      CHECK(same_bits(a.y, b.y));
      CHECK(same_bits(a.dz, b.dz));
    }
  }
}

TEST_CASE("MaxPooling2D forward and backward on ties: the first maximum of each window, row-major", "[fused][pool]") {
  // A naive loop of the rule (y = the std::max chain from -inf in window order; dy to the first position
  // with x == y; zeros elsewhere) against the CPU op: its 2x2 one-pass rows (full windows that tile the
  // input) and its general loop (windows past the edge, overlapping windows).
  const PoolCase cases[] = {{3, 30, 30, 64, 2, 2, 2, 2, false}, {2, 13, 13, 17, 2, 2, 2, 2, false},
                            {2, 7, 9, 5, 2, 2, 2, 2, true}, {2, 9, 8, 6, 3, 3, 2, 2, false},
                            {2, 6, 6, 3, 2, 2, 1, 1, false}};
  for (const PoolCase& p : cases) {
    const backend::PoolGeometry g = geometry(p);
    INFO("input (" << p.n << ", " << p.h << ", " << p.w << ", " << p.c << ") pool " << p.ph << "x" << p.pw
                   << " stride " << p.sh << (p.same ? " same" : " valid"));
    const std::vector<float> x = tied_values({p.n, p.h, p.w, p.c}, 300 + std::uint64_t(p.c)).to_vector();
    const std::vector<float> dy = tied_values({p.n, g.oh, g.ow, p.c}, 400).to_vector();
    std::vector<float> want_y(dy.size()), want_dx(x.size(), 0.0f);
    const bool tiles = p.sh == p.ph && p.sw == p.pw && g.pad_top == 0 && g.pad_left == 0;
    for (std::int64_t r = 0; r < p.n * g.oh * g.ow; ++r) {
      const std::int64_t img = r / (g.oh * g.ow), oy = (r / g.ow) % g.oh, ox = r % g.ow;
      for (std::int64_t c = 0; c < p.c; ++c) {
        float m = -std::numeric_limits<float>::infinity();
        std::int64_t first = -1;
        for (int pass = 0; pass < 2; ++pass)
          for (std::int64_t ky = 0; ky < p.ph; ++ky)
            for (std::int64_t kx = 0; kx < p.pw; ++kx) {
              const std::int64_t iy = oy * p.sh - g.pad_top + ky, ix = ox * p.sw - g.pad_left + kx;
              if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
              const std::int64_t at = ((img * p.h + iy) * p.w + ix) * p.c + c;
              if (pass == 0) m = std::max(m, x[std::size_t(at)]);
              else if (first < 0 && x[std::size_t(at)] == m) first = at;
            }
        want_y[std::size_t(r * p.c + c)] = m;
        // Windows that tile the input assign (a -0.0 gradient stays -0.0); overlapping ones add to +0.
        float& d = want_dx[std::size_t(first)];
        d = tiles ? dy[std::size_t(r * p.c + c)] : d + dy[std::size_t(r * p.c + c)];
      }
    }
    std::vector<float> y(dy.size()), dx(x.size(), 7.0f);
    backend::cpu::maxpool2d_forward(x.data(), y.data(), g);
    backend::cpu::maxpool2d_backward(x.data(), y.data(), dy.data(), dx.data(), g);
    CHECK(same_bits(y, want_y));
    CHECK(same_bits(dx, want_dx));
    // The double instantiation (the gradient checks') takes the same paths.
    const std::vector<double> xd(x.begin(), x.end()), dyd(dy.begin(), dy.end());
    std::vector<double> yd(dy.size()), dxd(x.size(), 7.0);
    backend::cpu::maxpool2d_forward(xd.data(), yd.data(), g);
    backend::cpu::maxpool2d_backward(xd.data(), yd.data(), dyd.data(), dxd.data(), g);
    CHECK(std::vector<float>(yd.begin(), yd.end()) == want_y);
    CHECK(std::vector<float>(dxd.begin(), dxd.end()) == want_dx);
  }
}

TEST_CASE("fused relu-pool op: every window of negatives and zeros passes no gradient", "[fused]") {
  const PoolCase p{2, 6, 6, 3, 2, 2, 2, 2, false};
  const backend::PoolGeometry g = geometry(p);
  std::vector<float> values(std::size_t(2 * 6 * 6 * 3));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = i % 2 ? -1.0f : 0.0f;
  const Tensor z = Tensor::from_vector({2, 6, 6, 3}, values);
  Tensor y({2, 3, 3, 3}, Device::CPU), dz(z.shape(), Device::CPU);
  Tensor dy({2, 3, 3, 3}, Device::CPU);
  dy.fill(1.0f);
  backend::DeviceArray<std::uint8_t> route(static_cast<std::size_t>(y.size()), Device::CPU);
  cpu().relu_pool_forward(z, y, route.data(), g, nullptr);
  cpu().relu_pool_backward(dy, route.data(), dz, g, nullptr);
  std::vector<std::uint8_t> bytes(route.size());
  route.download(bytes);
  for (std::uint8_t r : bytes) CHECK(r == backend::kReluPoolNoRoute);
  for (float v : dz.to_vector()) CHECK(v == 0.0f);
  for (float v : y.to_vector()) CHECK(v == 0.0f);
}

namespace {

// Two fusable blocks (the second with a 3x3 / 2 pool and a scheduled SpatialDropout2D) behind an input
// dropout, so that the first Conv2D has an input gradient to compute; a third conv block without a
// dropout (fused conv + relu + pool) before a GaussianDropout that runs on its own.
Sequential block_model(bool fuse) {
  Sequential m({12, 12, 3});
  m.add(Dropout(0.1));
  m.add(Conv2D(6, {3, 3}, {.padding = "same", .activation = "relu", .kernel_initializer = "he_uniform"}));
  m.add(MaxPooling2D());
  m.add(Dropout(0.5));
  m.add(Conv2D(17, {3, 3}, {.padding = "same", .activation = "relu"}));
  m.add(MaxPooling2D({.pool_size = {3, 3}, .strides = std::array<std::int64_t, 2>{2, 2}, .padding = "same"}));
  m.add(SpatialDropout2D(0.4, {.schedule = DropoutSchedule::linear(0.0, 7)}));
  m.add(Conv2D(5, {2, 2}, {.activation = "relu"}));
  m.add(MaxPooling2D());
  m.add(GaussianDropout(0.2));
  m.add(Flatten());
  m.add(Dense(4, {.activation = "softmax"}));
  m.compile({.optimizer = Adam{.learning_rate = 0.01}, .loss = "categorical_crossentropy",
             .device = Device::CPU, .seed = 9, .fuse_layers = fuse});
  return m;
}

}  // namespace

TEST_CASE("a model trains, evaluates and predicts to the same bits with its blocks fused or not", "[fused]") {
  const std::int64_t n = 30;
  const Tensor x = dropnet::testing::random_tensor({n, 12, 12, 3}, 31, 0.0, 1.0);
  std::vector<float> labels(std::size_t(n * 4), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) labels[std::size_t(i * 4 + (i * 5) % 4)] = 1.0f;
  const Tensor y = Tensor::from_vector({n, 4}, labels);

  Sequential on = block_model(true), off = block_model(false);
  // Blocks: conv+pool+dropout, conv+pool+spatial dropout, conv+pool (the GaussianDropout stays a layer).
  CHECK(ModelInternals::fused_blocks(on) == 3);
  CHECK(ModelInternals::fused_blocks(off) == 0);
  REQUIRE(same_bits(testing::all_weights(on), testing::all_weights(off)));

  // 3 epochs of batches of 8 (the last one of 6 rows), with a validation split: 9 steps, evaluation too.
  FitOptions o;
  o.batch_size = 8;
  o.epochs = 3;
  o.verbose = 0;
  o.validation_split = 0.2;
  const History h_on = on.fit(x, y, o), h_off = off.fit(x, y, o);
  CHECK(h_on.history == h_off.history);
  CHECK(same_bits(testing::all_weights(on), testing::all_weights(off)));
  CHECK(on.train_on_batch(x.rows(0, 5), y.rows(0, 5)) == off.train_on_batch(x.rows(0, 5), y.rows(0, 5)));
  CHECK(same_bits(testing::all_weights(on), testing::all_weights(off)));
  // The weights moved: the runs are not equal by doing nothing.
  CHECK_FALSE(same_bits(testing::all_weights(on), testing::all_weights(block_model(true))));

  const Evaluation e_on = on.evaluate(x, y, 7, 0, nullptr), e_off = off.evaluate(x, y, 7, 0, nullptr);
  CHECK(e_on.loss == e_off.loss);
  CHECK(e_on.accuracy == e_off.accuracy);
  CHECK(same_bits(on.predict(x, {.batch_size = 9}), off.predict(x, {.batch_size = 9})));
  // Monte Carlo dropout: the masks of the fused dropouts are the layers' own (one batch of 1, too).
  for (int pass = 0; pass < 2; ++pass) {
    CHECK(same_bits(on.predict(x, {.batch_size = 11, .dropout = true}), off.predict(x, {.batch_size = 11, .dropout = true})));
    CHECK(same_bits(on.predict(x.rows(0, 1), {.batch_size = 1, .dropout = true}),
                    off.predict(x.rows(0, 1), {.batch_size = 1, .dropout = true})));
  }
}
