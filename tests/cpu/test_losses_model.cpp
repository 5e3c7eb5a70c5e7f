// Sequential with Keras' losses and metrics: every loss trains, "accuracy" resolves as Keras resolves it,
// History and evaluate report the metrics under their Keras names, sparse labels train the same bits as
// one-hot ones, and a model compiled without a loss predicts but refuses to train or evaluate.
#include "support/catch.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "dropnet/dropnet.hpp"
#include "support/matchers.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {

constexpr std::int64_t kN = 48, kFeatures = 6, kClasses = 3;

Tensor inputs() { return testing::random_tensor({kN, kFeatures}, 11, -1, 1); }

// Class i % 3 of sample i, as indices and as one-hot rows, with inputs that tell them apart.
std::vector<int> classes_of(const Tensor& x) {
  std::vector<int> c;
  const auto v = x.to_vector();
  for (std::int64_t i = 0; i < kN; ++i) {
    const float* row = v.data() + i * kFeatures;
    c.push_back(row[0] > 0.3f ? 0 : (row[1] > 0.0f ? 1 : 2));
  }
  return c;
}
Tensor sparse_labels(const std::vector<int>& c) { return Tensor::from_vector({kN}, std::vector<float>(c.begin(), c.end())); }
Tensor one_hot(const std::vector<int>& c) {
  Tensor y({kN, kClasses});
  for (std::int64_t i = 0; i < kN; ++i) y.host()[std::size_t(i * kClasses + c[std::size_t(i)])] = 1.0f;
  return y;
}

Sequential mlp(const std::string& last_activation, std::int64_t units = kClasses) {
  Sequential m({kFeatures});
  m.add(Dense(16, {.activation = "relu"}));
  m.add(Dense(units, {.activation = last_activation}));
  return m;
}

// Trains 30 epochs and returns the first and last epoch's loss.
std::pair<double, double> first_last_loss(Sequential& m, const Tensor& x, const Tensor& y) {
  const History h = m.fit(x, y, {.batch_size = 16, .epochs = 30, .verbose = 0});
  return {h.history.at("loss").front(), h.history.at("loss").back()};
}

}  // namespace

TEST_CASE("every loss trains a small model: its loss goes down", "[model][loss]") {
  const Tensor x = inputs();
  const std::vector<int> c = classes_of(x);
  struct Setup { const char* what; const char* activation; Loss loss; Tensor y; std::int64_t units; };
  Tensor binary({kN, 1});
  for (std::int64_t i = 0; i < kN; ++i) binary.host()[std::size_t(i)] = c[std::size_t(i)] == 0 ? 1.0f : 0.0f;
  const std::vector<Setup> setups{
      {"cce on softmax", "softmax", "categorical_crossentropy", one_hot(c), kClasses},
      {"cce from logits", "linear", Loss("categorical_crossentropy", true), one_hot(c), kClasses},
      {"sparse cce on softmax", "softmax", "sparse_categorical_crossentropy", sparse_labels(c), kClasses},
      {"sparse cce from logits", "linear", {"sparse_categorical_crossentropy", true}, sparse_labels(c), kClasses},
      {"bce from logits", "linear", {"binary_crossentropy", true}, binary, 1},
      {"mse", "linear", "mean_squared_error", one_hot(c), kClasses},
      {"bce on softmax probabilities", "softmax", "binary_crossentropy", one_hot(c), kClasses},
  };
  for (const Setup& s : setups) {
    DYNAMIC_SECTION(s.what) {
      Sequential m = mlp(s.activation, s.units);
      m.compile({.optimizer = Adam{.learning_rate = 0.01}, .loss = s.loss, .device = Device::CPU, .seed = 3});
      const auto [first, last] = first_last_loss(m, x, s.y);
      INFO(s.what << ": loss " << first << " -> " << last);
      CHECK(last < 0.8 * first);
    }
  }
}

TEST_CASE("sparse labels train the same bits as one-hot labels on a softmax head", "[model][loss]") {
  const Tensor x = inputs();
  const std::vector<int> c = classes_of(x);
  Sequential a = mlp("softmax"), b = mlp("softmax"), col = mlp("softmax");
  a.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 5});
  b.compile({.loss = "sparse_categorical_crossentropy", .device = Device::CPU, .seed = 5});
  col.compile({.loss = "sparse_categorical_crossentropy", .device = Device::CPU, .seed = 5});
  const FitOptions o{.batch_size = 10, .epochs = 2, .verbose = 0, .validation_split = 0.25};
  const History ha = a.fit(x, one_hot(c), o), hb = b.fit(x, sparse_labels(c), o);
  const History hc = col.fit(x, sparse_labels(c).reshaped({kN, 1}), o);
  CHECK(ha.history == hb.history);
  CHECK(hb.history == hc.history);
  CHECK(a.layer(1).params()[0].value.to_vector() == b.layer(1).params()[0].value.to_vector());
  CHECK(ha.history.count("val_accuracy") == 1);
}

