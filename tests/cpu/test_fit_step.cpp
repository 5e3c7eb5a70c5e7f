// The replayable training step of fit (kernels/step_state.hpp, backend/backend.hpp; model/fit_plan.hpp): the
// values that change between steps come from the model's step state in the backend's memory, and give
// exactly what the plain calls give; fit reads that state back only at progress ticks and epoch ends.
#include "support/catch.hpp"

#include <cstring>
#include <numeric>

#include "backend/backend.hpp"
#include "backend/memory.hpp"
#include "dropnet/checkpoint.hpp"
#include "dropnet/dropnet.hpp"
#include "kernels/adam_math.hpp"
#include "model/fit_plan.hpp"
#include "model/impl.hpp"
#include "support/cpu_backend.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {
backend::Backend& cpu() { return testing::cpu_backend(); }

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
    backend::StepHeader counters{12, b, 0, 0, 0, 0};
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

TEST_CASE("advance_step moves the iteration, the batch, the metric sums and each slot by its advance", "[fit_step]") {
  const std::vector<backend::SlotLayout> layout = {
      {1, kernels::constant_rate(0.5f)}, {0, kernels::constant_rate(0.0f)}, {1, kernels::constant_rate(0.25f)}};
  backend::StepState state(cpu(), layout);
  backend::StepSnapshot s = state.read();
  s.header.iteration = 41;
  s.header.batch = 3;
  s.header.loss_sum = 0.5;
  s.slots[0].step = 41;
  s.slots[1].step = 7;
  s.slots[2].step = ~std::uint64_t(0);
  state.write(s);
  const std::vector<float> stats = {1.25f, 3.0f};
  cpu().advance_step(state.header(), state.slots(), {.optimizer_step = true, .batch_stats = stats.data(), .rows = 4});
  s = state.read();
  CHECK(s.header.iteration == 42);
  CHECK(s.header.batch == 4);
  CHECK(s.header.loss_sum == 0.5 + double(1.25f));
  CHECK(s.header.correct == 3.0);
  CHECK(s.header.seen == 4);
  CHECK(s.slots[0].step == 42);
  CHECK(s.slots[1].step == 7);  // a Dropout of rate 0 draws nothing
  CHECK(s.slots[2].step == 0);  // uint64 wraparound
  // Monte Carlo dropout in predict: the slots only.
  cpu().advance_step(state.header(), state.slots(), {.optimizer_step = false});
  s = state.read();
  CHECK(s.header.iteration == 42);
  CHECK(s.header.seen == 4);
  CHECK(s.slots[0].step == 43);
}

TEST_CASE("dropout with a step-state slot draws the mask of the slot's step", "[fit_step]") {
  const Tensor x = testing::random_tensor({3, 5, 7}, 3, -1, 1);
  Tensor plain(x.shape()), slotted(x.shape());
  cpu().dropout_forward(x, plain, {77, 1005, 0.4f, x.shape(), x.shape()});
  backend::StepSlot slot{1005, 1, 0.4f, kernels::constant_rate(0.4f)};
  backend::DropoutCall call{77, 5, 0.4f, x.shape(), x.shape()};  // the slot's step wins over `step`
  call.slot = &slot;
  cpu().dropout_forward(x, slotted, call);
  CHECK(plain.to_vector() == slotted.to_vector());
}

TEST_CASE("dropout with a slot reads the slot's rate: 0 is the identity, 1 gives zeros", "[fit_step]") {
  const Tensor x = testing::random_tensor({3, 5, 7}, 4, -1, 1);
  Tensor y(x.shape()), plain(x.shape());
  backend::StepSlot slot{9, 1, 0.0f, kernels::constant_rate(0.0f)};
  backend::DropoutCall call{77, 0, 0.5f, x.shape(), x.shape()};  // the slot's rate wins over `rate`
  call.slot = &slot;
  cpu().dropout_forward(x, y, call);
  CHECK(y.to_vector() == x.to_vector());
  slot.rate = 1.0f;
  cpu().dropout_forward(x, y, call);
  CHECK(y.to_vector() == std::vector<float>(std::size_t(x.size()), 0.0f));
  slot.rate = 0.3f;
  cpu().dropout_forward(x, y, call);
  cpu().dropout_forward(x, plain, {77, 9, 0.3f, x.shape(), x.shape()});
  CHECK(y.to_vector() == plain.to_vector());
}

TEST_CASE("advance_step sets each slot's rate to its schedule at the new iteration", "[fit_step]") {
  // Linear 0 -> 0.5 over steps 0..4; early dropout (0.5 until step 2); late dropout (0 until step 2).
  const std::vector<backend::SlotLayout> layout = {
      {1, {0.0f, 0.5f, 0, 4}}, {1, {0.5f, 0.0f, 2, 2}}, {1, {0.0f, 0.5f, 2, 2}}};
  backend::StepState state(cpu(), layout);
  for (std::uint64_t it = 0; it < 6; ++it) {
    const backend::StepSnapshot s = state.read();
    REQUIRE(s.header.iteration == it);
    const float ramp = it >= 4 ? 0.5f : 0.5f * float(it) / 4.0f;
    CHECK(s.slots[0].rate == ramp);
    CHECK(s.slots[1].rate == (it < 2 ? 0.5f : 0.0f));
    CHECK(s.slots[2].rate == (it < 2 ? 0.0f : 0.5f));
    cpu().advance_step(state.header(), state.slots(), {.optimizer_step = true});
  }
  // Writing a state (a checkpoint's) recomputes the rates from the iteration.
  backend::StepSnapshot s = state.read();
  s.header.iteration = 1;
  state.write(s);
  CHECK(state.read().slots[0].rate == 0.125f);
}

