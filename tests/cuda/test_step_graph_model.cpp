// fit with its training step recorded as a CUDA graph (CompileOptions::cuda_graphs) against the same fit
// run op by op: the same per-epoch metrics and the same weights, bit for bit.
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_support.hpp"
#include "dropnet/model.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

// Every layer type of the seed model, dropout and max-norm included. `scheduled`: the two dropout layers'
// rates change during the 12 steps of compare_fits (a linear ramp; early dropout), so a recorded step must
// read each step's rate from the step state.
Sequential graph_convnet(bool cuda_graphs, bool scheduled = false) {
  const DropoutSchedule ramp = scheduled ? DropoutSchedule::linear(0.0, 7) : DropoutSchedule{};
  const DropoutSchedule early = scheduled ? DropoutSchedule::early(6) : DropoutSchedule{};
  Sequential model({12, 12, 3});
  const MaxNorm per_filter{.max_value = 2.0, .axis = {0, 1, 2}};
  model.add(std::make_unique<Conv2D>(8, std::array<std::int64_t, 2>{3, 3},
                                     Conv2DOptions{.padding = "same", .activation = "relu",
                                                   .kernel_initializer = "he_uniform", .kernel_constraint = per_filter}));
  model.add(std::make_unique<MaxPooling2D>());
  model.add(std::make_unique<Dropout>(0.25, DropoutOptions{.schedule = ramp}));
  if (scheduled) {  // the rest of the family inside a recorded step, on schedules too
    model.add(std::make_unique<DropBlock2D>(0.2, 2, RandomLayerOptions{.schedule = ramp}));
    model.add(std::make_unique<GaussianDropout>(0.2, RandomLayerOptions{.schedule = early}));
  }
  model.add(std::make_unique<Conv2D>(6, std::array<std::int64_t, 2>{3, 3},
                                     Conv2DOptions{.activation = "relu", .kernel_initializer = "he_uniform",
                                                   .kernel_constraint = per_filter}));
  model.add(std::make_unique<MaxPooling2D>());
  // A per-channel mask (noise_shape): the broadcast dropout kernel.
  model.add(std::make_unique<Dropout>(0.5, DropoutOptions{.noise_shape = {std::nullopt, 1, 1, std::nullopt},
                                                          .schedule = early}));
  model.add(std::make_unique<Flatten>());
  if (scheduled) model.add(std::make_unique<GaussianNoise>(0.1, RandomLayerOptions{.schedule = ramp}));
  model.add(std::make_unique<Dense>(16, DenseOptions{.activation = "relu", .kernel_initializer = "he_uniform",
                                                     .kernel_constraint = MaxNorm{.max_value = 2.0}}));
  model.add(std::make_unique<Dropout>(0.0));  // rate 0: a plain device-to-device copy inside the step
  model.add(std::make_unique<Dense>(5, DenseOptions{.activation = "softmax"}));
  // deterministic: cuDNN's timed choice may pick algorithms that sum with atomics, whose last bits change
  // from run to run whatever the recording does; the comparison below is bit for bit.
  model.compile({.loss = "categorical_crossentropy",
                 .device = Device::CUDA, .seed = 1, .deterministic = true, .cuda_graphs = cuda_graphs});
  return model;
}

// `n` records: images either of exact byte values b / 255 (fit keeps them as bytes on the GPU) or of any
// floats, and one-hot targets (kept as class indices).
struct Records {
  Tensor x, y;
};
Records random_records(std::int64_t n, bool byte_images) {
  const std::vector<float> u = testing::uniform<float>(static_cast<std::size_t>(n * 12 * 12 * 3), 0.0, 1.0, 91);
  std::vector<float> x(u.size());
  for (std::size_t i = 0; i < u.size(); ++i)
    x[i] = byte_images ? static_cast<float>(static_cast<int>(u[i] * 255.0f)) / 255.0f : u[i] * 2.0f - 1.0f;
  std::vector<float> y(static_cast<std::size_t>(n * 5), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto b = kernels::philox_block(92, 0, static_cast<std::uint64_t>(i));
    y[static_cast<std::size_t>(i * 5 + b.w[0] % 5)] = 1.0f;
  }
  return {Tensor::from_vector({n, 12, 12, 3}, x), Tensor::from_vector({n, 5}, y)};
}

void compare_fits(bool byte_images, bool scheduled = false) {
  // 640 records, 20% for validation: 512 to train on, 5 full batches of 100 and a last one of 12 (op by op),
  // and validation batches of 100 and 28 between epochs (other shapes while the recording lives).
  const Records data = random_records(640, byte_images);
  FitOptions options;
  options.batch_size = 100;
  options.epochs = 2;
  options.verbose = 0;
  options.validation_split = 0.2;

  Sequential with_graphs = graph_convnet(true, scheduled);
  Sequential eager = graph_convnet(false, scheduled);
  const History a = with_graphs.fit(data.x, data.y, options);
  const History b = eager.fit(data.x, data.y, options);

  INFO("step modes: with graphs '" << with_graphs.step_mode() << "', without '" << eager.step_mode() << "'");
  CHECK(with_graphs.step_mode() == "cuda graph");
  CHECK(eager.step_mode() == "eager");
  CHECK(with_graphs.iterations() == eager.iterations());
  for (const char* key : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    REQUIRE(a.history.count(key) == 1);
    REQUIRE(b.history.count(key) == 1);
    REQUIRE(a.history.at(key).size() == 2);
    for (std::size_t e = 0; e < 2; ++e) {
      INFO(key << " epoch " << e);
      CHECK(a.history.at(key)[e] == b.history.at(key)[e]);
    }
  }
  if (scheduled) {
    // The schedules change training (an op that ignored the slot's rate would give the constant run).
    Sequential constant = graph_convnet(false, false);
    const History c = constant.fit(data.x, data.y, options);
    CHECK(c.history.at("loss") != b.history.at("loss"));
  }
  for (std::size_t l = 0; l < eager.layer_count(); ++l) {
    const auto& pa = with_graphs.layer(l).params();
    const auto& pb = eager.layer(l).params();
    REQUIRE(pa.size() == pb.size());
    for (std::size_t i = 0; i < pa.size(); ++i)
      expect_identical(host_values(pa[i].value), host_values(pb[i].value),
                       eager.layer(l).name() + "." + pb[i].name + " after 2 epochs");
  }
}

}  // namespace

TEST_CASE("fit with a recorded step gives the bits of fit op by op", "[cuda][model][graph]") {
  SECTION("byte images") { compare_fits(true); }
  SECTION("float images") { compare_fits(false); }
  SECTION("dropout rates on a schedule") { compare_fits(true, true); }
}