TEST_CASE("metrics: accuracy resolves per Keras' rules and every metric reports under its name", "[model][metrics]") {
  const Tensor x = inputs();
  const std::vector<int> c = classes_of(x);
  SECTION("sparse loss: accuracy is sparse_categorical_accuracy, equal to the explicit name") {
    Sequential a = mlp("softmax"), b = mlp("softmax");
    a.compile({.loss = "sparse_categorical_crossentropy", .device = Device::CPU, .seed = 1});
    b.compile({.loss = "sparse_categorical_crossentropy", .metrics = {"sparse_categorical_accuracy"},
               .device = Device::CPU, .seed = 1});
    const Evaluation ea = a.evaluate(x, sparse_labels(c), 16, 0), eb = b.evaluate(x, sparse_labels(c), 16, 0);
    CHECK(ea.metrics.at("accuracy") == eb.metrics.at("sparse_categorical_accuracy"));
    CHECK(ea.accuracy == ea.metrics.at("accuracy"));
    // By hand: the argmax of predict against the labels.
    const Tensor p = a.predict(x);
    double hits = 0;
    for (std::int64_t i = 0; i < kN; ++i) {
      const float* row = p.host().data() + i * kClasses;
      int arg = 0;
      for (int k = 1; k < kClasses; ++k) if (row[k] > row[arg]) arg = k;
      hits += arg == c[std::size_t(i)];
    }
    CHECK(ea.accuracy == Approx(hits / kN).margin(1e-12));
  }
  SECTION("one output unit: accuracy is binary_accuracy (threshold 0.5)") {
    Sequential m = mlp("linear", 1);
    m.compile({.loss = "mse", .device = Device::CPU, .seed = 2});
    Tensor y({kN, 1});
    const Evaluation e = m.evaluate(x, y, 16, 0);
    const Tensor p = m.predict(x);
    double hits = 0;
    for (std::int64_t i = 0; i < kN; ++i) hits += !(p.host()[std::size_t(i)] > 0.5f);  // targets are 0
    CHECK(e.accuracy == Approx(hits / kN).margin(1e-12));
  }
  SECTION("mae on a regression, and no metric") {
    Sequential m = mlp("linear"), none = mlp("linear");
    m.compile({.loss = "mse", .metrics = {"mae"}, .device = Device::CPU, .seed = 4});
    none.compile({.loss = "mse", .metrics = {}, .device = Device::CPU, .seed = 4});
    const Tensor y = one_hot(c);
    const Evaluation e = m.evaluate(x, y, 16, 0);
    const Tensor p = m.predict(x);
    double sum = 0;
    for (std::int64_t i = 0; i < kN * kClasses; ++i) sum += std::abs(double(p.host()[std::size_t(i)]) - y.host()[std::size_t(i)]);
    CHECK(e.metrics.at("mae") == Approx(sum / double(kN * kClasses)).epsilon(1e-5));
    CHECK(e.accuracy == 0.0);
    const History h = none.fit(x, y, {.batch_size = 16, .epochs = 1, .verbose = 0, .validation_split = 0.25});
    CHECK(h.history.size() == 2);  // loss, val_loss
    CHECK(h.history.count("val_loss") == 1);
    const Logs l = m.train_on_batch(x.rows(0, 8), y.rows(0, 8));
    CHECK(l.count("mae") == 1);
    CHECK(l.count("loss") == 1);
  }
  SECTION("metrics that do not fit the loss, and more than one, are refused") {
    Sequential m = mlp("softmax");
    CHECK_THROWS_MATCHES(m.compile({.loss = "categorical_crossentropy", .metrics = {"sparse_categorical_accuracy"}}),
                         InvalidArgument, testing::MessageContains("sparse_categorical_accuracy"));
    CHECK_THROWS_MATCHES(m.compile({.loss = "sparse_categorical_crossentropy", .metrics = {"mae"}}),
                         InvalidArgument, testing::MessageContains("mae"));
    CHECK_THROWS_MATCHES(m.compile({.loss = "mse", .metrics = {"mae", "accuracy"}}), InvalidArgument,
                         testing::MessageContains("at most one"));
  }
}

TEST_CASE("targets are checked against the loss", "[model][loss]") {
  const Tensor x = inputs();
  Sequential m = mlp("softmax");
  m.compile({.loss = "sparse_categorical_crossentropy", .device = Device::CPU, .seed = 1});
  CHECK_THROWS_MATCHES(m.fit(x, one_hot(classes_of(x)), {.verbose = 0}), InvalidArgument,
                       testing::MessageContains("class indices"));
  Tensor bad = sparse_labels(classes_of(x));
  bad.host()[3] = 3.0f;
  CHECK_THROWS_MATCHES(m.evaluate(x, bad, 16, 0), InvalidArgument, testing::MessageContains("not a class index"));
  bad.host()[3] = 1.5f;
  CHECK_THROWS_MATCHES(m.train_on_batch(x, bad), InvalidArgument, testing::MessageContains("not a class index"));
}

TEST_CASE("compile() without a loss gives an inference-only model", "[model][loss]") {
  const Tensor x = testing::random_tensor({5, 4}, 3, -1, 1);
  SECTION("one Dropout layer: predict is the identity, Monte Carlo predict drops") {
    Sequential m({4});
    m.add(Dropout(0.5, {.seed = 7}));
    m.compile({.device = Device::CPU, .seed = 1});
    CHECK(m.predict(x).to_vector() == x.to_vector());
    const auto mc = m.predict(x, {.dropout = true}).to_vector();
    const auto in = x.to_vector();
    int dropped = 0, scaled = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      dropped += mc[i] == 0.0f;
      scaled += mc[i] == in[i] * 2.0f;
    }
    CHECK(dropped > 0);
    CHECK(dropped + scaled == int(in.size()));
  }
  SECTION("one Dense layer: outputs of any width; fit, evaluate and train_on_batch refused") {
    Sequential m({4});
    m.add(Dense(2));
    m.compile({.device = Device::CPU, .seed = 1});
    CHECK(m.predict(x).shape() == Shape{5, 2});
    const Tensor y({5, 2});
    CHECK_THROWS_MATCHES(m.fit(x, y, {.verbose = 0}), InvalidArgument, testing::MessageContains("needs a loss"));
    CHECK_THROWS_MATCHES(m.evaluate(x, y, 8, 0), InvalidArgument, testing::MessageContains("needs a loss"));
    CHECK_THROWS_MATCHES(m.train_on_batch(x, y), InvalidArgument, testing::MessageContains("needs a loss"));
  }
}
