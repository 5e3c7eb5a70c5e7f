// Layers called on tensors, y = layer(x, training) (layers/layer_call.cpp): the same outputs as inside a
// model, fresh draws per training call keyed as a model keys them, and a model's layer left intact.
#include "support/catch.hpp"

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "kernels/rate_schedule.hpp"
#include "layers/layer_util.hpp"
#include "support/cpu_backend.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {

// A model of the one layer `layer`, inference only (compile() without a loss), on the CPU.
Sequential one_layer_model(const Shape& input_shape, std::unique_ptr<Layer> layer) {
  Sequential m(input_shape);
  m.add(std::move(layer));
  m.compile({.loss = "", .device = Device::CPU, .seed = 3});
  return m;
}

Shape with_batch(std::int64_t n, const Shape& shape) {
  Shape s{n};
  s.insert(s.end(), shape.begin(), shape.end());
  return s;
}

// Every dropout-family layer, seeded, with an input shape it takes (batch excluded).
struct RandomLayerCase {
  std::string name;
  Shape input_shape;
  std::function<std::unique_ptr<Layer>(std::uint64_t seed)> make;
};

std::vector<RandomLayerCase> random_layer_cases() {
  return {
      {"Dropout", {6, 5}, [](std::uint64_t s) { return std::make_unique<Dropout>(0.4, DropoutOptions{.seed = s}); }},
      {"Dropout noise_shape", {4, 5},
       [](std::uint64_t s) {
         return std::make_unique<Dropout>(0.4, DropoutOptions{.noise_shape = {std::nullopt, 1, std::nullopt}, .seed = s});
       }},
      {"SpatialDropout1D", {7, 6}, [](std::uint64_t s) { return std::make_unique<SpatialDropout1D>(0.5, RandomLayerOptions{.seed = s}); }},
      {"SpatialDropout2D", {4, 4, 6}, [](std::uint64_t s) { return std::make_unique<SpatialDropout2D>(0.5, RandomLayerOptions{.seed = s}); }},
      {"SpatialDropout3D", {2, 3, 3, 6}, [](std::uint64_t s) { return std::make_unique<SpatialDropout3D>(0.5, RandomLayerOptions{.seed = s}); }},
      {"GaussianDropout", {6, 5}, [](std::uint64_t s) { return std::make_unique<GaussianDropout>(0.3, RandomLayerOptions{.seed = s}); }},
      {"GaussianNoise", {6, 5}, [](std::uint64_t s) { return std::make_unique<GaussianNoise>(0.2, RandomLayerOptions{.seed = s}); }},
      {"AlphaDropout", {6, 5}, [](std::uint64_t s) { return std::make_unique<AlphaDropout>(0.3, DropoutOptions{.seed = s}); }},
      {"DropBlock2D", {8, 8, 3}, [](std::uint64_t s) { return std::make_unique<DropBlock2D>(0.3, 3, RandomLayerOptions{.seed = s}); }},
  };
}

}  // namespace

TEST_CASE("Dropout called in training drops about `rate` and scales the rest by 1 / (1 - rate)", "[layer_call]") {
  Dropout dropout(0.3, {.seed = 11});
  const Tensor x = testing::random_tensor({200, 500}, 4, 0.5, 1.5);
  const Tensor y = dropout(x, /*training=*/true);
  REQUIRE(y.shape() == x.shape());
  REQUIRE(y.device() == Device::CPU);
  CHECK(dropout.built());
  CHECK(dropout.input_shape() == Shape{500});
  const auto xv = x.to_vector(), yv = y.to_vector();
  const float keep = 1.0f - 0.3f;
  std::int64_t dropped = 0;
  for (std::size_t i = 0; i < yv.size(); ++i) {
    REQUIRE((yv[i] == 0.0f || yv[i] == xv[i] / keep));
    dropped += yv[i] == 0.0f;
  }
  const double n = double(yv.size()), frac = double(dropped) / n;
  INFO("dropped fraction " << frac);
  CHECK(std::abs(frac - 0.3) < 5.0 * std::sqrt(0.3 * 0.7 / n));
  CHECK(dropout.call_step() == 1);
}

TEST_CASE("an inference call is the identity and draws nothing", "[layer_call]") {
  for (const auto& c : random_layer_cases()) {
    INFO(c.name);
    auto layer = c.make(21);
    const Tensor x = testing::random_tensor(with_batch(3, c.input_shape), 8);
    CHECK((*layer)(x).to_vector() == x.to_vector());
    CHECK((*layer)(x, /*training=*/false).to_vector() == x.to_vector());
    CHECK(layer->call_step() == 0);
  }
}

