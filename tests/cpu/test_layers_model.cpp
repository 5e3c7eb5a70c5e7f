// Layers' argument checks and Sequential's Keras behaviours: naming, shapes, seeds, fit's reporting.
#include "support/catch.hpp"

#include "dropnet/dropnet.hpp"
#include "support/matchers.hpp"
#include "support/testing.hpp"

using namespace dropnet;
using Catch::Contains;

namespace {

Sequential small_model(double rate = 0.25) {
  Sequential m({8, 8, 3});
  m.add(Conv2D(4, {3, 3}, {.activation = "relu", .kernel_initializer = "he_uniform",
                           .kernel_constraint = MaxNorm{2.0, {0, 1, 2}}}));
  m.add(MaxPooling2D());
  m.add(Dropout(rate));
  m.add(Flatten());
  m.add(Dense(3, {.activation = "softmax"}));
  return m;
}

std::pair<Tensor, Tensor> make_data(std::int64_t n, std::uint64_t seed) {
  Tensor x = testing::random_tensor({n, 8, 8, 3}, seed, 0, 1);
  Tensor y({n, 3});
  for (std::int64_t i = 0; i < n; ++i) y.host()[std::size_t(i * 3 + i % 3)] = 1.0f;
  return {x, y};
}

}  // namespace

TEST_CASE("layer constructors check their arguments as Keras does", "[layers]") {
  CHECK_THROWS_MATCHES(Conv2D(0, {3, 3}), InvalidArgument, testing::MessageContains("filters"));
  CHECK_THROWS_MATCHES(Conv2D(8, {0, 3}), InvalidArgument, testing::MessageContains("kernel_size"));
  CHECK_THROWS_MATCHES(Conv2D(8, {3, 3}, {.strides = {1, 0}}), InvalidArgument, testing::MessageContains("strides"));
  CHECK_THROWS_MATCHES(Conv2D(8, {3, 3}, {.padding = "full"}), InvalidArgument, testing::MessageContains("padding"));
  CHECK_THROWS_MATCHES(Conv2D(8, {3, 3}, {.activation = "tanh"}), InvalidArgument, testing::MessageContains("tanh"));
  CHECK_THROWS_MATCHES(Conv2D(8, {3, 3}, {.kernel_initializer = "orthogonal"}), InvalidArgument,
                       testing::MessageContains("orthogonal"));
  CHECK_THROWS_MATCHES(Dense(0), InvalidArgument, testing::MessageContains("units"));
  CHECK_THROWS_MATCHES(Dense(4, {.kernel_constraint = MaxNorm{-1.0}}), InvalidArgument, testing::MessageContains("max_value"));
  CHECK_THROWS_MATCHES(MaxPooling2D({.pool_size = {2, 0}}), InvalidArgument, testing::MessageContains("pool_size"));
  CHECK_THROWS_AS(Activation("gelu"), InvalidArgument);
}

TEST_CASE("layers name themselves like Keras and compute Keras' output shapes", "[model]") {
  Sequential m({32, 32, 3});
  m.add(Conv2D(64, {3, 3}, {.activation = "relu"}));
  m.add(MaxPooling2D());
  m.add(Dropout(0.5));
  m.add(Conv2D(64, {3, 3}, {.activation = "relu"}));
  m.add(MaxPooling2D());
  m.add(Dropout(0.5));
  m.add(Flatten());
  m.add(Dense(256, {.activation = "relu"}));
  m.add(Dense(10, {.activation = "softmax"}));
  m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 1});
  CHECK(m.layer(0).name() == "conv2d");
  CHECK(m.layer(3).name() == "conv2d_1");
  CHECK(m.layer(5).name() == "dropout_1");
  CHECK(m.layer(8).name() == "dense_1");
  CHECK(m.layer(0).output_shape() == Shape{30, 30, 64});
  CHECK(m.layer(1).output_shape() == Shape{15, 15, 64});
  CHECK(m.layer(3).output_shape() == Shape{13, 13, 64});
  CHECK(m.layer(4).output_shape() == Shape{6, 6, 64});
  CHECK(m.layer(6).output_shape() == Shape{2304});
  CHECK(m.count_params() == 1792 + 36928 + 590080 + 2570);
  const std::string s = m.summary();
  CHECK_THAT(s, Contains("conv2d (Conv2D)"));
  CHECK_THAT(s, Contains("(None, 30, 30, 64)"));
  CHECK_THAT(s, Contains("(None, 2304)"));
  CHECK_THAT(s, Contains("590,080"));
  CHECK_THAT(s, Contains("Total params: 631,370 (2.41 MB)"));
}

TEST_CASE("compile and fit reject bad configurations with clear errors", "[model]") {
  Sequential m = small_model();
  CHECK_THROWS_MATCHES(m.compile({.loss = "hinge"}), InvalidArgument, testing::MessageContains("hinge"));
  CHECK_THROWS_MATCHES(m.compile({.loss = {"mse", true}}), InvalidArgument, testing::MessageContains("from_logits"));
  CHECK_THROWS_MATCHES(m.compile({.loss = "categorical_crossentropy", .metrics = {"auc"}}), InvalidArgument,
                       testing::MessageContains("auc"));
  m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 3});
  auto [x, y] = make_data(10, 1);
  CHECK_THROWS_MATCHES(m.fit(x, y, {.batch_size = 0}), InvalidArgument, testing::MessageContains("batch_size"));
  CHECK_THROWS_MATCHES(m.fit(x, y, {.validation_split = 1.0}), InvalidArgument, testing::MessageContains("validation_split"));
  CHECK_THROWS_MATCHES(m.fit(x, y, {.verbose = 0, .validation_split = 0.95}), InvalidArgument,
                       testing::MessageContains("not sufficient"));
  const Tensor wrong = testing::random_tensor({10, 8, 8, 1}, 2);
  CHECK_THROWS_MATCHES(m.fit(wrong, y), InvalidArgument, testing::MessageContains("expected (N, 8, 8, 3)"));
  CHECK_THROWS_MATCHES(m.fit(x, Tensor({10, 4})), InvalidArgument, testing::MessageContains("output's shape"));
}

