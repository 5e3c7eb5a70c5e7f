// Models training side by side on their own threads (`dropnet-bench sweep --concurrent`, docs/scaling.md):
// each with its own backend context and its own share of the CPU threads, each giving the same bits as when
// it trains alone, and one model's failure leaving the others alone.
#include "support/catch.hpp"

#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "backend/cpu/parallel.hpp"
#include "dropnet/dropnet.hpp"
#include "model/impl.hpp"
#include "support/testing.hpp"

using namespace dropnet;

namespace {

Sequential small_convnet() {
  Sequential m({12, 12, 3});
  m.add(Conv2D(8, {3, 3}, {.activation = "relu", .kernel_constraint = MaxNorm(2.0)}));
  m.add(MaxPooling2D());
  m.add(Dropout(0.5));
  m.add(Flatten());
  m.add(Dense(16, {.activation = "relu"}));
  m.add(Dropout(0.25));
  m.add(Dense(4, {.activation = "softmax"}));
  return m;
}

struct Data {
  Tensor x, y;
};

Data data(std::int64_t n) {
  Tensor x = testing::random_tensor({n, 12, 12, 3}, 11, 0.0, 1.0);
  std::vector<float> y(std::size_t(n * 4), 0.0f);
  for (std::int64_t r = 0; r < n; ++r) y[std::size_t(r * 4 + (r * 7) % 4)] = 1.0f;
  return {x, Tensor::from_vector({n, 4}, y)};
}

struct Trained {
  std::vector<float> weights;
  std::vector<double> loss, val_loss;
};

// Trains the convnet with `seed` on `d` and `threads` CPU threads (0: the default).
Trained train(std::uint64_t seed, unsigned threads, const Data& d) {
  Sequential m = small_convnet();
  m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = seed, .cpu_threads = threads});
  REQUIRE(ModelInternals::backend(m).settings().cpu_threads == threads);
  const History h = m.fit(d.x, d.y, {.batch_size = 20, .epochs = 3, .verbose = 0, .validation_split = 0.25});
  Trained t{{}, h.history.at("loss"), h.history.at("val_loss")};
  for (std::size_t i = 0; i < m.layer_count(); ++i)
    for (const Param& p : m.layer(i).params())
      for (float v : p.value.to_vector()) t.weights.push_back(v);
  return t;
}

void require_same_bits(const Trained& a, const Trained& b) {
  REQUIRE(a.weights.size() == b.weights.size());
  REQUIRE(std::memcmp(a.weights.data(), b.weights.data(), a.weights.size() * sizeof(float)) == 0);
  REQUIRE(a.loss == b.loss);
  REQUIRE(a.val_loss == b.val_loss);
}

// The distinct threads parallel_for ran a range of 64 items on.
std::size_t threads_used() {
  std::mutex m;
  std::set<std::thread::id> ids;
  backend::cpu::parallel_for(64, 1, [&](std::int64_t, std::int64_t) {
    const std::lock_guard lock(m);
    ids.insert(std::this_thread::get_id());
  });
  return ids.size();
}

}  // namespace

TEST_CASE("A thread share sets the calling thread's loop threads for its scope only", "[concurrency]") {
  using backend::cpu::ThreadShare;
  const unsigned all = backend::cpu::default_cpu_threads();
  CHECK(backend::cpu::cpu_threads() == all);
  {
    const ThreadShare one(1);
    CHECK(backend::cpu::cpu_threads() == 1);
    CHECK(threads_used() == 1);
    {
      const ThreadShare three(3);
      CHECK(backend::cpu::cpu_threads() == 3);
      CHECK(threads_used() == 3);  // the share may exceed the cores: it is what the loops split into
      const ThreadShare keep(0);   // 0 keeps the share in force
      CHECK(backend::cpu::cpu_threads() == 3);
    }
    CHECK(backend::cpu::cpu_threads() == 1);
    // Another thread is not affected by this one's share.
    unsigned other = 0;
    std::thread([&] { other = backend::cpu::cpu_threads(); }).join();
    CHECK(other == all);
  }
  CHECK(backend::cpu::cpu_threads() == all);
  const ThreadShare many(1000);
  CHECK(backend::cpu::cpu_threads() == 16);  // at most 16, as the default
}

TEST_CASE("Models trained at once on two threads give the bits they give trained one after another",
          "[concurrency]") {
  const Data d = data(480);
  const Trained a = train(1, 0, d), b = train(2, 0, d);
  Trained ca, cb;
  {
    std::jthread ta([&] { ca = train(1, 1, d); });
    std::jthread tb([&] { cb = train(2, 1, d); });
  }
  require_same_bits(a, ca);
  require_same_bits(b, cb);
  // The two seeds trained different models (the comparison above is not of two copies of one).
  CHECK(a.weights != b.weights);
  // And a share larger than the cores changes nothing either.
  require_same_bits(a, train(1, 5, d));
}

TEST_CASE("A model failing on its thread leaves the model training beside it intact", "[concurrency]") {
  const Data d = data(480);
  const Trained reference = train(3, 0, d);
  Trained beside;
  std::exception_ptr failure;
  {
    std::jthread ok([&] { beside = train(3, 1, d); });
    std::jthread bad([&] {
      try {
        Sequential m = small_convnet();
        m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 4, .cpu_threads = 1});
        const Tensor wrong_labels = testing::random_tensor({480, 5}, 3, 0.0, 1.0);  // 5 classes, the model has 4
        (void)m.fit(d.x, wrong_labels, {.batch_size = 20, .epochs = 1, .verbose = 0});
      } catch (...) {
        failure = std::current_exception();
      }
    });
  }
  REQUIRE(failure != nullptr);
  CHECK_THROWS_AS(std::rethrow_exception(failure), InvalidArgument);
  require_same_bits(reference, beside);
}
