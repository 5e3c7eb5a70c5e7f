// The replayable training step of fit (backend/backend.hpp, StepCounters; model/fit_plan.hpp): the values
// that change between steps come from the backend's memory, and give exactly what the plain calls give.
#include "support/catch.hpp"

#include <cstring>
#include <numeric>

#include "backend/backend.hpp"
#include "dropnet/dropnet.hpp"
#include "kernels/adam_math.hpp"
#include "model/fit_plan.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {
backend::Backend& cpu() { return backend::backend_for(Device::CPU); }

// Images as the CIFAR-10 loader makes them (byte / 255.0f) and one-hot labels.
std::pair<Tensor, Tensor> byte_images(std::int64_t n, std::int64_t classes) {
  std::vector<float> x(std::size_t(n * 12)), y(std::size_t(n * classes), 0.0f);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37 + 11) % 256) / 255.0f;
  for (std::int64_t r = 0; r < n; ++r) y[std::size_t(r * classes + (r * 7) % classes)] = 1.0f;
  return {Tensor::from_vector({n, 2, 2, 3}, x), Tensor::from_vector({n, classes}, y)};
}
}  // namespace

TEST_CASE("exact_bytes finds byte / 255 images and refuses anything else", "[fit_step]") {
  const std::vector<float> ok = {0.0f, 1.0f, 128.0f / 255.0f, 7.0f / 255.0f};
  const auto bytes = exact_bytes(ok);
  REQUIRE(bytes.has_value());
  CHECK(*bytes == std::vector<std::uint8_t>{0, 255, 128, 7});
  CHECK_FALSE(exact_bytes(std::vector<float>{0.5f}).has_value());  // 127.5 / 255
  CHECK_FALSE(exact_bytes(std::vector<float>{std::nextafter(7.0f / 255.0f, 1.0f)}).has_value());
  CHECK_FALSE(exact_bytes(std::vector<float>{-0.0001f}).has_value());
  CHECK_FALSE(exact_bytes(std::vector<float>{1.5f}).has_value());
}

TEST_CASE("one_hot_classes finds one-hot rows and refuses soft or empty ones", "[fit_step]") {
  const auto cls = one_hot_classes(std::vector<float>{0, 1, 0, 1, 0, 0}, 3);
  REQUIRE(cls.has_value());
  CHECK(*cls == std::vector<std::uint8_t>{1, 0});
  CHECK_FALSE(one_hot_classes(std::vector<float>{0.5f, 0.5f, 0}, 3).has_value());
  CHECK_FALSE(one_hot_classes(std::vector<float>{0, 0, 0}, 3).has_value());
  CHECK_FALSE(one_hot_classes(std::vector<float>{1, 1, 0}, 3).has_value());
}

TEST_CASE("gather_batch gives the same floats from bytes and classes as from the float arrays", "[fit_step]") {
  const std::int64_t n = 9, classes = 4, batch = 4;
  auto [x, y] = byte_images(n, classes);
  const auto bytes = exact_bytes(x.host());
  const auto cls = one_hot_classes(y.host(), classes);
  REQUIRE(bytes.has_value());
  REQUIRE(cls.has_value());
  const std::vector<std::int64_t> order = {8, 3, 0, 5, 1, 7, 2, 6, 4};
  for (std::int64_t b : {0, 1, 2}) {
    backend::StepCounters counters{12, b};
    const std::int64_t rows = std::min(batch, n - b * batch);
    backend::DatasetView floats{x.data(), nullptr, y.data(), nullptr, n, 12, classes};
    backend::DatasetView compact{nullptr, bytes->data(), nullptr, cls->data(), n, 12, classes};
    Tensor bx1({rows, 2, 2, 3}), by1({rows, classes}), bx2({rows, 2, 2, 3}), by2({rows, classes});
    cpu().gather_batch(floats, order.data(), &counters, batch, bx1, by1);
    cpu().gather_batch(compact, order.data(), &counters, batch, bx2, by2);
    CHECK(bx1.to_vector() == bx2.to_vector());
    CHECK(by1.to_vector() == by2.to_vector());
    // Row r is dataset row order[b * batch + r].
    const std::int64_t src = order[std::size_t(b * batch + rows - 1)];
    CHECK(bx1.rows(rows - 1, rows).to_vector() == x.rows(src, src + 1).to_vector());
    CHECK(by2.rows(rows - 1, rows).to_vector() == y.rows(src, src + 1).to_vector());
  }
}

