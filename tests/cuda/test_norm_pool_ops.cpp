// BatchNormalization (cuDNN plus dropnet's moving-statistics kernel) and average pooling (dropnet's kernels)
// on the GPU: against Keras' goldens (tests/reference/goldens_norm_pool/, max-normalised 1e-5, as the CPU),
// against the CPU backend (average pooling bit for bit: the same per-element math), and a model with
// BatchNormalization trained by fit with its step recorded as a CUDA graph against the same fit op by op
// and against the CPU.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cuda_test_support.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "layers/run_context.hpp"
#include "support/npy.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

npy::Array golden(const std::string& name) {
  return npy::load(std::string(DROPNET_SOURCE_DIR) + "/tests/reference/goldens_norm_pool/" + name + ".npy");
}
Tensor host_golden(const std::string& name) {
  const npy::Array a = golden(name);
  return Tensor::from_vector(Shape(a.shape.begin(), a.shape.end()), a.as_float());
}

// max |got - want| / max |want| <= 1e-5
void expect_golden(const Tensor& device_tensor, const std::string& name) {
  const std::vector<float> got = host_values(device_tensor);
  const npy::Array want = golden(name);
  REQUIRE(got.size() == want.values.size());
  double worst = 0.0, ref = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(double(got[i]) - want.values[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
    ref = std::max(ref, std::abs(want.values[i]));
  }
  INFO(name << ": max|diff| " << worst << ", max|keras| " << ref);
  if (const char* v = std::getenv("DROPNET_PARITY_REPORT"); v != nullptr && std::string(v) != "0")
    std::printf("keras-parity (cuda) | %-36s | rel %.3e | tol 1e-05\n", name.c_str(), ref > 0 ? worst / ref : worst);
  CHECK(worst <= 1e-5 * ref);
}

Param& param(Layer& layer, const std::string& name) {
  for (Param& p : layer.params())
    if (p.name == name) return p;
  FAIL("no param " << name);
  throw;
}

void check_batch_norm_golden(const std::string& kase, double momentum) {
  const std::string pre = "bn_" + kase + "__";
  const Tensor x0 = host_golden(pre + "x0").to(Device::CUDA);
  BatchNormalization bn({.momentum = momentum});
  bn.set_name("bn");
  bn.build(Shape(x0.shape().begin() + 1, x0.shape().end()), 1);
  // The layer's weights on the device, as a compiled model holds them.
  for (Param& p : bn.params()) {
    const std::string source = p.name == "moving_mean" || p.name == "moving_variance" ? p.name + "0" : p.name;
    p.value = host_golden(pre + source).to(Device::CUDA);
    if (p.trainable) p.grad = device_sentinel(p.shape);
  }
  bn.allocate(x0.dim(0), Device::CUDA);
  RunContext train{gpu(), true};
  Tensor y = device_sentinel(x0.shape());
  bn.forward(x0, y, train);
  expect_golden(y, pre + "y_train");
  Tensor dx = device_sentinel(x0.shape());
  bn.backward(x0, y, host_golden(pre + "g").to(Device::CUDA), &dx, train);
  expect_golden(dx, pre + "dx");
  expect_golden(param(bn, "gamma").grad, pre + "dgamma");
  expect_golden(param(bn, "beta").grad, pre + "dbeta");
  expect_golden(param(bn, "moving_mean").value, pre + "moving_mean1");
  expect_golden(param(bn, "moving_variance").value, pre + "moving_variance1");
  for (int step = 2; step <= 3; ++step) {
    bn.forward(host_golden(pre + "x" + std::to_string(step - 1)).to(Device::CUDA), y, train);
    expect_golden(param(bn, "moving_mean").value, pre + "moving_mean" + std::to_string(step));
    expect_golden(param(bn, "moving_variance").value, pre + "moving_variance" + std::to_string(step));
  }
  RunContext infer{gpu(), false};
  bn.forward(x0, y, infer);
  expect_golden(y, pre + "y_infer");
  // The first layer of a model passes no dx: the parameter gradients come out the same.
  Tensor dgamma_before = Tensor(param(bn, "gamma").shape);
  bn.forward(x0, y, train);
  bn.backward(x0, y, host_golden(pre + "g").to(Device::CUDA), &dx, train);
  dgamma_before.copy_from(param(bn, "gamma").grad);
  bn.backward(x0, y, host_golden(pre + "g").to(Device::CUDA), nullptr, train);
  expect_identical(host_values(param(bn, "gamma").grad), dgamma_before.to_vector(), "dgamma without dx");
}

backend::PoolGeometry pool_geometry(const Shape& in, std::array<std::int64_t, 2> pool,
                                    std::array<std::int64_t, 2> strides, bool same) {
  const auto gy = backend::axis_geometry(in[1], pool[0], strides[0], same);
  const auto gx = backend::axis_geometry(in[2], pool[1], strides[1], same);
  return {in[0], in[1], in[2], in[3], pool[0], pool[1], strides[0], strides[1], gy.pad_before, gx.pad_before,
          gy.out, gx.out};
}

}  // namespace

