// test_norm_pool_keras.cpp: BatchNormalization, AveragePooling2D and GlobalAveragePooling2D against goldens
// Keras 3 produced (tests/reference/generate_norm_pool_goldens.py; keras 3.15.1 on jax 0.10.2, float32), and
// the model-level behaviour of non-trainable weights (moving statistics): Adam leaves them to the layer,
// checkpoints save and restore them under Keras' names, Monte Carlo predict and evaluate do not move them.
// Tolerance: max-normalised relative difference 1e-5, as tests/cpu/test_keras_parity.cpp.
#include "support/catch.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/checkpoint.hpp"
#include "dropnet/dropnet.hpp"
#include "layers/run_context.hpp"
#include "model/impl.hpp"
#include "programs/seed_model.hpp"
#include "support/temp_dir.hpp"
#include "support/testing.hpp"
#include "tests/support/npy.hpp"

using namespace dropnet;

namespace {

constexpr double kTol = 1e-5;

npy::Array golden(const std::string& name) {
  return npy::load(std::string(DROPNET_SOURCE_DIR) + "/tests/reference/goldens_norm_pool/" + name + ".npy");
}
Shape shape_of(const npy::Array& a) { return Shape(a.shape.begin(), a.shape.end()); }
Tensor tensor_of(const npy::Array& a) { return Tensor::from_vector(shape_of(a), a.as_float()); }

// max |got - want| / max |want|
double rel_diff(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0.0, ref = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(double(got[i]) - want[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
    ref = std::max(ref, std::abs(want[i]));
  }
  return ref > 0 ? worst / ref : worst;
}

// DROPNET_PARITY_REPORT=1 prints each comparison (docs/keras-parity.md records them).
void expect_golden(const Tensor& got, const std::string& name) {
  const npy::Array want = golden(name);
  INFO(name);
  CHECK(got.size() == want.size());
  const double rel = rel_diff(got.to_vector(), want.values);
  if (const char* v = std::getenv("DROPNET_PARITY_REPORT"); v != nullptr && std::string(v) != "0")
    std::printf("keras-parity | %-36s | rel %.3e | tol %.0e\n", name.c_str(), rel, kTol);
  CHECK(rel <= kTol);
}

backend::Backend& cpu() {
  static const std::unique_ptr<backend::Backend> context = backend::make_backend(Device::CPU);
  return *context;
}

Param& param(Layer& layer, const std::string& name) {
  for (Param& p : layer.params())
    if (p.name == name) return p;
  FAIL("no param " << name);
  throw;
}

Shape without_batch(const Shape& s) { return Shape(s.begin() + 1, s.end()); }

void check_batch_norm_case(const std::string& kase, double momentum) {
  const std::string pre = "bn_" + kase + "__";
  const Tensor x0 = tensor_of(golden(pre + "x0"));
  BatchNormalization bn({.momentum = momentum});
  bn.set_name("batch_normalization");
  bn.build(without_batch(x0.shape()), 1);
  REQUIRE(bn.params().size() == 4);
  CHECK(bn.params()[0].name == "gamma");
  CHECK(bn.params()[1].name == "beta");
  CHECK(bn.params()[2].name == "moving_mean");
  CHECK(bn.params()[3].name == "moving_variance");
  CHECK(bn.params()[0].trainable);
  CHECK_FALSE(bn.params()[2].trainable);
  CHECK(bn.params()[2].grad.empty());
  for (const char* name : {"gamma", "beta"}) param(bn, name).value.copy_from(tensor_of(golden(pre + name)));
  param(bn, "moving_mean").value.copy_from(tensor_of(golden(pre + "moving_mean0")));
  param(bn, "moving_variance").value.copy_from(tensor_of(golden(pre + "moving_variance0")));
  bn.allocate(x0.dim(0), Device::CPU);

  RunContext train{cpu(), true};
  Tensor y(x0.shape());
  bn.forward(x0, y, train);
  expect_golden(y, pre + "y_train");
  Tensor dx(x0.shape());
  bn.backward(x0, y, tensor_of(golden(pre + "g")), &dx, train);
  expect_golden(dx, pre + "dx");
  expect_golden(param(bn, "gamma").grad, pre + "dgamma");
  expect_golden(param(bn, "beta").grad, pre + "dbeta");
  expect_golden(param(bn, "moving_mean").value, pre + "moving_mean1");
  expect_golden(param(bn, "moving_variance").value, pre + "moving_variance1");
  for (int step = 2; step <= 3; ++step) {
    bn.forward(tensor_of(golden(pre + "x" + std::to_string(step - 1))), y, train);
    expect_golden(param(bn, "moving_mean").value, pre + "moving_mean" + std::to_string(step));
    expect_golden(param(bn, "moving_variance").value, pre + "moving_variance" + std::to_string(step));
  }
  RunContext infer{cpu(), false};
  bn.forward(x0, y, infer);
  expect_golden(y, pre + "y_infer");
  // Monte Carlo predict (training on for the dropout family) normalises with the moving statistics and
  // leaves them as they are.
  const std::vector<float> mean_before = param(bn, "moving_mean").value.to_vector();
  RunContext mc{cpu(), true};
  mc.monte_carlo = true;
  Tensor y_mc(x0.shape());
  bn.forward(x0, y_mc, mc);
  CHECK(y_mc.to_vector() == y.to_vector());
  CHECK(param(bn, "moving_mean").value.to_vector() == mean_before);
}

backend::PoolGeometry pool_geometry(const Shape& in, std::array<std::int64_t, 2> pool,
                                    std::array<std::int64_t, 2> strides, bool same) {
  const auto gy = backend::axis_geometry(in[1], pool[0], strides[0], same);
  const auto gx = backend::axis_geometry(in[2], pool[1], strides[1], same);
  return {in[0], in[1], in[2], in[3], pool[0], pool[1], strides[0], strides[1], gy.pad_before, gx.pad_before,
          gy.out, gx.out};
}

void check_pool_layer(Layer& layer, const std::string& kase) {
  const Tensor x = tensor_of(golden(kase + "__x"));
  layer.set_name("pool");
  const Shape out = layer.build(without_batch(x.shape()), 1);
  Shape y_shape{x.dim(0)};
  y_shape.insert(y_shape.end(), out.begin(), out.end());
  CHECK(y_shape == shape_of(golden(kase + "__y")));
  RunContext ctx{cpu(), true};
  Tensor y(y_shape);
  layer.forward(x, y, ctx);
  expect_golden(y, kase + "__y");
  Tensor dx(x.shape());
  layer.backward(x, y, tensor_of(golden(kase + "__g")), &dx, ctx);
  expect_golden(dx, kase + "__dx");
}

}  // namespace

TEST_CASE("BatchNormalization matches Keras: training output, gradients, moving statistics, inference",
          "[batch_norm][keras]") {
  SECTION("image (N, H, W, C), momentum 0.9") { check_batch_norm_case("image", 0.9); }
  SECTION("flat (N, C), Keras' default momentum 0.99") { check_batch_norm_case("flat", 0.99); }
}

TEST_CASE("AveragePooling2D and GlobalAveragePooling2D match Keras forward and backward", "[avg_pool][keras]") {
  struct Case {
    const char* name;
    std::array<std::int64_t, 2> pool;
    std::optional<std::array<std::int64_t, 2>> strides;
    const char* padding;
  };
  for (const Case& c : {Case{"p2_valid", {2, 2}, std::nullopt, "valid"}, Case{"p3_s2_same", {3, 3}, {{2, 2}}, "same"},
                        Case{"p2x3_s1x2_valid", {2, 3}, {{1, 2}}, "valid"}, Case{"p3_s1_same", {3, 3}, {{1, 1}}, "same"},
                        Case{"p2_s3_same", {2, 2}, {{3, 3}}, "same"}}) {
    AveragePooling2D pool({.pool_size = c.pool, .strides = c.strides, .padding = c.padding});
    check_pool_layer(pool, std::string("avgpool_") + c.name);
  }
  GlobalAveragePooling2D gap;
  check_pool_layer(gap, "gap");
}

TEST_CASE("average pooling counts only the positions inside the input, in float64 too", "[avg_pool]") {
  // A 'same' window at the corner of a 3x3 map of ones averages 4 ones: 1, not 4/9.
  const Tensor x = testing::tensor({1, 3, 3, 1}, std::vector<float>(9, 1.0f));
  const auto g = pool_geometry(x.shape(), {3, 3}, {1, 1}, true);
  Tensor y({1, g.oh, g.ow, 1});
  cpu().avgpool2d_forward(x, y, g);
  for (float v : y.to_vector()) CHECK(v == 1.0f);
}

TEST_CASE("BatchNormalization checks its arguments and input", "[batch_norm]") {
  CHECK_THROWS_AS(BatchNormalization({.momentum = 1.5}), InvalidArgument);
  CHECK_THROWS_AS(BatchNormalization({.epsilon = 0.0}), InvalidArgument);
  CHECK_THROWS_AS(BatchNormalization({.gamma_initializer = "nope"}), InvalidArgument);
  BatchNormalization first_axis({.axis = 1});
  CHECK_THROWS_AS(first_axis.build({4, 4, 3}, 1), InvalidArgument);
  BatchNormalization last_axis({.axis = 3});
  CHECK(last_axis.build({4, 4, 3}, 1) == Shape{4, 4, 3});
  BatchNormalization plain({.center = false, .scale = false});
  plain.build({5}, 1);
  REQUIRE(plain.params().size() == 2);
  CHECK(plain.params()[0].name == "moving_mean");
  GlobalAveragePooling2D gap;
  CHECK_THROWS_AS(gap.build({4, 4}, 1), InvalidArgument);
}

namespace {

Sequential bn_model() {
  Sequential m({8, 8, 3});
  m.add(std::make_unique<Conv2D>(4, std::array<std::int64_t, 2>{3, 3}, Conv2DOptions{.use_bias = false}));
  m.add(std::make_unique<BatchNormalization>());
  m.add(std::make_unique<Activation>("relu"));
  m.add(std::make_unique<AveragePooling2D>());
  m.add(std::make_unique<Dropout>(0.3));
  m.add(std::make_unique<GlobalAveragePooling2D>());
  m.add(std::make_unique<Dense>(5));
  m.add(std::make_unique<BatchNormalization>(BatchNormalizationOptions{.center = false}));
  m.add(std::make_unique<Activation>("softmax"));
  return m;
}

std::vector<float> moving(Sequential& m, std::size_t layer, const char* name) {
  return param(m.layer(layer), name).value.to_vector();
}

}  // namespace

TEST_CASE("a model with BatchNormalization trains its gamma and beta and moves its statistics as Keras",
          "[batch_norm][model]") {
  Sequential m = bn_model();
  m.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 3});
  CHECK(m.layer(1).name() == "batch_normalization");
  CHECK(m.layer(7).name() == "batch_normalization_1");
  // Summary: 4 + 4 moving statistics of the first, 5 + 5 of the second are non-trainable.
  const std::string summary = m.summary();
  CHECK(summary.find("Non-trainable params: 18") != std::string::npos);

  const Tensor x = testing::random_tensor({6, 8, 8, 3}, 1, 0.0, 1.0);
  std::vector<float> labels(6 * 5, 0.0f);
  for (int i = 0; i < 6; ++i) labels[std::size_t(i * 5 + i % 5)] = 1.0f;
  const Tensor y = testing::tensor({6, 5}, labels);

  // One training step moves the moving mean from 0 by (1 - 0.99) * the batch mean (not by Adam).
  const std::vector<float> var_before = moving(m, 1, "moving_variance");
  CHECK(var_before == std::vector<float>(4, 1.0f));
  m.train_on_batch(x, y);
  const std::vector<float> mean1 = moving(m, 1, "moving_mean");
  bool moved = false;
  for (float v : mean1) moved = moved || v != 0.0f;
  CHECK(moved);
  // Inference and Monte Carlo predict leave them alone.
  m.evaluate(x, y, 32, 0);
  m.predict(x, {.dropout = true});
  CHECK(moving(m, 1, "moving_mean") == mean1);

  // A checkpoint stores them under Keras' names, without Adam moments, and restores them.
  testing::TempDir dir;
  const auto path = dir.path() / "bn.safetensors";
  save_checkpoint(m, path);
  Sequential fresh = bn_model();
  fresh.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 3});
  CHECK(moving(fresh, 1, "moving_mean") != mean1);
  load_checkpoint(fresh, path);
  CHECK(moving(fresh, 1, "moving_mean") == mean1);
  CHECK(moving(fresh, 7, "moving_variance") == moving(m, 7, "moving_variance"));
  m.train_on_batch(x, y);
  fresh.train_on_batch(x, y);
  CHECK(testing::all_weights(fresh) == testing::all_weights(m));
}

