// Dropout: Keras' semantics and the properties of the counter-based mask.
#include "support/catch.hpp"

#include <cmath>
#include <limits>

#include "backend/backend.hpp"
#include "layers/run_context.hpp"
#include "kernels/dropout_math.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"
#include "support/matchers.hpp"
#include "support/cpu_backend.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {

backend::Backend& cpu() { return testing::cpu_backend(); }

std::vector<float> apply(const Tensor& x, std::uint64_t seed, std::uint64_t step, float rate, Shape mask = {}) {
  Tensor y(x.shape());
  cpu().dropout_forward(x, y, {seed, step, rate, x.shape(), mask.empty() ? x.shape() : mask});
  return y.to_vector();
}

}  // namespace

TEST_CASE("dropout keeps a fraction 1 - rate of elements, within 5 sigma", "[dropout]") {
  const std::int64_t n = 1 << 22;
  for (float rate : {0.1f, 0.5f, 0.7f}) {
    Tensor x({n});
    x.fill(1.0f);
    const auto y = apply(x, 1234, 0, rate);
    std::int64_t kept = 0;
    for (float v : y) kept += v != 0.0f;
    const double p = 1.0 - rate, frac = double(kept) / double(n);
    INFO("rate " << rate << " kept fraction " << frac);
    CHECK(std::abs(frac - p) < 5.0 * std::sqrt(p * (1.0 - p) / double(n)));
  }
}

TEST_CASE("dropout output is exactly 0 or x / (1 - rate)", "[dropout]") {
  const Tensor x = testing::random_tensor({3, 7, 5, 4}, 9);
  const float rate = 0.3f, keep = 1.0f - rate;
  const auto y = apply(x, 42, 3, rate);
  const auto xv = x.to_vector();
  for (std::size_t i = 0; i < y.size(); ++i) REQUIRE((y[i] == 0.0f || y[i] == xv[i] / keep));
}

TEST_CASE("the mask is a pure function of (seed, step, index)", "[dropout]") {
  Tensor x({4096});
  x.fill(1.0f);
  const auto a = apply(x, 7, 0, 0.5f), b = apply(x, 7, 0, 0.5f);
  const auto next_step = apply(x, 7, 1, 0.5f), other_seed = apply(x, 8, 0, 0.5f);
  CHECK(a == b);
  CHECK(a != next_step);
  CHECK(a != other_seed);
  // A prefix of a larger tensor gets the same mask: nothing depends on the size or the launch shape.
  Tensor big({8192});
  big.fill(1.0f);
  const auto c = apply(big, 7, 0, 0.5f);
  CHECK(std::equal(a.begin(), a.end(), c.begin()));
}

TEST_CASE("noise_shape broadcasts one draw over the axes set to 1", "[dropout]") {
  const Shape in{3, 4, 5, 6};
  Tensor x(in);
  x.fill(1.0f);
  const auto y = apply(x, 5, 0, 0.5f, {3, 1, 1, 6});  // Keras' SpatialDropout2D pattern (N, 1, 1, C)
  std::int64_t channels_dropped = 0;
  for (std::int64_t n = 0; n < 3; ++n) {
    for (std::int64_t c = 0; c < 6; ++c) {
      const float first = y[std::size_t(((n * 4 + 0) * 5 + 0) * 6 + c)];
      channels_dropped += first == 0.0f;
      for (std::int64_t h = 0; h < 4; ++h)
        for (std::int64_t w = 0; w < 5; ++w) REQUIRE(y[std::size_t(((n * 4 + h) * 5 + w) * 6 + c)] == first);
    }
  }
  CHECK(channels_dropped > 0);
  CHECK(channels_dropped < 18);
}

TEST_CASE("Dropout layer: Keras' rate check, identity at inference and rate 0, zeros at rate 1", "[dropout]") {
  for (double bad : {1.5, -0.1, std::numeric_limits<double>::quiet_NaN()}) {
    REQUIRE_THROWS_MATCHES(Dropout(bad), InvalidArgument,
                           testing::MessageContains("Expected a float value between 0 and 1"));
  }
  REQUIRE_NOTHROW(Dropout(0.0));
  REQUIRE_NOTHROW(Dropout(1.0));
  REQUIRE_THROWS_AS(Dropout(0.5, {.noise_shape = {std::nullopt, 0}}), InvalidArgument);

  const Tensor x = testing::random_tensor({2, 8}, 3);
  backend::StepSlot slot{0, 1, 0.5f, kernels::constant_rate(0.5f)};
  RunContext infer{cpu(), false}, train{cpu(), true, &slot};
  Dropout half(0.5, {.seed = 11});
  half.build({8}, 0);
  Tensor y({2, 8});
  half.forward(x, y, infer);
  CHECK(y.to_vector() == x.to_vector());

  Dropout zero(0.0);
  zero.build({8}, 0);
  zero.forward(x, y, train);
  CHECK(y.to_vector() == x.to_vector());

  Dropout one(1.0);
  one.build({8}, 0);
  one.forward(x, y, train);
  for (float v : y.to_vector()) CHECK(v == 0.0f);

  REQUIRE_THROWS_AS(Dropout(0.5, {.noise_shape = {std::nullopt, 3}}).build({8}, 0), InvalidArgument);
}

