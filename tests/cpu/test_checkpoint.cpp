// test_checkpoint.cpp: weights and checkpoints: exact resume (at an epoch boundary and mid-epoch), load
// checks and their messages, the callbacks (ModelCheckpoint, CSVLogger, TerminateOnNaN).
//
// The model is small (a conv, a pool, two dropouts, two dense layers, a MaxNorm) so that a few epochs
// run in well under a second; dropout is active and shuffling on, so exactness needs every piece of state.
#include "support/catch.hpp"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dropnet/checkpoint.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "io/safetensors.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

namespace fs = std::filesystem;
using namespace dropnet;
using dropnet::testing::MessageContains;

namespace {

using TempDir = dropnet::testing::TempDir;

Sequential small_model(std::int64_t hidden = 8) {
  Sequential m({6, 6, 2});
  m.add(Conv2D(4, {3, 3}, {.activation = "relu", .kernel_initializer = "he_uniform"}));
  m.add(MaxPooling2D());
  m.add(Dropout(0.3));
  m.add(Flatten());
  m.add(Dense(hidden, {.activation = "relu", .kernel_constraint = MaxNorm{.max_value = 1.0}}));
  m.add(Dropout(0.5));
  m.add(Dense(3, {.activation = "softmax"}));
  return m;
}

Sequential compiled_model(std::uint64_t seed = 7, std::int64_t hidden = 8) {
  Sequential m = small_model(hidden);
  m.compile({.optimizer = Adam{.learning_rate = 0.01}, .loss = "categorical_crossentropy",
             .device = Device::CPU, .seed = seed});
  return m;
}

struct Data {
  Tensor x, y;
};

// 50 records: 40 for training (5 batches of 8), 10 held out for validation.
Data make_data() {
  const std::int64_t n = 50;
  Tensor x = dropnet::testing::random_tensor({n, 6, 6, 2}, 11, 0.0, 1.0);
  std::vector<float> y(std::size_t(n * 3), 0.0f);
  const auto cls = dropnet::testing::uniform<float>(std::size_t(n), 0.0, 3.0, 12);
  for (std::int64_t i = 0; i < n; ++i) y[std::size_t(i * 3 + std::int64_t(cls[std::size_t(i)]))] = 1.0f;
  return {x, Tensor::from_vector({n, 3}, y)};
}

FitOptions fit_options(int epochs) {
  FitOptions o;
  o.batch_size = 8;
  o.epochs = epochs;
  o.verbose = 0;
  o.validation_split = 0.2;
  o.shuffle = true;
  return o;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every weight of two models, bit for bit.
void require_same_weights(const Sequential& a, const Sequential& b) {
  REQUIRE(a.layer_count() == b.layer_count());
  for (std::size_t i = 0; i < a.layer_count(); ++i) {
    const auto& pa = a.layer(i).params();
    const auto& pb = b.layer(i).params();
    REQUIRE(pa.size() == pb.size());
    for (std::size_t j = 0; j < pa.size(); ++j) {
      const std::vector<float> va = pa[j].value.to_vector(), vb = pb[j].value.to_vector();
      INFO(a.layer(i).name() << "/" << pa[j].name);
      REQUIRE(va.size() == vb.size());
      CHECK(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0);
    }
  }
}

// Stops fit after batch `batch` of epoch `epoch`, having saved a checkpoint there (what the CLI does on
// Ctrl-C).
struct Interrupted {};
class InterruptAt : public Callback {
 public:
  InterruptAt(int epoch, int batch, fs::path path) : epoch_(epoch), batch_(batch), path_(std::move(path)) {}
  void on_train_begin(Sequential& model) override { model_ = &model; }
  void on_epoch_begin(int epoch) override { current_ = epoch; }
  void on_batch_end(int batch, const Logs&) override {
    if (current_ == epoch_ && batch == batch_) {
      save_checkpoint(*model_, path_);
      throw Interrupted{};
    }
  }

 private:
  int epoch_, batch_, current_ = -1;
  fs::path path_;
  Sequential* model_ = nullptr;
};

// Loads `path` into a freshly built model, as a new process would, and trains it to `epochs`.
Sequential resume(const fs::path& path, const Data& d, int epochs) {
  const TrainingState s = read_training_state(path);
  Sequential m = small_model();
  m.compile({.optimizer = Adam{.learning_rate = 0.01}, .loss = "categorical_crossentropy",
             .device = Device::CPU, .seed = s.seed});
  const TrainingState loaded = load_checkpoint(m, path);
  CHECK(loaded.epoch == s.epoch);
  FitOptions o = fit_options(epochs);
  resume_from(o, loaded);
  m.fit(d.x, d.y, o);
  return m;
}

}  // namespace

TEST_CASE("resuming from a checkpoint at an epoch boundary is bit-exact", "[checkpoint]") {
  TempDir dir;
  const Data d = make_data();
  Sequential straight = compiled_model();
  const History h_straight = straight.fit(d.x, d.y, fit_options(4));

  Sequential first = compiled_model();
  first.fit(d.x, d.y, fit_options(2));
  save_checkpoint(first, dir / "epoch2.safetensors");
  const TrainingState s = read_training_state(dir / "epoch2.safetensors");
  CHECK(s.epoch == 2);
  CHECK(s.step == 0);
  CHECK(s.iterations == 10);
  CHECK(s.seed == 7);
  CHECK(s.history.epoch == std::vector<int>{0, 1});

  Sequential resumed = resume(dir / "epoch2.safetensors", d, 4);
  require_same_weights(straight, resumed);
  CHECK(resumed.iterations() == straight.iterations());
  // (The Dropout layers' steps are in the step state: the byte-identical checkpoints below compare them.)
  // The full history (the two restored epochs, then the two trained) equals the straight run's.
  const TrainingState ts = training_state(straight), tr = training_state(resumed);
  CHECK(tr.history.epoch == ts.history.epoch);
  CHECK(tr.history.history == ts.history.history);
  CHECK(ts.history.history == h_straight.history);
  // Everything saved (weights, Adam moments, iterations, dropout steps, history) is byte-identical.
  save_checkpoint(straight, dir / "straight.safetensors");
  save_checkpoint(resumed, dir / "resumed.safetensors");
  CHECK(slurp(dir / "straight.safetensors") == slurp(dir / "resumed.safetensors"));
}

TEST_CASE("resuming from a checkpoint taken mid-epoch is bit-exact", "[checkpoint]") {
  TempDir dir;
  const Data d = make_data();
  Sequential straight = compiled_model();
  straight.fit(d.x, d.y, fit_options(4));
  save_checkpoint(straight, dir / "straight.safetensors");

  // Batch 2 of epoch 1; the last batch (4) of epoch 2, before validation and the epoch's end.
  const auto [epoch, batch] = GENERATE(std::pair{1, 2}, std::pair{2, 4}, std::pair{0, 0});
  INFO("interrupted after batch " << batch << " of epoch " << epoch);
  Sequential first = compiled_model();
  FitOptions o = fit_options(4);
  InterruptAt interrupt(epoch, batch, dir / "interrupted.safetensors");
  o.callbacks = {&interrupt};
  CHECK_THROWS_AS(first.fit(d.x, d.y, o), Interrupted);
  const TrainingState s = read_training_state(dir / "interrupted.safetensors");
  CHECK(s.epoch == epoch);
  CHECK(s.step == batch + 1);
  CHECK(s.totals.seen == 8 * (batch + 1));
  CHECK(s.history.epoch.size() == std::size_t(epoch));

  Sequential resumed = resume(dir / "interrupted.safetensors", d, 4);
  require_same_weights(straight, resumed);
  save_checkpoint(resumed, dir / "resumed.safetensors");
  CHECK(slurp(dir / "straight.safetensors") == slurp(dir / "resumed.safetensors"));
}

TEST_CASE("fit checks that mid-epoch totals match the batch size", "[checkpoint]") {
  const Data d = make_data();
  Sequential m = compiled_model();
  FitOptions o = fit_options(2);
  o.initial_step = 2;
  o.initial_totals = {.loss_sum = 1.0, .correct = 1.0, .seen = 10};
  CHECK_THROWS_MATCHES(m.fit(d.x, d.y, o), InvalidArgument, MessageContains("needs the totals of 16 records, got 10"));
  o.initial_step = 6;
  CHECK_THROWS_MATCHES(m.fit(d.x, d.y, o), InvalidArgument, MessageContains("initial_step 6 must be in [0, 5]"));
}

TEST_CASE("save_weights and load_weights round trip under Keras names and layouts", "[checkpoint]") {
  TempDir dir;
  const Data d = make_data();
  Sequential a = compiled_model(7);
  a.fit(d.x, d.y, fit_options(1));
  save_weights(a, dir / "w.safetensors", {{"note", "hello"}});

  const io::SafetensorsFile f = io::SafetensorsFile::read(dir / "w.safetensors");
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"conv2d/kernel", "conv2d/bias", "dense/kernel", "dense/bias",
                                          "dense_1/kernel", "dense_1/bias"});
  CHECK(f.find("conv2d/kernel")->shape == Shape{3, 3, 2, 4});  // (rows, cols, in, filters)
  CHECK(f.find("dense/kernel")->shape == Shape{16, 8});        // (in, units)
  CHECK(f.metadata().at("dropnet.format") == "weights");
  CHECK(read_metadata(dir / "w.safetensors").at("note") == "hello");

  Sequential b = compiled_model(99);  // other initial weights
  load_weights(b, dir / "w.safetensors");
  require_same_weights(a, b);
  CHECK(b.evaluate(d.x, d.y, 16, 0).loss == a.evaluate(d.x, d.y, 16, 0).loss);

  // A checkpoint holds the weights too.
  save_checkpoint(a, dir / "c.safetensors");
  Sequential c = compiled_model(5);
  load_weights(c, dir / "c.safetensors");
  require_same_weights(a, c);
  CHECK_THROWS_MATCHES(save_weights(a, dir / "x.safetensors", {{"dropnet.format", "x"}}), InvalidArgument,
                       MessageContains("reserved"));
}

