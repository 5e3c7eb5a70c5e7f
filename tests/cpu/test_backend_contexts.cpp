// Backends are contexts that models own (backend/backend.hpp): each compile() makes the model its own, with
// that model's settings; no model's compile or training changes another's.
#include "support/catch.hpp"

#include <cstring>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/dropnet.hpp"
#include "model/impl.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {

Sequential small_model() {
  Sequential m({4, 4, 2});
  m.add(Conv2D(3, {2, 2}, {.activation = "relu"}));
  m.add(Dropout(0.5));
  m.add(Flatten());
  m.add(Dense(3, {.activation = "softmax"}));
  return m;
}

std::pair<Tensor, Tensor> data(std::int64_t n) {
  Tensor x = testing::random_tensor({n, 4, 4, 2}, 5, 0.0, 1.0);
  std::vector<float> y(std::size_t(n * 3), 0.0f);
  for (std::int64_t r = 0; r < n; ++r) y[std::size_t(r * 3 + (r * 5) % 3)] = 1.0f;
  return {x, Tensor::from_vector({n, 3}, y)};
}

std::vector<float> all_weights(Sequential& m) {
  std::vector<float> w;
  for (std::size_t i = 0; i < m.layer_count(); ++i)
    for (const Param& p : m.layer(i).params())
      for (float v : p.value.to_vector()) w.push_back(v);
  return w;
}

}  // namespace

TEST_CASE("make_backend makes a new context each time, with the settings it is given", "[backend][contexts]") {
  const auto a = backend::make_backend(Device::CPU, {.deterministic = true, .allow_tf32 = false, .workspace_limit = 1});
  const auto b = backend::make_backend(Device::CPU, {.deterministic = false, .allow_tf32 = true, .workspace_limit = 2});
  REQUIRE(a.get() != b.get());
  CHECK(a->device() == Device::CPU);
  CHECK(a->settings().deterministic);
  CHECK_FALSE(a->settings().allow_tf32);
  CHECK(a->settings().workspace_limit == 1);
  CHECK_FALSE(b->settings().deterministic);
  CHECK(b->settings().allow_tf32);
  CHECK(b->settings().workspace_limit == 2);
  // The defaults: not deterministic-only, no TF32, 64 MiB of cuDNN workspace.
  const backend::BackendSettings defaults;
  CHECK_FALSE(defaults.deterministic);
  CHECK_FALSE(defaults.allow_tf32);
  CHECK(defaults.workspace_limit == std::size_t{64} << 20);
  if (!cuda_compiled()) CHECK_THROWS_AS(backend::make_backend(Device::CUDA), DeviceUnavailable);
}

TEST_CASE("two models own distinct backends, each with its own settings", "[backend][contexts][model]") {
  Sequential first = small_model(), second = small_model();
  first.compile({.loss = "categorical_crossentropy",
                 .device = Device::CPU, .seed = 1, .deterministic = true, .allow_tf32 = false,
                 .workspace_limit = std::size_t{1} << 20});
  backend::Backend& first_backend = ModelInternals::backend(first);
  second.compile({.loss = "categorical_crossentropy",
                  .device = Device::CPU, .seed = 1, .deterministic = false, .allow_tf32 = true,
                  .workspace_limit = std::size_t{8} << 20});
  backend::Backend& second_backend = ModelInternals::backend(second);

  CHECK(&first_backend != &second_backend);
  // Compiling the second model left the first one's context and settings as they were.
  CHECK(&ModelInternals::backend(first) == &first_backend);
  CHECK(first_backend.settings().deterministic);
  CHECK_FALSE(first_backend.settings().allow_tf32);
  CHECK(first_backend.settings().workspace_limit == std::size_t{1} << 20);
  CHECK_FALSE(second_backend.settings().deterministic);
  CHECK(second_backend.settings().allow_tf32);
  CHECK(second_backend.settings().workspace_limit == std::size_t{8} << 20);

  // Compiling again makes a new context with the new settings; the other model's stays.
  first.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 1, .deterministic = false});
  CHECK_FALSE(ModelInternals::backend(first).settings().deterministic);
  CHECK(&ModelInternals::backend(second) == &second_backend);
  CHECK(second_backend.settings().allow_tf32);
  CHECK_THROWS_AS(ModelInternals::backend(small_model()), InvalidArgument);  // not compiled: no backend
}

TEST_CASE("a model trains the same bits whether or not another model trains in between", "[backend][contexts][model]") {
  const auto [x, y] = data(24);
  const FitOptions fit{.batch_size = 8, .epochs = 1, .verbose = 0};

  Sequential alone = small_model();
  alone.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 7});
  alone.fit(x, y, fit);
  alone.fit(x, y, fit);

  Sequential interleaved = small_model(), other = small_model();
  interleaved.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 7});
  interleaved.fit(x, y, fit);
  other.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 99, .deterministic = true});
  const std::uint64_t waits = ModelInternals::backend(interleaved).host_waits();
  other.fit(x, y, fit);
  // The other model's fit waited on its own backend only.
  CHECK(ModelInternals::backend(interleaved).host_waits() == waits);
  interleaved.fit(x, y, fit);

  CHECK(interleaved.iterations() == alone.iterations());
  CHECK(other.iterations() == 3);
  const std::vector<float> a = all_weights(alone), b = all_weights(interleaved);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST_CASE("tensors allocate, fill and copy without any backend", "[backend][contexts][tensor]") {
  // The memory layer (backend/memory.hpp) serves Tensor; no backend is made or looked up.
  Tensor t({3, 5});
  CHECK(t.to_vector() == std::vector<float>(15, 0.0f));
  t.fill(2.5f);
  Tensor u = t.clone();
  CHECK(u.to_vector() == std::vector<float>(15, 2.5f));
  CHECK(u.data() != t.data());
  Tensor v({15});
  v.copy_from(u);
  CHECK(v.to_vector() == std::vector<float>(15, 2.5f));
}