TEST_CASE("BatchNormalization on the GPU matches Keras: training, gradients, moving statistics, inference",
          "[cuda][batch_norm]") {
  SECTION("image (N, H, W, C)") { check_batch_norm_golden("image", 0.9); }
  SECTION("flat (N, C)") { check_batch_norm_golden("flat", 0.99); }
}

TEST_CASE("average pooling on the GPU is the CPU's bit for bit, and Keras'", "[cuda][avg_pool]") {
  struct Case {
    Shape x;
    std::array<std::int64_t, 2> pool, strides;
    bool same;
  };
  for (const Case& c : {Case{{2, 7, 9, 3}, {2, 2}, {2, 2}, false}, Case{{2, 7, 9, 3}, {3, 3}, {2, 2}, true},
                        Case{{3, 8, 5, 17}, {3, 2}, {1, 3}, true}, Case{{2, 6, 6, 4}, {6, 6}, {6, 6}, false},
                        Case{{1, 5, 4, 2}, {2, 2}, {3, 3}, true}}) {
    const auto g = pool_geometry(c.x, c.pool, c.strides, c.same);
    const std::string what = "avg pool " + std::to_string(c.pool[0]) + "x" + std::to_string(c.pool[1]) +
                             (c.same ? " same" : " valid");
    const Tensor x = host_random(c.x, 5), dy = host_random({g.n, g.oh, g.ow, g.c}, 6);
    Tensor y_ref({g.n, g.oh, g.ow, g.c}), dx_ref(c.x);
    cpu().avgpool2d_forward(x, y_ref, g);
    cpu().avgpool2d_backward(dy, dx_ref, g);
    Tensor y = device_sentinel(y_ref.shape()), dx = device_sentinel(c.x);
    gpu().avgpool2d_forward(x.to(Device::CUDA), y, g);
    gpu().avgpool2d_backward(dy.to(Device::CUDA), dx, g);
    expect_identical(host_values(y), y_ref.to_vector(), what + " forward");
    expect_identical(host_values(dx), dx_ref.to_vector(), what + " backward");
  }
  // Keras' goldens through the layers.
  for (const char* kase : {"avgpool_p3_s2_same", "gap"}) {
    const Tensor x = host_golden(std::string(kase) + "__x").to(Device::CUDA);
    std::unique_ptr<Layer> layer;
    if (std::string(kase) == "gap") layer = std::make_unique<GlobalAveragePooling2D>();
    else layer = std::make_unique<AveragePooling2D>(AveragePooling2DOptions{{3, 3}, {{2, 2}}, "same"});
    layer->set_name("pool");
    const Shape out = layer->build(Shape(x.shape().begin() + 1, x.shape().end()), 1);
    Shape ys{x.dim(0)};
    ys.insert(ys.end(), out.begin(), out.end());
    RunContext ctx{gpu(), true};
    Tensor y = device_sentinel(ys), dx = device_sentinel(x.shape());
    layer->forward(x, y, ctx);
    expect_golden(y, std::string(kase) + "__y");
    layer->backward(x, y, host_golden(std::string(kase) + "__g").to(Device::CUDA), &dx, ctx);
    expect_golden(dx, std::string(kase) + "__dx");
  }
}