TEST_CASE("load_weights names every mismatch and leaves the model unchanged", "[checkpoint]") {
  TempDir dir;
  Sequential a = compiled_model(7, 8);
  save_weights(a, dir / "w.safetensors");

  SECTION("another hidden width") {
    Sequential b = compiled_model(3, 9);
    const std::vector<float> before = b.layer(4).params()[0].value.to_vector();
    CHECK_THROWS_MATCHES(load_weights(b, dir / "w.safetensors"), DataError,
                         MessageContains("weight 'dense/kernel' has shape (16, 8) in the file but (16, 9) in the model"));
    CHECK_THROWS_MATCHES(load_weights(b, dir / "w.safetensors"), DataError,
                         MessageContains("w.safetensors: cannot load its weights into the model"));
    CHECK(b.layer(4).params()[0].value.to_vector() == before);
  }
  SECTION("a layer the file lacks and a layer the model lacks") {
    Sequential b({6, 6, 2});
    b.add(Conv2D(4, {3, 3}, {.activation = "relu"}));
    b.add(MaxPooling2D());
    b.add(Flatten());
    b.add(Dense(8, {.activation = "relu"}));
    b.add(Dense(3, {.activation = "relu"}));
    b.add(Dense(3, {.activation = "softmax"}));
    b.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 1});
    CHECK_THROWS_MATCHES(load_weights(b, dir / "w.safetensors"), DataError,
                         MessageContains("weight 'dense_2/kernel' (3, 3) is missing"));
  }
  SECTION("a weight of the wrong dtype") {
    const io::SafetensorsFile f = io::SafetensorsFile::read(dir / "w.safetensors");
    io::SafetensorsWriter w;
    for (const auto& t : f.tensors()) {
      if (t.name == "dense_1/bias") {
        const std::vector<double> v(3, 0.5);
        w.add_f64(t.name, t.shape, v);
      } else {
        w.add(t.name, t.dtype, t.shape, f.bytes(t));
      }
    }
    w.add_f32("extra/kernel", {2}, std::vector<float>{1, 2});
    w.write(dir / "bad.safetensors");
    Sequential b = compiled_model(3);
    CHECK_THROWS_MATCHES(load_weights(b, dir / "bad.safetensors"), DataError,
                         MessageContains("weight 'dense_1/bias' has dtype F64, expected F32"));
    CHECK_THROWS_MATCHES(load_weights(b, dir / "bad.safetensors"), DataError,
                         MessageContains("the file has a weight 'extra/kernel' (2,) that the model lacks"));
  }
  SECTION("an uncompiled model") {
    Sequential b = small_model();
    CHECK_THROWS_MATCHES(load_weights(b, dir / "w.safetensors"), InvalidArgument, MessageContains("compile"));
  }
}