TEST_CASE("the seed fixes the initial weights, whatever the dropout rate", "[model]") {
  Sequential a = small_model(0.0), b = small_model(0.7), c = small_model(0.0);
  a.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 42});
  b.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 42});
  c.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 43});
  CHECK(a.layer(0).params()[0].value.to_vector() == b.layer(0).params()[0].value.to_vector());
  CHECK(a.layer(4).params()[0].value.to_vector() == b.layer(4).params()[0].value.to_vector());
  CHECK(a.layer(0).params()[0].value.to_vector() != c.layer(0).params()[0].value.to_vector());
}

TEST_CASE("fit reports batch-size-weighted running means, as Keras", "[model][fit]") {
  // 10 samples in batches of 4, 4 and 2: the epoch's loss is (4 l1 + 4 l2 + 2 l3) / 10.
  auto [x, y] = make_data(10, 5);
  Sequential a = small_model(), b = small_model();
  a.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 9});
  b.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 9});
  const History h = a.fit(x, y, {.batch_size = 4, .epochs = 1, .verbose = 0, .shuffle = false});
  double loss = 0, acc = 0;
  for (auto [begin, end] : {std::pair{0, 4}, std::pair{4, 8}, std::pair{8, 10}}) {
    Logs l = b.train_on_batch(x.rows(begin, end), y.rows(begin, end));
    loss += l["loss"] * (end - begin);
    acc += l["accuracy"] * (end - begin);
  }
  CHECK(h.history.at("loss")[0] == Approx(loss / 10).epsilon(1e-6));
  CHECK(h.history.at("accuracy")[0] == Approx(acc / 10).epsilon(1e-9));
  CHECK(a.iterations() == 3);
  CHECK(a.layer(4).params()[0].value.to_vector() == b.layer(4).params()[0].value.to_vector());
}

TEST_CASE("validation_split holds out the last fraction and is reported as val_*", "[model][fit]") {
  auto [x, y] = make_data(20, 6);
  Sequential a = small_model(), b = small_model();
  a.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 4});
  b.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 4});
  const History h = a.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0, .validation_split = 0.25});
  REQUIRE(h.epoch == std::vector<int>{0, 1});
  REQUIRE(h.history.count("val_loss") == 1);
  // The validation metrics are those of evaluate() on rows 15..19 with the trained weights.
  const Evaluation v = a.evaluate(x.rows(15, 20), y.rows(15, 20), 8, 0);
  CHECK(h.history.at("val_loss")[1] == Approx(v.loss).epsilon(1e-6));
  CHECK(h.history.at("val_accuracy")[1] == Approx(v.accuracy));
  const History no_val = b.fit(x, y, {.epochs = 1, .verbose = 0});
  CHECK(no_val.history.count("val_loss") == 0);
}

TEST_CASE("predict is deterministic, Monte Carlo dropout predict is not", "[model]") {
  auto [x, y] = make_data(6, 7);
  Sequential m = small_model(0.5);
  m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 5});
  const auto p1 = m.predict(x).to_vector();
  const auto p2 = m.predict(x).to_vector();
  CHECK(p1 == p2);
  const auto mc1 = m.predict(x, {.dropout = true}).to_vector();
  const auto mc2 = m.predict(x, {.dropout = true}).to_vector();
  CHECK(mc1 != mc2);
  for (std::size_t r = 0; r < 6; ++r) CHECK(p1[3 * r] + p1[3 * r + 1] + p1[3 * r + 2] == Approx(1.0));
}

TEST_CASE("MaxNorm holds after every training step", "[model][maxnorm]") {
  auto [x, y] = make_data(16, 8);
  Sequential m({8, 8, 3});
  m.add(Conv2D(4, {3, 3}, {.activation = "relu", .kernel_constraint = MaxNorm{0.3, {0, 1, 2}}}));
  m.add(Flatten());
  m.add(Dense(3, {.activation = "softmax", .kernel_constraint = MaxNorm{0.5}}));
  m.compile({.optimizer = {.learning_rate = 0.05}, .loss = "categorical_crossentropy",
             .device = Device::CPU, .seed = 2});
  m.fit(x, y, {.batch_size = 4, .epochs = 2, .verbose = 0});
  const auto conv = m.layer(0).params()[0].value.to_vector();  // (3, 3, 3, 4)
  for (int k = 0; k < 4; ++k) {
    double s = 0;
    for (int i = 0; i < 27; ++i) s += double(conv[std::size_t(i * 4 + k)]) * conv[std::size_t(i * 4 + k)];
    CHECK(std::sqrt(s) <= 0.3 + 1e-6);
  }
  const auto dense = m.layer(2).params()[0].value.to_vector();  // (144, 3)
  for (int j = 0; j < 3; ++j) {
    double s = 0;
    for (int i = 0; i < 144; ++i) s += double(dense[std::size_t(i * 3 + j)]) * dense[std::size_t(i * 3 + j)];
    CHECK(std::sqrt(s) <= 0.5 + 1e-6);
  }
}