TEST_CASE("Adam with an alpha table reads the alpha of the step state's batch", "[fit_step]") {
  std::vector<float> w1 = {0.5f, -0.25f}, w2 = w1, g = {0.1f, -0.3f}, m1(2), v1(2), m2(2), v2(2);
  const kernels::AdamStep step7 = kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, 7);
  cpu().adam_update(w1.data(), g.data(), m1.data(), v1.data(), 2, step7);
  const std::vector<float> alpha = {0.0f, 123.0f, step7.alpha};
  backend::StepHeader counters{6, 2, 0, 0, 0, 0};
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
    m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 3});
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
  // The Dropout layer's step (its training calls) is in the checkpointed state: 6 as well.
  CHECK(training_state(a).iterations == 6);
  for (std::size_t i : {0u, 3u}) CHECK(a.layer(i).params()[0].value.to_vector() == b.layer(i).params()[0].value.to_vector());
  CHECK(a.step_mode() == "eager");  // the CPU runs ops as they come; nothing to record
}

TEST_CASE("fit waits for the backend only at progress ticks and epoch ends, not per batch", "[fit_step][model]") {
  // The running metric sums live in the step state on the device: over an epoch fit reads them at the
  // epoch's start (the iteration, for Adam's table) and end, and at progress-bar redraws; not per batch.
  auto [x, y] = byte_images(48, 3);
  auto waits_for = [&](std::int64_t batch_size, int epochs, std::vector<Callback*> callbacks) {
    Sequential m({2, 2, 3});
    m.add(Conv2D(4, {2, 2}, {.activation = "relu"}));
    m.add(Dropout(0.5));
    m.add(Flatten());
    m.add(Dense(3, {.activation = "softmax"}));
    m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 3});
    // The model's own backend counts its waits (the op tests' cpu() is another context).
    const backend::Backend& be = ModelInternals::backend(m);
    const std::uint64_t before = be.host_waits();
    m.fit(x, y, {.batch_size = int(batch_size), .epochs = epochs, .verbose = 0, .callbacks = callbacks});
    return be.host_waits() - before;
  };
  const std::uint64_t few = waits_for(16, 1, {}), many = waits_for(2, 1, {});  // 3 and 24 batches
  CHECK(few == 2);
  CHECK(many == 2);
  CHECK(waits_for(2, 3, {}) == 6);  // per epoch, whatever its batches
  // A callback that asks for every batch's logs gets them, at a wait per batch.
  struct EveryBatch : Callback {
    int with_logs = 0;
    bool wants_batch_logs() const override { return true; }
    void on_batch_end(int, const Logs& logs) override { with_logs += logs.count("loss") ? 1 : 0; }
  } every;
  struct Quiet : Callback {
    int with_logs = 0, calls = 0;
    void on_batch_end(int, const Logs& logs) override {
      ++calls;
      with_logs += logs.count("loss") ? 1 : 0;
    }
  } quiet;
  CHECK(waits_for(2, 1, {&every}) == 1 + 24);
  CHECK(every.with_logs == 24);
  waits_for(2, 1, {&quiet});
  CHECK(quiet.calls == 24);
  CHECK(quiet.with_logs == 1);  // the epoch's last batch, read for its end
}

TEST_CASE("evaluate, predict and Monte Carlo predict allocate no buffer per batch, fit none per epoch",
          "[fit_step][model]") {
  // Buffers come from the memory layer, which counts them. Once the model's per-batch buffers are sized
  // (the first pass), an inference pass allocates none at all (predict: only its result), whatever the
  // number of batches; fit allocates its plan once per call, not per epoch or batch.
  const std::int64_t n = 48;
  const Tensor x = dropnet::testing::random_tensor({n, 6, 6, 2}, 41, 0.0, 1.0);
  std::vector<float> labels(std::size_t(n * 3), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) labels[std::size_t(i * 3 + i % 3)] = 1.0f;
  const Tensor y = Tensor::from_vector({n, 3}, labels);
  Sequential m({6, 6, 2});
  m.add(Conv2D(4, {3, 3}, {.activation = "relu"}));
  m.add(MaxPooling2D());
  m.add(Dropout(0.5));
  m.add(Flatten());
  m.add(Dense(3, {.activation = "softmax"}));
  m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 3});
  m.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0});  // sizes the per-batch buffers for 8 rows
  auto allocations_of = [](auto&& pass) {
    const std::uint64_t before = backend::memory::allocations();
    pass();
    return backend::memory::allocations() - before;
  };
  CHECK(allocations_of([&] { m.evaluate(x, y, 8, 0, nullptr); }) == 0);       // 6 batches
  CHECK(allocations_of([&] { m.predict(x, {.batch_size = 8}); }) == 1);      // the result
  CHECK(allocations_of([&] { m.predict(x, {.batch_size = 8, .dropout = true}); }) == 1);
  const std::uint64_t one_epoch = allocations_of([&] { m.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0}); });
  const std::uint64_t three_epochs = allocations_of([&] {
    m.fit(x, y, {.batch_size = 4, .epochs = 3, .verbose = 0, .validation_split = 0.25});
  });
  CHECK(three_epochs == one_epoch);
}