TEST_CASE("load_checkpoint checks format, seed and optimizer state", "[checkpoint]") {
  TempDir dir;
  const Data d = make_data();
  Sequential a = compiled_model(7);
  a.fit(d.x, d.y, fit_options(1));
  save_checkpoint(a, dir / "c.safetensors");
  save_weights(a, dir / "w.safetensors");

  Sequential other_seed = compiled_model(8);
  CHECK_THROWS_MATCHES(load_checkpoint(other_seed, dir / "c.safetensors"), DataError,
                       MessageContains("trained with seed 7 but the model was compiled with seed 8"));
  CHECK_THROWS_MATCHES(load_checkpoint(other_seed, dir / "c.safetensors"), DataError,
                       MessageContains("dropout layer 'dropout' has seed"));

  Sequential b = compiled_model(7);
  CHECK_THROWS_MATCHES(load_checkpoint(b, dir / "w.safetensors"), DataError,
                       MessageContains("is a weights file"));
  CHECK_THROWS_MATCHES(read_training_state(dir / "w.safetensors"), DataError, MessageContains("not a resumable checkpoint"));

  // A checkpoint without one Adam moment.
  const io::SafetensorsFile f = io::SafetensorsFile::read(dir / "c.safetensors");
  io::SafetensorsWriter w;
  for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
  for (const auto& t : f.tensors())
    if (t.name != "optimizer/dense/kernel/v") w.add(t.name, t.dtype, t.shape, f.bytes(t));
  w.write(dir / "partial.safetensors");
  CHECK_THROWS_MATCHES(load_checkpoint(b, dir / "partial.safetensors"), DataError,
                       MessageContains("Adam moment 'optimizer/dense/kernel/v' (16, 8) is missing"));
  CHECK(b.iterations() == 0);  // nothing was loaded

  const TrainingState s = load_checkpoint(b, dir / "c.safetensors");
  CHECK(s.epoch == 1);
  CHECK(b.iterations() == 5);
}

