// fit with Keras' other losses on the GPU: the loss op inside a recorded step (CUDA graph) gives the bits of
// fit op by op, and the run follows the CPU backend's.
#include <string>
#include <vector>

#include "cuda_test_support.hpp"
#include "dropnet/model.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

constexpr std::int64_t kN = 250, kFeatures = 6;

struct Setup {
  const char* what;
  const char* activation;
  std::int64_t units;
  Loss loss;
  const char* metric;
};

Sequential dense_model(const Setup& s, Device device, bool cuda_graphs) {
  Sequential m({kFeatures});
  m.add(Dense(12, {.activation = "relu"}));
  m.add(Dropout(0.25));
  m.add(Dense(s.units, {.activation = s.activation}));
  m.compile({.optimizer = Adam{.learning_rate = 0.01}, .loss = s.loss, .metrics = {s.metric}, .device = device,
             .seed = 4, .deterministic = true, .cuda_graphs = cuda_graphs});
  return m;
}

// Targets for the loss: class indices (sparse), 0/1 per unit (binary), one-hot rows otherwise.
Tensor targets(const Setup& s) {
  const bool sparse = s.loss.name == "sparse_categorical_crossentropy";
  std::vector<float> y(static_cast<std::size_t>(sparse ? kN : kN * s.units), 0.0f);
  for (std::int64_t i = 0; i < kN; ++i) {
    const auto b = kernels::philox_block(93, 0, static_cast<std::uint64_t>(i));
    if (sparse) {
      y[std::size_t(i)] = float(b.w[0] % std::uint32_t(s.units));
    } else if (s.loss.name == "binary_crossentropy") {
      for (std::int64_t k = 0; k < s.units; ++k) y[std::size_t(i * s.units + k)] = float((b.w[1] >> k) & 1u);
    } else {
      y[std::size_t(i * s.units + b.w[0] % std::uint32_t(s.units))] = 1.0f;
    }
  }
  return sparse ? Tensor::from_vector({kN}, y) : Tensor::from_vector({kN, s.units}, y);
}

}  // namespace

TEST_CASE("fit with each loss: a recorded step gives the bits of op by op, and follows the CPU",
          "[cuda][model][graph][loss]") {
  const std::vector<Setup> setups{
      {"sparse cce from logits", "linear", 4, {"sparse_categorical_crossentropy", true}, "accuracy"},
      {"sparse cce on softmax", "softmax", 4, "sparse_categorical_crossentropy", "accuracy"},
      {"bce on probabilities", "softmax", 3, "binary_crossentropy", "binary_accuracy"},
      {"bce from logits", "linear", 1, {"binary_crossentropy", true}, "accuracy"},
      {"mse with mae", "linear", 3, "mse", "mae"},
      {"cce on probabilities with mae", "softmax", 3, "categorical_crossentropy", "mae"},
  };
  const Tensor x = testing::random_tensor({kN, kFeatures}, 17, -1, 1);
  const FitOptions o{.batch_size = 50, .epochs = 2, .verbose = 0, .validation_split = 0.2};
  for (const Setup& s : setups) {
    DYNAMIC_SECTION(s.what) {
      const Tensor y = targets(s);
      Sequential graphs = dense_model(s, Device::CUDA, true), eager = dense_model(s, Device::CUDA, false);
      Sequential host = dense_model(s, Device::CPU, false);
      const History a = graphs.fit(x, y, o), b = eager.fit(x, y, o), c = host.fit(x, y, o);
      CHECK(graphs.step_mode() == "cuda graph");
      CHECK(a.history == b.history);
      REQUIRE(a.history.count(s.metric) == 1);
      REQUIRE(a.history.count(std::string("val_") + s.metric) == 1);
      for (const auto& [key, values] : c.history)
        for (std::size_t e = 0; e < values.size(); ++e) {
          INFO(key << " epoch " << e);
          CHECK(a.history.at(key)[e] == Approx(values[e]).epsilon(1e-4).margin(1e-6));
        }
      for (std::size_t l = 0; l < eager.layer_count(); ++l)
        for (std::size_t i = 0; i < eager.layer(l).params().size(); ++i)
          expect_identical(host_values(graphs.layer(l).params()[i].value),
                           host_values(eager.layer(l).params()[i].value), s.what);
    }
  }
}

TEST_CASE("a model compiled without a loss predicts on the GPU, Monte Carlo included", "[cuda][model][loss]") {
  const Tensor x = testing::random_tensor({9, kFeatures}, 5, -1, 1);
  Sequential gpu_model({kFeatures}), cpu_model({kFeatures});
  for (Sequential* m : {&gpu_model, &cpu_model}) {
    m->add(Dropout(0.5, {.seed = 3}));
    m->add(Dense(2));
  }
  gpu_model.compile({.device = Device::CUDA, .seed = 8});
  cpu_model.compile({.device = Device::CPU, .seed = 8});
  expect_close(gpu_model.predict(x).to_vector(), cpu_model.predict(x).to_vector(), "predict");
  // Monte Carlo: the dropout masks are the CPU's bits (kernels/dropout_math.hpp).
  expect_close(gpu_model.predict(x, {.dropout = true}).to_vector(), cpu_model.predict(x, {.dropout = true}).to_vector(),
               "Monte Carlo predict");
  CHECK_THROWS_AS(gpu_model.fit(x, Tensor({9, 2}), {.verbose = 0}), InvalidArgument);
}