TEST_CASE("advance_step moves the iteration and the batch on by one", "[fit_step]") {
  backend::StepCounters counters{41, 3};
  cpu().advance_step(&counters);
  CHECK(counters.iteration == 42);
  CHECK(counters.batch == 4);
}

TEST_CASE("dropout with step counters draws the mask of counters.iteration plus the call's step", "[fit_step]") {
  const Tensor x = testing::random_tensor({3, 5, 7}, 3, -1, 1);
  Tensor plain(x.shape()), counted(x.shape());
  cpu().dropout_forward(x, plain, {77, 1005, 0.4f, x.shape(), x.shape()});
  backend::StepCounters counters{1000, 0};
  backend::DropoutCall call{77, 5, 0.4f, x.shape(), x.shape()};
  call.counters = &counters;
  cpu().dropout_forward(x, counted, call);
  CHECK(plain.to_vector() == counted.to_vector());
  // The step wraps around like the uint64 it is: iteration 3 with a step of 2^64 - 2 is step 1.
  counters.iteration = 3;
  call.step = ~std::uint64_t(0) - 1;
  cpu().dropout_forward(x, counted, call);
  cpu().dropout_forward(x, plain, {77, 1, 0.4f, x.shape(), x.shape()});
  CHECK(plain.to_vector() == counted.to_vector());
}

TEST_CASE("Adam with an alpha table reads the alpha of counters.batch", "[fit_step]") {
  std::vector<float> w1 = {0.5f, -0.25f}, w2 = w1, g = {0.1f, -0.3f}, m1(2), v1(2), m2(2), v2(2);
  const kernels::AdamStep step7 = kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, 7);
  cpu().adam_update(w1.data(), g.data(), m1.data(), v1.data(), 2, step7);
  const std::vector<float> alpha = {0.0f, 123.0f, step7.alpha};
  backend::StepCounters counters{6, 2};
  cpu().adam_update(w2.data(), g.data(), m2.data(), v2.data(), 2,
                    backend::AdamCall(kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, 1), alpha.data(), &counters));
  CHECK(w1 == w2);
  CHECK(m1 == m2);
  CHECK(v1 == v2);
}

TEST_CASE("fit through the plan trains exactly as train_on_batch on the same batches", "[fit_step][model]") {
  // Byte images and one-hot labels: on a GPU the plan would hold them compacted; the CPU reads them as they
  // are. Batches of 4, 4 and 1 without shuffling, so train_on_batch can be given the same rows.
  auto [x, y] = byte_images(9, 3);
  auto model = [] {
    Sequential m({2, 2, 3});
    m.add(Conv2D(4, {2, 2}, {.activation = "relu"}));
    m.add(Dropout(0.5));
    m.add(Flatten());
    m.add(Dense(3, {.activation = "softmax"}));
    m.compile({.device = Device::CPU, .seed = 3});
    return m;
  };
  Sequential a = model(), b = model();
  const History h = a.fit(x, y, {.batch_size = 4, .epochs = 2, .verbose = 0, .shuffle = false});
  std::vector<double> losses;
  for (int epoch = 0; epoch < 2; ++epoch) {
    double sum = 0;
    for (auto [begin, end] : {std::pair{0, 4}, std::pair{4, 8}, std::pair{8, 9}})
      sum += b.train_on_batch(x.rows(begin, end), y.rows(begin, end)).at("loss") * (end - begin);
    losses.push_back(sum / 9);
  }
  CHECK(h.history.at("loss")[0] == Approx(losses[0]).epsilon(1e-6));
  CHECK(h.history.at("loss")[1] == Approx(losses[1]).epsilon(1e-6));
  CHECK(a.iterations() == 6);
  CHECK(dynamic_cast<Dropout&>(a.layer(1)).step() == 6);
  for (std::size_t i : {0u, 3u}) CHECK(a.layer(i).params()[0].value.to_vector() == b.layer(i).params()[0].value.to_vector());
  CHECK(a.step_mode() == "eager");  // the CPU runs ops as they come; nothing to record
}