TEST_CASE("TerminateOnNaN stops at the first invalid loss and the last checkpoint stays good", "[checkpoint]") {
  TempDir dir;
  const Data d = make_data();
  Sequential m = compiled_model();
  ModelCheckpoint last(dir / "last.safetensors");
  TerminateOnNaN nan_stop;
  FitOptions o = fit_options(1);
  o.callbacks = {&last, &nan_stop};
  m.fit(d.x, d.y, o);
  REQUIRE(last.last_saved_epoch() == 0);
  const std::string good = slurp(dir / "last.safetensors");

  // Poison one weight: every loss from now on is NaN.
  Tensor& w = m.layer(6).params()[0].value;
  std::vector<float> v = w.to_vector();
  v[0] = std::numeric_limits<float>::quiet_NaN();
  w.copy_from(Tensor::from_vector(w.shape(), v));
  o = fit_options(3);
  o.initial_epoch = 1;
  o.callbacks = {&last, &nan_stop};
  try {
    m.fit(d.x, d.y, o);
    FAIL("fit did not stop");
  } catch (const TrainingDiverged& e) {
    CHECK(e.epoch == 1);
    CHECK(e.batch == 0);
    CHECK_THAT(std::string(e.what()), Catch::Contains("the loss is nan at epoch 2, batch 1"));
  }
  CHECK(slurp(dir / "last.safetensors") == good);
  CHECK(read_training_state(dir / "last.safetensors").epoch == 1);
}

TEST_CASE("ModelCheckpoint with save_best_only saves the best val_loss", "[checkpoint]") {
  TempDir dir;
  const Data d = make_data();
  Sequential m = compiled_model();
  ModelCheckpoint best(dir / "best.safetensors", {.save_best_only = true, .save_weights_only = true});
  FitOptions o = fit_options(5);
  o.callbacks = {&best};
  const History h = m.fit(d.x, d.y, o);
  const auto& val = h.history.at("val_loss");
  const auto argmin = std::min_element(val.begin(), val.end()) - val.begin();
  CHECK(best.last_saved_epoch() == int(argmin));
  CHECK(best.best() == val[std::size_t(argmin)]);
  CHECK(read_metadata(dir / "best.safetensors").at("dropnet.format") == "weights");

  // Without validation data there is no val_loss: nothing is saved.
  ModelCheckpoint none(dir / "none.safetensors", {.save_best_only = true});
  o = fit_options(1);
  o.validation_split = 0;
  o.callbacks = {&none};
  m.fit(d.x, d.y, o);
  CHECK(none.skipped());
  CHECK_FALSE(fs::exists(dir / "none.safetensors"));
}

TEST_CASE("CSVLogger writes Keras' columns each epoch and matches the checkpoint after a resume", "[checkpoint]") {
  TempDir dir;
  const Data d = make_data();
  Sequential m = compiled_model();
  CSVLogger log(dir / "run.csv");
  ModelCheckpoint last(dir / "last.safetensors");
  FitOptions o = fit_options(2);
  o.callbacks = {&last, &log};
  const History h = m.fit(d.x, d.y, o);
  std::string csv = slurp(dir / "run.csv");
  CHECK(csv.rfind("epoch,accuracy,loss,val_accuracy,val_loss\n0,", 0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 3);
  CHECK(csv.find("\n1,") != std::string::npos);
  CHECK(h.epoch.size() == 2);

  // A row written after the last checkpoint (the run was killed between the two): the resumed run's
  // log drops it and continues from the checkpoint's history.
  std::ofstream(dir / "run.csv", std::ios::app) << "2,0.1,0.2,0.3,0.4\n";
  Sequential r = compiled_model();
  const TrainingState s = load_checkpoint(r, dir / "last.safetensors");
  CSVLogger append(dir / "run.csv", true);
  o = fit_options(4);
  resume_from(o, s);
  o.callbacks = {&append};
  r.fit(d.x, d.y, o);
  csv = slurp(dir / "run.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 5);
  CHECK(csv.find("2,0.1,0.2,0.3,0.4") == std::string::npos);
  CHECK(csv.rfind("epoch,accuracy,loss,val_accuracy,val_loss\n0,", 0) == 0);
  CHECK(csv.find("\n3,") != std::string::npos);
}
