// test_dropout_schedule.cpp: rates that change over training (DropoutSchedule). The per-step formula is
// checked on the step state itself in test_fit_step.cpp; here: the text form, what the schedules do to a
// whole training run (each must equal the constant-rate run it reduces to), resuming mid-schedule bit for
// bit, and checkpoints refusing a model with another schedule.
#include "support/catch.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dropnet/checkpoint.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "kernels/rate_schedule.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

namespace fs = std::filesystem;
using namespace dropnet;
using dropnet::testing::MessageContains;

namespace {

// A conv, a pool and a dense layer with a dropout after each of the first two; 40 training records in
// 5 batches of 8 per epoch.
Sequential scheduled_model(double rate, DropoutSchedule schedule) {
  Sequential m({6, 6, 2});
  m.add(Conv2D(4, {3, 3}, {.activation = "relu", .kernel_initializer = "he_uniform"}));
  m.add(MaxPooling2D());
  m.add(Dropout(rate, {.schedule = schedule}));
  m.add(Flatten());
  m.add(Dense(8, {.activation = "relu"}));
  m.add(Dropout(rate, {.schedule = schedule}));
  m.add(Dense(3, {.activation = "softmax"}));
  m.compile({.optimizer = Adam{.learning_rate = 0.01}, .loss = "categorical_crossentropy",
             .device = Device::CPU, .seed = 5});
  return m;
}

struct Data {
  Tensor x, y;
};

Data make_data() {
  const std::int64_t n = 40;
  Tensor x = dropnet::testing::random_tensor({n, 6, 6, 2}, 21, 0.0, 1.0);
  std::vector<float> y(std::size_t(n * 3), 0.0f);
  const auto cls = dropnet::testing::uniform<float>(std::size_t(n), 0.0, 3.0, 22);
  for (std::int64_t i = 0; i < n; ++i) y[std::size_t(i * 3 + std::int64_t(cls[std::size_t(i)]))] = 1.0f;
  return {x, Tensor::from_vector({n, 3}, y)};
}

FitOptions options(int epochs) {
  FitOptions o;
  o.batch_size = 8;
  o.epochs = epochs;
  o.verbose = 0;
  o.shuffle = true;
  return o;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> trained(double rate, DropoutSchedule schedule, int epochs, const Data& d) {
  Sequential m = scheduled_model(rate, schedule);
  m.fit(d.x, d.y, options(epochs));
  return testing::all_weights(m);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("schedules have a text form that round-trips, and bad forms say what is accepted", "[schedule]") {
  for (const char* text : {"constant", "linear:0:100", "linear:0.25:7", "early:30", "late:0"})
    CHECK(to_string(parse_schedule(text)) == text);
  CHECK(parse_schedule("early:30") == DropoutSchedule::early(30));
  CHECK(parse_schedule("linear:0.1:5") == DropoutSchedule::linear(0.1, 5));
  for (const char* bad : {"", "ramp:3", "early", "early:-1", "early:3x", "linear:2:5", "linear:0.5", "late:1:2"})
    CHECK_THROWS_MATCHES(parse_schedule(bad), InvalidArgument, MessageContains("expected constant, linear:START:STEPS"));
  CHECK_THROWS_MATCHES(Dropout(0.5, {.schedule = DropoutSchedule::linear(1.5, 10)}), InvalidArgument,
                       MessageContains("Expected a float value between 0 and 1. Received: start=1.5"));
}

TEST_CASE("the rate formula: constant, linear ramp, early and late dropout", "[schedule]") {
  const kernels::RateSchedule ramp{0.0f, 0.5f, 10, 20};
  CHECK(kernels::scheduled_rate(ramp, 0) == 0.0f);
  CHECK(kernels::scheduled_rate(ramp, 10) == 0.0f);
  CHECK(kernels::scheduled_rate(ramp, 15) == 0.25f);
  CHECK(kernels::scheduled_rate(ramp, 19) == 0.45f);
  CHECK(kernels::scheduled_rate(ramp, 20) == 0.5f);
  CHECK(kernels::scheduled_rate(ramp, ~std::uint64_t(0)) == 0.5f);
  for (std::uint64_t t = 0; t < 20; ++t) {
    CHECK(kernels::scheduled_rate({0.3f, 0.0f, 5, 5}, t) == (t < 5 ? 0.3f : 0.0f));  // early
    CHECK(kernels::scheduled_rate({0.0f, 0.3f, 5, 5}, t) == (t < 5 ? 0.0f : 0.3f));  // late
    CHECK(kernels::scheduled_rate(kernels::constant_rate(0.3f), t) == 0.3f);
  }
}

TEST_CASE("a scheduled run equals the constant-rate run it reduces to, bit for bit", "[schedule]") {
  const Data d = make_data();
  const int epochs = 3;  // 15 optimizer steps
  const std::vector<float> constant = trained(0.4, DropoutSchedule::constant(), epochs, d);
  const std::vector<float> none = trained(0.0, DropoutSchedule::constant(), epochs, d);
  REQUIRE_FALSE(same_bits(constant, none));
  // Early dropout that never ends, and late dropout that starts at once, are the constant rate.
  CHECK(same_bits(trained(0.4, DropoutSchedule::early(1000), epochs, d), constant));
  CHECK(same_bits(trained(0.4, DropoutSchedule::late(0), epochs, d), constant));
  CHECK(same_bits(trained(0.4, DropoutSchedule::linear(0.4, 7), epochs, d), constant));
  // Early dropout that ends at once, and late dropout that never starts, are no dropout.
  CHECK(same_bits(trained(0.4, DropoutSchedule::early(0), epochs, d), none));
  CHECK(same_bits(trained(0.4, DropoutSchedule::late(1000), epochs, d), none));
  // Switching in the middle differs from both.
  const std::vector<float> early = trained(0.4, DropoutSchedule::early(7), epochs, d);
  CHECK_FALSE(same_bits(early, constant));
  CHECK_FALSE(same_bits(early, none));
  // Early dropout for the first epoch, then none: the first epoch is the constant run's.
  CHECK(same_bits(trained(0.4, DropoutSchedule::early(5), 1, d), trained(0.4, DropoutSchedule::constant(), 1, d)));
}

TEST_CASE("a run resumed mid-schedule ends bit-identical to an uninterrupted one", "[schedule][checkpoint]") {
  dropnet::testing::TempDir dir;
  const Data d = make_data();
  const DropoutSchedule schedule = GENERATE(DropoutSchedule::linear(0.0, 12), DropoutSchedule::early(8),
                                            DropoutSchedule::late(8));
  INFO("schedule " << to_string(schedule));
  Sequential straight = scheduled_model(0.5, schedule);
  straight.fit(d.x, d.y, options(4));
  save_checkpoint(straight, dir / "straight.safetensors");

  // Stop after 2 epochs (10 steps: inside the ramp, after the switches at 8).
  Sequential first = scheduled_model(0.5, schedule);
  first.fit(d.x, d.y, options(2));
  save_checkpoint(first, dir / "half.safetensors");
  Sequential resumed = scheduled_model(0.5, schedule);
  const TrainingState s = load_checkpoint(resumed, dir / "half.safetensors");
  FitOptions o = options(4);
  resume_from(o, s);
  resumed.fit(d.x, d.y, o);
  save_checkpoint(resumed, dir / "resumed.safetensors");
  CHECK(same_bits(testing::all_weights(straight), testing::all_weights(resumed)));
  CHECK(slurp(dir / "straight.safetensors") == slurp(dir / "resumed.safetensors"));
}

TEST_CASE("a checkpoint refuses a model with another rate schedule", "[schedule][checkpoint]") {
  dropnet::testing::TempDir dir;
  const Data d = make_data();
  Sequential m = scheduled_model(0.5, DropoutSchedule::early(8));
  m.fit(d.x, d.y, options(1));
  save_checkpoint(m, dir / "early.safetensors");
  Sequential other = scheduled_model(0.5, DropoutSchedule::late(8));
  CHECK_THROWS_MATCHES(load_checkpoint(other, dir / "early.safetensors"), DataError,
                       MessageContains("dropout layer 'dropout' was trained with the rate schedule 0.5 until step 8, "
                                       "0 from step 8 but the model has 0 until step 8, 0.5 from step 8"));
  Sequential constant = scheduled_model(0.5, DropoutSchedule::constant());
  CHECK_THROWS_MATCHES(load_checkpoint(constant, dir / "early.safetensors"), DataError,
                       MessageContains("but the model has constant 0.5"));
  Sequential same = scheduled_model(0.5, DropoutSchedule::early(8));
  CHECK_NOTHROW(load_checkpoint(same, dir / "early.safetensors"));
}