namespace {

Sequential bn_convnet(Device device, bool cuda_graphs) {
  Sequential m({10, 10, 3});
  m.add(std::make_unique<Conv2D>(6, std::array<std::int64_t, 2>{3, 3},
                                 Conv2DOptions{.padding = "same", .use_bias = false, .kernel_initializer = "he_uniform"}));
  m.add(std::make_unique<BatchNormalization>());
  m.add(std::make_unique<Activation>("relu"));
  m.add(std::make_unique<MaxPooling2D>());
  m.add(std::make_unique<Dropout>(0.25));
  m.add(std::make_unique<Conv2D>(8, std::array<std::int64_t, 2>{3, 3}, Conv2DOptions{.use_bias = false}));
  m.add(std::make_unique<BatchNormalization>(BatchNormalizationOptions{.momentum = 0.9}));
  m.add(std::make_unique<Activation>("relu"));
  m.add(std::make_unique<AveragePooling2D>(AveragePooling2DOptions{.pool_size = {2, 2}, .padding = "same"}));
  m.add(std::make_unique<GlobalAveragePooling2D>());
  m.add(std::make_unique<Dense>(4, DenseOptions{.activation = "softmax"}));
  m.compile({.loss = "categorical_crossentropy", .device = device, .seed = 2, .deterministic = true,
             .cuda_graphs = cuda_graphs});
  return m;
}

}  // namespace

TEST_CASE("a BatchNormalization convnet trains on the GPU as op by op, as recorded, and as on the CPU",
          "[cuda][batch_norm][model][graph]") {
  const std::int64_t n = 96;
  const Tensor x = host_random({n, 10, 10, 3}, 11, 0.0, 1.0);
  std::vector<float> labels(static_cast<std::size_t>(n * 4), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i * 4 + (i * 7) % 4)] = 1.0f;
  const Tensor y = Tensor::from_vector({n, 4}, labels);
  FitOptions options;
  options.batch_size = 20;  // 4 full batches and one of 16
  options.epochs = 2;
  options.verbose = 0;
  options.shuffle = true;

  Sequential graphs = bn_convnet(Device::CUDA, true);
  Sequential eager = bn_convnet(Device::CUDA, false);
  Sequential host = bn_convnet(Device::CPU, false);
  const History a = graphs.fit(x, y, options);
  const History b = eager.fit(x, y, options);
  const History c = host.fit(x, y, options);
  CHECK(graphs.step_mode() == "cuda graph");
  CHECK(a.history.at("loss") == b.history.at("loss"));
  expect_identical(testing::all_weights(graphs), testing::all_weights(eager), "weights, graph vs op by op");
  expect_close(testing::all_weights(graphs), testing::all_weights(host), "weights, GPU vs CPU",
               Tolerance{.rtol = 1e-4, .atol_scale = 1e-4});
  for (std::size_t i = 0; i < a.history.at("loss").size(); ++i)
    CHECK(std::abs(a.history.at("loss")[i] - c.history.at("loss")[i]) <= 1e-4);
  // Inference uses the moving statistics on both.
  const Tensor p_gpu = graphs.predict(x), p_cpu = host.predict(x);
  expect_close(p_gpu.to_vector(), p_cpu.to_vector(), "predict, GPU vs CPU", Tolerance{.rtol = 1e-4, .atol_scale = 1e-4});
}
