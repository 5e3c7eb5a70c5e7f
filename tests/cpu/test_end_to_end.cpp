// End to end: the seed model trains on the bundled CIFAR-10 sample. A few hundred optimizer steps must
// lower the training loss and classify held-out records well above chance.
#include "support/catch.hpp"

#include "programs/seed_model.hpp"
#include "dropnet/dropnet.hpp"

#ifndef DROPNET_SOURCE_DIR
#error "DROPNET_SOURCE_DIR must point at the source tree (set by tests/CMakeLists.txt)"
#endif

using namespace dropnet;

TEST_CASE("the seed model learns on the bundled sample", "[end_to_end]") {
  const cifar10::Dataset data = cifar10::load(DROPNET_SOURCE_DIR "/data/cifar10-sample");
  REQUIRE(data.train.size() == 500);
  REQUIRE(data.test.size() == 200);

  Sequential model = cli::build_seed_model({.dropout = 0.5, .max_norm = 2.0});
  model.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 1});
  // 20 epochs of 20 batches of 25: 400 steps.
  const History h = model.fit(data.train.images, data.train.labels, {.batch_size = 25, .epochs = 20, .verbose = 0});
  REQUIRE(model.iterations() == 400);
  const auto& loss = h.history.at("loss");
  INFO("training loss: first epoch " << loss.front() << ", last epoch " << loss.back());
  CHECK(loss.back() < 0.8 * loss.front());

  // Chance is 10%; over 200 records 25% is more than 7 standard deviations above it.
  const Evaluation test = model.evaluate(data.test.images, data.test.labels, 50, 0);
  INFO("test loss " << test.loss << ", accuracy " << test.accuracy);
  CHECK(test.accuracy > 0.25);
}
