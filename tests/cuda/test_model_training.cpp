// End to end: the same small convnet (every layer type, dropout and max-norm included) trained for a few
// steps on the CPU and on the GPU from the same seed. Same initial weights, same batches, bit-identical
// dropout masks: the losses must agree to float32 rounding, step after step.
#include <memory>
#include <string>

#include "cuda_test_support.hpp"
#include "dropnet/model.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

Sequential small_convnet(Device device, std::uint64_t seed) {
  Sequential model({12, 12, 3});
  const MaxNorm per_filter{.max_value = 2.0, .axis = {0, 1, 2}};
  model.add(std::make_unique<Conv2D>(8, std::array<std::int64_t, 2>{3, 3},
                                     Conv2DOptions{.padding = "same", .activation = "relu",
                                                   .kernel_initializer = "he_uniform", .kernel_constraint = per_filter}));
  model.add(std::make_unique<MaxPooling2D>());
  model.add(std::make_unique<Dropout>(0.25));
  model.add(std::make_unique<Conv2D>(6, std::array<std::int64_t, 2>{3, 3},
                                     Conv2DOptions{.activation = "relu", .kernel_initializer = "he_uniform",
                                                   .kernel_constraint = std::nullopt}));
  model.add(std::make_unique<MaxPooling2D>());
  model.add(std::make_unique<Dropout>(0.5));
  model.add(std::make_unique<Flatten>());
  model.add(std::make_unique<Dense>(16, DenseOptions{.activation = "relu", .kernel_initializer = "he_uniform",
                                                     .kernel_constraint = MaxNorm{.max_value = 2.0}}));
  model.add(std::make_unique<Dense>(5, DenseOptions{.activation = "softmax", .kernel_constraint = std::nullopt}));
  model.compile({.loss = "categorical_crossentropy", .device = device, .seed = seed});
  return model;
}

Tensor one_hot(std::int64_t n, std::int64_t classes, std::uint64_t seed) {
  std::vector<float> y(static_cast<std::size_t>(n * classes), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto b = kernels::philox_block(seed, 0, static_cast<std::uint64_t>(i));
    y[static_cast<std::size_t>(i * classes + b.w[0] % classes)] = 1.0f;
  }
  return Tensor::from_vector({n, classes}, y);
}

}  // namespace

TEST_CASE("a small convnet trains to the same losses on the CPU and the GPU", "[cuda][model]") {
  Sequential on_cpu = small_convnet(Device::CPU, 2024);
  Sequential on_gpu = small_convnet(Device::CUDA, 2024);
  REQUIRE(on_gpu.device() == Device::CUDA);
  const std::int64_t batch = 24;
  for (int step = 0; step < 6; ++step) {
    const Tensor x = host_random({batch, 12, 12, 3}, 300 + static_cast<std::uint64_t>(step), 0.0, 1.0);
    const Tensor y = one_hot(batch, 5, 400 + static_cast<std::uint64_t>(step));
    const Logs a = on_cpu.train_on_batch(x, y);
    const Logs b = on_gpu.train_on_batch(x, y);
    INFO("step " << step << ": cpu loss " << a.at("loss") << ", cuda loss " << b.at("loss"));
    // Differences start at float rounding (1e-7) and grow a little through Adam's steps.
    CHECK(b.at("loss") == Approx(a.at("loss")).epsilon(1e-4));
    CHECK(b.at("accuracy") == Approx(a.at("accuracy")).margin(1.0 / batch + 1e-9));
  }
  // The weights after training agree too (max-norm applied after every step on both).
  for (std::size_t l = 0; l < on_cpu.layer_count(); ++l) {
    const auto& pc = on_cpu.layer(l).params();
    const auto& pg = on_gpu.layer(l).params();
    REQUIRE(pc.size() == pg.size());
    for (std::size_t i = 0; i < pc.size(); ++i)
      expect_close(host_values(pg[i].value), pc[i].value.to_vector(),
                   on_cpu.layer(l).name() + "." + pc[i].name + " after 6 steps", Tolerance{1e-3, 1e-4});
  }
}

TEST_CASE("fit on the GPU reports the CPU's per-epoch losses", "[cuda][model]") {
  const std::int64_t n = 96;
  const Tensor x = host_random({n, 12, 12, 3}, 77, 0.0, 1.0);
  const Tensor y = one_hot(n, 5, 78);
  Sequential on_cpu = small_convnet(Device::CPU, 5);
  Sequential on_gpu = small_convnet(Device::CUDA, 5);
  FitOptions options;
  options.batch_size = 32;
  options.epochs = 2;
  options.verbose = 0;
  options.validation_split = 0.25;
  const History a = on_cpu.fit(x, y, options);
  const History b = on_gpu.fit(x, y, options);
  for (const char* key : {"loss", "val_loss"}) {
    REQUIRE(a.history.count(key) == 1);
    REQUIRE(b.history.count(key) == 1);
    for (std::size_t e = 0; e < a.history.at(key).size(); ++e) {
      INFO(key << " epoch " << e);
      CHECK(b.history.at(key)[e] == Approx(a.history.at(key)[e]).epsilon(1e-4));
    }
  }
}
