// Layers called on GPU tensors, y = layer(x, training) (layers/layer_call.cpp): the output stays on the
// GPU and equals the CPU call's, bit for bit for the dropout family (the same masks: Philox keyed by
// (seed, call)), within float32 rounding for Dense and Conv2D; one layer called on both devices continues
// one sequence of draws.
#include <functional>
#include <memory>
#include <string>

#include "cuda_test_support.hpp"
#include "dropnet/layers.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

struct Case {
  std::string name;
  Shape x_shape;  // batch included
  std::function<std::unique_ptr<Layer>()> make;
};

std::vector<Case> dropout_family() {
  return {
      {"Dropout", {4, 6, 5}, [] { return std::make_unique<Dropout>(0.4, DropoutOptions{.seed = 3}); }},
      {"SpatialDropout2D", {4, 4, 4, 6}, [] { return std::make_unique<SpatialDropout2D>(0.5, RandomLayerOptions{.seed = 3}); }},
      {"GaussianDropout", {4, 6, 5}, [] { return std::make_unique<GaussianDropout>(0.3, RandomLayerOptions{.seed = 3}); }},
      {"GaussianNoise", {4, 6, 5}, [] { return std::make_unique<GaussianNoise>(0.2, RandomLayerOptions{.seed = 3}); }},
      {"AlphaDropout", {4, 6, 5}, [] { return std::make_unique<AlphaDropout>(0.3, DropoutOptions{.seed = 3}); }},
      {"DropBlock2D", {2, 8, 8, 3},
       [] { return std::make_unique<DropBlock2D>(0.3, 3, RandomLayerOptions{.seed = 3, .schedule = DropoutSchedule::linear(0.1, 2)}); }},
  };
}

}  // namespace

TEST_CASE("a dropout-family layer called on a GPU tensor draws the CPU call's masks", "[cuda][layer_call]") {
  for (const auto& c : dropout_family()) {
    INFO(c.name);
    const Tensor x = host_random(c.x_shape, 12);
    const Tensor x_gpu = x.to(Device::CUDA);
    auto on_cpu = c.make(), on_gpu = c.make(), alternating = c.make();
    for (int n = 0; n < 3; ++n) {
      const Tensor expected = (*on_cpu)(x, /*training=*/true);
      const Tensor y = (*on_gpu)(x_gpu, /*training=*/true);
      REQUIRE(y.device() == Device::CUDA);
      expect_identical(y.to_vector(), expected.to_vector(), c.name + " call " + std::to_string(n));
      // Calls on either device continue the layer's one sequence.
      const Tensor z = (*alternating)(n % 2 == 0 ? x : x_gpu, /*training=*/true);
      expect_identical(z.to_vector(), expected.to_vector(), c.name + " alternating call " + std::to_string(n));
    }
    expect_identical((*on_gpu)(x_gpu).to_vector(), x.to_vector(), c.name + " inference");
  }
}

TEST_CASE("Dense and Conv2D called on a GPU tensor give the CPU call's outputs", "[cuda][layer_call]") {
  SECTION("Dense, softmax") {
    Dense dense(6, {.activation = "softmax"});
    dense.build({10}, 5);  // host weights, copied to the GPU for the call
    const Tensor x = host_random({7, 10}, 1);
    const Tensor y = dense(x.to(Device::CUDA));
    REQUIRE(y.device() == Device::CUDA);
    expect_close(y.to_vector(), dense(x).to_vector(), "Dense");
  }
  SECTION("Conv2D, relu, same padding") {
    Conv2D conv(5, {3, 3}, {.padding = "same", .activation = "relu"});
    conv.build({6, 6, 4}, 6);
    const Tensor x = host_random({3, 6, 6, 4}, 2);
    expect_close(conv(x.to(Device::CUDA)).to_vector(), conv(x).to_vector(), "Conv2D");
  }
}