TEST_CASE("each training call draws afresh: call n equals a one-layer model's n-th Monte Carlo predict",
          "[layer_call]") {
  for (const auto& c : random_layer_cases()) {
    INFO(c.name);
    auto layer = c.make(77);
    Sequential model = one_layer_model(c.input_shape, c.make(77));
    const Tensor x = testing::random_tensor(with_batch(4, c.input_shape), 9);
    std::vector<std::vector<float>> draws;
    for (int n = 0; n < 3; ++n) {
      const std::vector<float> called = (*layer)(x, /*training=*/true).to_vector();
      const std::vector<float> predicted = model.predict(x, {.batch_size = 4, .dropout = true}).to_vector();
      CHECK(called == predicted);
      CHECK(called != x.to_vector());
      draws.push_back(called);
    }
    CHECK(layer->call_step() == 3);
    CHECK(draws[0] != draws[1]);
    CHECK(draws[1] != draws[2]);
  }
}

TEST_CASE("call n draws Dropout's mask of step n, at the schedule's rate of step n", "[layer_call]") {
  // The backend op keyed by (seed, n) with the rate the schedule gives at n: what a model's layer draws
  // at its n-th training step (its slot holds that step and rate).
  const DropoutSchedule ramp = DropoutSchedule::linear(0.0, 4);
  Dropout dropout(0.5, {.seed = 5, .schedule = ramp});
  const Tensor x = testing::random_tensor({8, 64}, 2, 0.5, 1.5);
  for (std::uint64_t n = 0; n < 6; ++n) {
    INFO("call " << n);
    const Tensor y = dropout(x, /*training=*/true);
    const float rate = kernels::scheduled_rate(layer_util::rate_schedule(0.5, ramp), n);
    std::vector<float> expected = x.to_vector();
    if (rate > 0.0f) {
      Tensor e(x.shape());
      testing::cpu_backend().dropout_forward(x, e, {5, n, rate, x.shape(), x.shape()});
      expected = e.to_vector();
    }
    CHECK(y.to_vector() == expected);
  }
}

TEST_CASE("Dense and Conv2D called on a tensor give the model's forward, bit for bit", "[layer_call]") {
  SECTION("Dense, relu") {
    Sequential model = one_layer_model({12}, std::make_unique<Dense>(7, DenseOptions{.activation = "relu"}));
    const Tensor x = testing::random_tensor({5, 12}, 1);
    CHECK(model.layer(0)(x).to_vector() == model.predict(x).to_vector());
  }
  SECTION("Conv2D, same padding, stride 2") {
    Sequential model = one_layer_model(
        {9, 9, 3}, std::make_unique<Conv2D>(4, std::array<std::int64_t, 2>{3, 3},
                                            Conv2DOptions{.strides = {2, 2}, .padding = "same", .activation = "relu"}));
    const Tensor x = testing::random_tensor({3, 9, 9, 3}, 2);
    CHECK(model.layer(0)(x, /*training=*/true).to_vector() == model.predict(x).to_vector());
  }
  SECTION("a layer built on its own, with the model's weights copied in") {
    Sequential model({6, 6, 2});
    model.add(Conv2D(3, {3, 3}, {.activation = "relu"}));
    model.add(Flatten());
    model.add(Dense(4, {.activation = "softmax"}));
    model.compile({.device = Device::CPU, .seed = 8});
    Conv2D conv(3, {3, 3}, {.activation = "relu"});
    Flatten flatten;
    Dense dense(4, {.activation = "softmax"});
    conv.build({6, 6, 2}, 1);
    dense.build({48}, 2);
    for (std::size_t i = 0; i < 2; ++i) {
      conv.params()[i].value.copy_from(model.layer(0).params()[i].value);
      dense.params()[i].value.copy_from(model.layer(2).params()[i].value);
    }
    const Tensor x = testing::random_tensor({4, 6, 6, 2}, 3);
    CHECK(dense(flatten(conv(x))).to_vector() == model.predict(x).to_vector());
  }
}

TEST_CASE("a layer is built on its first call, and only then", "[layer_call]") {
  Dense dense(3);
  CHECK_FALSE(dense.built());
  const Tensor y = dense(testing::random_tensor({2, 5}, 1));
  CHECK(y.shape() == Shape{2, 3});
  CHECK(dense.built());
  CHECK(dense.input_shape() == Shape{5});
  const std::vector<float> kernel = dense.params()[0].value.to_vector();
  // Another batch size is the same layer: not rebuilt, the same weights.
  CHECK(dense(testing::random_tensor({7, 5}, 2)).shape() == Shape{7, 3});
  CHECK(dense.params()[0].value.to_vector() == kernel);
  // An empty batch gives an empty output.
  CHECK(dense(Tensor({0, 5})).shape() == Shape{0, 3});
  // build() before the first call chooses the weights.
  Dense a(3), b(3);
  a.build({5}, 42);
  b.build({5}, 42);
  const Tensor x = testing::random_tensor({2, 5}, 3);
  CHECK(a(x).to_vector() == b(x).to_vector());
}