TEST_CASE("the seed model's BN variant: its layers, and no fused block where BatchNormalization sits",
          "[batch_norm][model]") {
  Sequential plain = cli::build_seed_model({});
  Sequential bn = cli::build_seed_model({.batch_norm = true});
  REQUIRE(bn.layer_count() == plain.layer_count() + 4);
  const std::vector<std::string> types = {"Conv2D", "BatchNormalization", "Activation", "MaxPooling2D", "Dropout",
                                          "Conv2D", "BatchNormalization", "Activation", "MaxPooling2D", "Dropout"};
  for (std::size_t i = 0; i < types.size(); ++i) CHECK(bn.layer(i).type() == types[i]);
  const auto& conv = static_cast<const Conv2D&>(bn.layer(0));
  CHECK(conv.options().activation == "linear");
  CHECK_FALSE(conv.options().use_bias);
  plain.compile({.device = Device::CPU, .seed = 1});
  bn.compile({.device = Device::CPU, .seed = 1});
  // The CPU fuses Conv2D(relu) > MaxPooling2D > Dropout; with BatchNormalization between, the layers run one
  // by one (tests/cli/test_cli.sh checks that DROPNET_CPU_FUSE=0 then gives the same bytes).
  CHECK(ModelInternals::fused_blocks(plain) == 2);
  CHECK(ModelInternals::fused_blocks(bn) == 0);
}