TEST_CASE("Dropout layer: the mask is its slot's step's, and backward regenerates the same mask", "[dropout]") {
  const Tensor x = testing::random_tensor({4, 64}, 17, 0.5, 1.5);  // no zeros in x
  backend::StepSlot slot{0, 1, 0.4f, kernels::constant_rate(0.4f)};  // as the model lays it out
  RunContext train{cpu(), true, &slot};
  Dropout layer(0.4, {.seed = 99});
  layer.build({64}, 0);
  REQUIRE(layer.seed_generator().has_value());
  CHECK(layer.seed_generator()->seed == 99);
  CHECK_FALSE(Dropout(0.0).seed_generator()->draws);
  Tensor y1({4, 64}), y2({4, 64}), dx({4, 64});
  layer.forward(x, y1, train);
  slot.step = 1;  // what the step's last op (advance_step) does
  layer.forward(x, y2, train);
  CHECK(y1.to_vector() != y2.to_vector());
  RunContext no_slot{cpu(), true};
  CHECK_THROWS_AS(layer.forward(x, y2, no_slot), InvalidArgument);

  Tensor dy({4, 64});
  dy.fill(1.0f);
  layer.backward(x, y2, dy, &dx, train);  // the mask of the last forward (step 1)
  const auto yv = y2.to_vector(), dxv = dx.to_vector();
  for (std::size_t i = 0; i < yv.size(); ++i) {
    REQUIRE((yv[i] == 0.0f) == (dxv[i] == 0.0f));
    if (dxv[i] != 0.0f) REQUIRE(dxv[i] == 1.0f / (1.0f - 0.4f));
  }
}

TEST_CASE("the integer keep threshold decides exactly as the float keep rule", "[dropout]") {
  for (float rate : {0.001f, 0.1f, 0.25f, 0.3f, 0.5f, 0.7f, 0.999f}) {
    const float keep_prob = kernels::dropout_keep_prob(rate);
    const std::uint64_t t = kernels::dropout_keep_threshold(keep_prob);
    INFO("rate " << rate << " threshold " << t);
    REQUIRE(t > 0);
    REQUIRE(t < (std::uint64_t(1) << 32));
    CHECK(kernels::dropout_keep(std::uint32_t(t - 1), keep_prob));   // the last word kept
    CHECK(!kernels::dropout_keep(std::uint32_t(t), keep_prob));      // the first word dropped
    for (std::uint32_t x : testing::uniform<std::uint32_t>(20000, 0, 4294967295.0, 3))
      REQUIRE(kernels::dropout_keep(x, keep_prob) == (x < t));
  }
}

TEST_CASE("Dropout layer at rate 0 or 1 under a schedule: the op runs with the slot's rate", "[dropout]") {
  // Late dropout of a layer at rate 0 (and early dropout at rate 1) calls the op, which reads the current
  // rate from the slot; the layer's own rate 0 or 1 must not be refused there.
  const Tensor x = testing::random_tensor({2, 8}, 5, 0.5, 1.5);
  Tensor y({2, 8});
  Dropout late_zero(0.0, {.seed = 3, .schedule = DropoutSchedule::late(2)});
  late_zero.build({8}, 0);
  backend::StepSlot zero_slot{0, 1, 0.0f, {0.0f, 0.0f, 2, 2}};
  RunContext train_zero{cpu(), true, &zero_slot};
  REQUIRE_NOTHROW(late_zero.forward(x, y, train_zero));
  CHECK(y.to_vector() == x.to_vector());

  Dropout early_one(1.0, {.seed = 3, .schedule = DropoutSchedule::early(1)});
  early_one.build({8}, 0);
  backend::StepSlot one_slot{0, 1, 1.0f, {1.0f, 0.0f, 1, 1}};
  RunContext train_one{cpu(), true, &one_slot};
  early_one.forward(x, y, train_one);
  for (float v : y.to_vector()) CHECK(v == 0.0f);
  one_slot.step = 1, one_slot.rate = 0.0f;  // after the first step: rate 0, the identity
  early_one.forward(x, y, train_one);
  CHECK(y.to_vector() == x.to_vector());
}