TEST_CASE("calls that do not fit the layer throw InvalidArgument naming the layer and the shapes", "[layer_call]") {
  Sequential model({5});
  Dense& dense = model.add(Dense(3));
  CHECK(dense(testing::random_tensor({2, 5}, 1)).shape() == Shape{2, 3});
  CHECK_THROWS_AS(dense(Tensor({2, 4})), InvalidArgument);
  CHECK_THROWS_WITH(dense(Tensor({2, 4})), Catch::Contains("layer 'dense' (Dense)") &&
                                               Catch::Contains("(None, 5)") && Catch::Contains("(2, 4)"));
  Dropout unnamed(0.5);
  unnamed(Tensor({2, 3, 4}));
  CHECK_THROWS_WITH(unnamed(Tensor({2, 4, 3})), Catch::Contains("a Dropout layer") && Catch::Contains("(None, 3, 4)"));
  // A batch dimension and at least one more.
  CHECK_THROWS_AS(Dropout(0.5)(Tensor({6})), InvalidArgument);
  CHECK_THROWS_AS(Dropout(0.5)(Tensor()), InvalidArgument);
  // What build() rejects, from the first call; the layer stays unbuilt.
  Dense flat_only(2);
  CHECK_THROWS_AS(flat_only(Tensor({2, 3, 3})), InvalidArgument);
  CHECK_FALSE(flat_only.built());
  CHECK_THROWS_AS(DropBlock2D(0.2, 5)(Tensor({1, 4, 4, 2})), InvalidArgument);
}

TEST_CASE("a model's layer called directly keeps its own count and leaves the model's step and buffers",
          "[layer_call]") {
  SECTION("the dropout steps") {
    Sequential model = one_layer_model({32}, std::make_unique<Dropout>(0.5, DropoutOptions{.seed = 9}));
    Dropout reference(0.5, {.seed = 9});
    const Tensor x = testing::random_tensor({4, 32}, 5);
    const auto step0 = reference(x, true).to_vector(), step1 = reference(x, true).to_vector(),
               step2 = reference(x, true).to_vector();
    Layer& layer = model.layer(0);
    CHECK(layer(x, true).to_vector() == step0);
    CHECK(layer(x, true).to_vector() == step1);
    CHECK(layer.call_step() == 2);
    // The model's own sequence has not moved: its first Monte Carlo predict is step 0, then 1.
    CHECK(model.predict(x, {.batch_size = 4, .dropout = true}).to_vector() == step0);
    CHECK(model.predict(x, {.batch_size = 4, .dropout = true}).to_vector() == step1);
    // Nor has the model moved the layer's count.
    CHECK(layer(x, true).to_vector() == step2);
    CHECK(layer.call_step() == 3);
  }
  SECTION("the model's scratch buffers") {
    Sequential model({3, 3, 2});
    model.add(Conv2D(2, {2, 2}, {.activation = "relu"}));
    model.add(Flatten());
    model.add(Dense(3, {.activation = "softmax"}));
    model.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 4});
    const Tensor x = testing::random_tensor({6, 3, 3, 2}, 6);
    std::vector<float> labels(18, 0.0f);
    for (int r = 0; r < 6; ++r) labels[std::size_t(r * 3 + r % 3)] = 1.0f;
    const Tensor y = Tensor::from_vector({6, 3}, labels);
    const std::vector<float> before = model.predict(x, {.batch_size = 6}).to_vector();
    const Evaluation eval_before = model.evaluate(x, y, 6, 0);
    // Calls with a smaller batch (the layers then hold buffers of 2 rows for the call)...
    const Tensor small = testing::random_tensor({2, 3, 3, 2}, 7);
    model.layer(2)(model.layer(1)(model.layer(0)(small)));
    // ...leave the model's 6-row buffers and its softmax logits in place.
    CHECK(model.predict(x, {.batch_size = 6}).to_vector() == before);
    const Evaluation eval_after = model.evaluate(x, y, 6, 0);
    CHECK(eval_after.loss == eval_before.loss);
    CHECK(model.train_on_batch(x, y).at("loss") == Approx(eval_before.loss).epsilon(1e-6));
  }
}

TEST_CASE("a one-layer model without a loss predicts the layer's inference output and refuses to train", "[layer_call][model]") {
  Sequential model = one_layer_model({4}, std::make_unique<Dropout>(0.5, DropoutOptions{.seed = 1}));
  const Tensor x = testing::random_tensor({3, 4}, 1);
  const Tensor y = Tensor::from_vector({3, 4}, std::vector<float>(12, 0.25f));
  CHECK(model.predict(x).to_vector() == x.to_vector());
  CHECK_THROWS_WITH(model.fit(x, y, {.verbose = 0}), Catch::Contains("compiled without a loss"));
  CHECK_THROWS_WITH(model.evaluate(x, y, 3, 0), Catch::Contains("compiled without a loss"));
  CHECK_THROWS_WITH(model.train_on_batch(x, y), Catch::Contains("compiled without a loss"));
}