// Not run by default: `dropnet_tests "[.bn_bench]"` times the CPU ops on the seed BN variant's first
// BatchNormalization (batch 250: 225,000 rows of 64 channels) beside a ReLU pass over the same tensor.
TEST_CASE("BatchNormalization CPU op timings", "[.bn_bench]") {
  const std::int64_t rows = 250 * 30 * 30, channels = 64;
  const Tensor x = testing::random_tensor({rows, channels}, 3, -1.0, 2.0);
  const Tensor dy = testing::random_tensor({rows, channels}, 4);
  Tensor y({rows, channels}), dx({rows, channels});
  std::vector<float> gamma(64, 1.0f), beta(64, 0.0f), mm(64, 0.0f), mv(64, 1.0f), bm(64), bi(64), dg(64), db(64);
  const backend::BatchNormWeights w{gamma.data(), beta.data(), mm.data(), mv.data(), bm.data(), bi.data()};
  backend::BatchNormCall call;
  call.rows = rows;
  call.channels = channels;
  auto median_ms = [](auto&& op) {
    std::vector<double> t;
    for (int i = 0; i < 9; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      op();
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[4];
  };
  const double fwd = median_ms([&] { cpu().batch_norm_forward_training(x, y, w, call); });
  const double bwd = median_ms([&] { cpu().batch_norm_backward(x, dy, &dx, w, dg.data(), db.data(), call); });
  const double relu = median_ms([&] { cpu().activation_forward(ActivationKind::ReLU, x, y); });
  std::printf("bn forward %.2f ms, bn backward %.2f ms, relu forward %.2f ms (median of 9)\n", fwd, bwd, relu);
  CHECK(fwd > 0);
}
