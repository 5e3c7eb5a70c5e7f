// test_keras_parity.cpp: dropnet against goldens that Keras 3 itself produced (issue 7).
//
// The goldens live in tests/reference/goldens/ and are written by tests/reference/generate_goldens.py
// (keras 3.15.1 on jax 0.10.2, CPU, float32; see its header to regenerate). Every case feeds dropnet the
// same inputs and weights and compares its outputs with Keras' under a stated tolerance on
//
//     rel = max_i |dropnet_i - keras_i| / max_i |keras_i|        (max-normalised relative difference)
//
// Set DROPNET_PARITY_REPORT=1 to print one line per comparison ("keras-parity | case | quantity | ...");
// docs/keras-parity.md records those numbers.
//
// One intended difference: Keras on JAX computes categorical cross-entropy on the softmax output clipped to
// [1e-7, 1 - 1e-7]; dropnet (like Keras' TensorFlow backend) computes it from the logits, unclipped. The two
// agree to float rounding while every target probability lies inside the clip range (all cases except
// softmax_ce_saturated, and the seed model, whose generator asserts it); the saturated case checks dropnet
// against Keras' from_logits=True goldens and bounds the difference from the clipped loss.
#include "support/catch.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "layers/run_context.hpp"
#include "dropnet/dropnet.hpp"
#include "kernels/adam_math.hpp"
#include "tests/support/npy.hpp"

namespace {

using dropnet::Device;
using dropnet::Shape;
using dropnet::Tensor;

// Tolerances (max-normalised relative difference, see above).
constexpr double kTolOp = 1e-5;          // one layer's forward or backward in float32
constexpr double kTolElementwise = 1e-6; // MaxNorm, Adam: a few float32 operations per element
constexpr double kTolModel = 1e-5;       // the seed model before training (see the seed-model test for after)

std::string golden_path(const std::string& name) {
  return std::string(DROPNET_SOURCE_DIR) + "/tests/reference/goldens/" + name + ".npy";
}

npy::Array golden(const std::string& kase, const std::string& key) { return npy::load(golden_path(kase + "__" + key)); }

Shape shape_of(const npy::Array& a) { return Shape(a.shape.begin(), a.shape.end()); }

Tensor tensor_of(const npy::Array& a) { return Tensor::from_vector(shape_of(a), a.as_float()); }

bool report_enabled() {
  const char* v = std::getenv("DROPNET_PARITY_REPORT");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

struct Diff {
  double max_abs = 0.0;
  double ref_max = 0.0;
  double rel = 0.0;
  std::size_t worst = 0;
};

Diff diff(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  Diff d;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(double(got[i]) - want[i]);
    if (!(e <= d.max_abs)) { d.max_abs = e; d.worst = i; }   // NaN-propagating
    d.ref_max = std::max(d.ref_max, std::abs(want[i]));
  }
  d.rel = d.ref_max > 0 ? d.max_abs / d.ref_max : d.max_abs;
  return d;
}

void print_row(const std::string& kase, const std::string& quantity, const Diff& d, double tol) {
  if (!report_enabled()) return;
  std::printf("keras-parity | %-28s | %-24s | max|diff| %.3e | max|keras| %.3e | rel %.3e | tol %.0e\n",
              kase.c_str(), quantity.c_str(), d.max_abs, d.ref_max, d.rel, tol);
  std::fflush(stdout);
}

// Compares `got` with the golden values and checks the max-normalised relative difference against `tol`.
void expect_close(const std::string& kase, const std::string& quantity, const std::vector<float>& got,
                  const std::vector<double>& want, double tol) {
  const Diff d = diff(got, want);
  print_row(kase, quantity, d, tol);
  INFO(kase << " / " << quantity << ": max|diff| " << d.max_abs << " at element " << d.worst << " (dropnet "
            << (got.empty() ? 0.0 : double(got[d.worst])) << ", keras " << (want.empty() ? 0.0 : want[d.worst])
            << "), max|keras| " << d.ref_max << ", rel " << d.rel << ", tolerance " << tol);
  CHECK(d.rel <= tol);
}

void expect_close(const std::string& kase, const std::string& quantity, const Tensor& got, const npy::Array& want,
                  double tol) {
  CHECK(got.shape() == shape_of(want));
  expect_close(kase, quantity, got.to_vector(), want.values, tol);
}

// A CPU backend context of its own for the op tests (models make theirs at compile).
dropnet::backend::Backend& cpu() {
  static const std::unique_ptr<dropnet::backend::Backend> context = dropnet::backend::make_backend(Device::CPU);
  return *context;
}

// Outside a compiled model a layer's gradients have no storage (compile points them into the model's
// arena); give each parameter its own host tensor.
void give_grads(dropnet::Layer& layer) {
  for (dropnet::Param& p : layer.params())
    if (p.grad.empty()) p.grad = Tensor(p.shape);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Layers: forward output and the input and weight gradients of sum(output * G).

TEST_CASE("Keras parity: Conv2D forward and gradients for valid and same padding with strides 1 and 2", "[keras]") {
  struct Case { std::int64_t kh, kw; const char* padding; std::int64_t stride; };
  const Case cases[] = {{3, 3, "valid", 1}, {3, 3, "valid", 2}, {3, 3, "same", 1}, {3, 3, "same", 2},
                        {2, 3, "valid", 1}, {2, 3, "valid", 2}, {2, 3, "same", 1}, {2, 3, "same", 2}};
  for (const Case& c : cases) {
    const std::string name = "conv2d_k" + std::to_string(c.kh) + "x" + std::to_string(c.kw) + "_" + c.padding +
                             "_s" + std::to_string(c.stride);
    DYNAMIC_SECTION(name) {
      const Tensor x = tensor_of(golden(name, "x"));
      const npy::Array y_ref = golden(name, "y");
      const std::int64_t filters = y_ref.shape[3];
      dropnet::Conv2DOptions options;
      options.strides = {c.stride, c.stride};
      options.padding = c.padding;
      options.activation = "linear";
      dropnet::Conv2D layer(filters, {c.kh, c.kw}, options);
      const Shape out_shape = layer.build({x.dim(1), x.dim(2), x.dim(3)}, 0);
      REQUIRE(out_shape == Shape(y_ref.shape.begin() + 1, y_ref.shape.end()));
      layer.allocate(x.dim(0), Device::CPU);
      give_grads(layer);
      REQUIRE(layer.params().size() == 2);
      layer.params()[0].value.copy_from(tensor_of(golden(name, "kernel")));
      layer.params()[1].value.copy_from(tensor_of(golden(name, "bias")));

      dropnet::RunContext ctx{cpu(), true};
      Tensor y(shape_of(y_ref));
      layer.forward(x, y, ctx);
      expect_close(name, "y", y, y_ref, kTolOp);

      const Tensor g = tensor_of(golden(name, "g"));
      Tensor dx(x.shape());
      layer.backward(x, y, g, &dx, ctx);
      expect_close(name, "dx", dx, golden(name, "dx"), kTolOp);
      expect_close(name, "dkernel", layer.params()[0].grad, golden(name, "dkernel"), kTolOp);
      expect_close(name, "dbias", layer.params()[1].grad, golden(name, "dbias"), kTolOp);
    }
  }
}

TEST_CASE("Keras parity: MaxPooling2D forward and input gradient", "[keras]") {
  struct Case { std::int64_t pool, stride; const char* padding; };
  const Case cases[] = {{2, 2, "valid"}, {3, 2, "same"}, {2, 2, "same"}};
  for (const Case& c : cases) {
    const std::string name = "maxpool_p" + std::to_string(c.pool) + "_s" + std::to_string(c.stride) + "_" + c.padding;
    DYNAMIC_SECTION(name) {
      const Tensor x = tensor_of(golden(name, "x"));
      const npy::Array y_ref = golden(name, "y");
      dropnet::MaxPooling2D layer({.pool_size = {c.pool, c.pool},
                                   .strides = std::array<std::int64_t, 2>{c.stride, c.stride},
                                   .padding = c.padding});
      const Shape out_shape = layer.build({x.dim(1), x.dim(2), x.dim(3)}, 0);
      REQUIRE(out_shape == Shape(y_ref.shape.begin() + 1, y_ref.shape.end()));
      layer.allocate(x.dim(0), Device::CPU);
      dropnet::RunContext ctx{cpu(), true};
      Tensor y(shape_of(y_ref));
      layer.forward(x, y, ctx);
      expect_close(name, "y", y, y_ref, kTolOp);
      Tensor dx(x.shape());
      layer.backward(x, y, tensor_of(golden(name, "g")), &dx, ctx);
      expect_close(name, "dx", dx, golden(name, "dx"), kTolOp);
    }
  }
}

TEST_CASE("Keras parity: Dense forward and gradients with linear and relu activation", "[keras]") {
  for (const std::string activation : {"linear", "relu"}) {
    const std::string name = "dense_" + activation;
    DYNAMIC_SECTION(name) {
      const Tensor x = tensor_of(golden(name, "x"));
      const npy::Array y_ref = golden(name, "y");
      dropnet::DenseOptions options;
      options.activation = activation;
      dropnet::Dense layer(y_ref.shape[1], options);
      REQUIRE(layer.build({x.dim(1)}, 0) == Shape{y_ref.shape[1]});
      layer.allocate(x.dim(0), Device::CPU);
      give_grads(layer);
      layer.params()[0].value.copy_from(tensor_of(golden(name, "kernel")));
      layer.params()[1].value.copy_from(tensor_of(golden(name, "bias")));
      dropnet::RunContext ctx{cpu(), true};
      Tensor y(shape_of(y_ref));
      layer.forward(x, y, ctx);
      expect_close(name, "y", y, y_ref, kTolOp);
      Tensor dx(x.shape());
      layer.backward(x, y, tensor_of(golden(name, "g")), &dx, ctx);
      expect_close(name, "dx", dx, golden(name, "dx"), kTolOp);
      expect_close(name, "dkernel", layer.params()[0].grad, golden(name, "dkernel"), kTolOp);
      expect_close(name, "dbias", layer.params()[1].grad, golden(name, "dbias"), kTolOp);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Softmax and categorical cross-entropy (reduction sum_over_batch_size: the mean over the batch).

namespace {

struct CrossEntropy {
  Tensor probs;                      // softmax(z)
  Tensor dlogits;                    // d mean-loss / dz
  std::vector<float> per_sample;     // loss of each row
  double loss = 0.0;                 // mean
  Tensor dlogits_via_probs;          // softmax backward applied to Keras' d loss / d probabilities
};

CrossEntropy run_cross_entropy(const std::string& name) {
  auto& be = cpu();
  const Tensor z = tensor_of(golden(name, "logits"));
  const Tensor t = tensor_of(golden(name, "targets"));
  const std::int64_t n = z.dim(0);
  CrossEntropy r;
  r.probs = Tensor(z.shape());
  be.activation_forward(dropnet::ActivationKind::Softmax, z, r.probs);
  r.dlogits = Tensor(z.shape());
  Tensor stats({2});
  be.softmax_cross_entropy(z, t, &r.dlogits, 1.0f / float(n), stats);
  r.loss = double(stats.to_vector()[0]) / double(n);
  for (std::int64_t i = 0; i < n; ++i) {
    Tensor row_stats({2});
    be.softmax_cross_entropy(z.rows(i, i + 1), t.rows(i, i + 1), nullptr, 1.0f, row_stats);
    r.per_sample.push_back(row_stats.to_vector()[0]);
  }
  r.dlogits_via_probs = Tensor(z.shape());
  be.activation_backward(dropnet::ActivationKind::Softmax, r.probs, tensor_of(golden(name, "dprobs")),
                         r.dlogits_via_probs);
  return r;
}

}  // namespace

TEST_CASE("Keras parity: softmax and categorical cross-entropy with probabilities inside the clip range", "[keras]") {
  for (const std::string variant : {"onehot", "soft"}) {
    const std::string name = "softmax_ce_" + variant;
    DYNAMIC_SECTION(name) {
      const CrossEntropy r = run_cross_entropy(name);
      expect_close(name, "probs", r.probs, golden(name, "probs"), kTolOp);
      // Keras' default (clipped probabilities) path, which the JAX backend runs.
      expect_close(name, "loss", {float(r.loss)}, golden(name, "loss").values, kTolOp);
      expect_close(name, "per_sample", r.per_sample, golden(name, "per_sample").values, kTolOp);
      expect_close(name, "dlogits", r.dlogits, golden(name, "dlogits"), kTolOp);
      // d loss / d probabilities from Keras, pushed through dropnet's softmax backward.
      expect_close(name, "softmax_bwd(dprobs)", r.dlogits_via_probs, golden(name, "dlogits"), kTolOp);
      // from_logits=True (what the TF backend and dropnet compute).
      expect_close(name, "loss_from_logits", {float(r.loss)}, golden(name, "loss_from_logits").values, kTolOp);
      expect_close(name, "dlogits_from_logits", r.dlogits, golden(name, "dlogits_from_logits"), kTolOp);
    }
  }
}

TEST_CASE("Keras parity: cross-entropy with saturated probabilities (intended difference from Keras on JAX)",
          "[keras]") {
  // Rows 0 and 2 have a target probability far below 1e-7, row 1 one above 1 - 1e-7. dropnet follows the
  // unclipped from-logits loss (Keras' TF backend, from_logits=True); Keras on JAX clips, which caps the
  // loss of row 0 and 2 at -log(1e-7) = 16.12 and zeroes their gradient (the clip's derivative is 0).
  const std::string name = "softmax_ce_saturated";
  const CrossEntropy r = run_cross_entropy(name);
  expect_close(name, "probs", r.probs, golden(name, "probs"), kTolOp);
  expect_close(name, "loss_from_logits", {float(r.loss)}, golden(name, "loss_from_logits").values, kTolOp);
  expect_close(name, "per_sample_from_logits", r.per_sample, golden(name, "per_sample_from_logits").values, kTolOp);
  expect_close(name, "dlogits_from_logits", r.dlogits, golden(name, "dlogits_from_logits"), kTolOp);

  // The bound on the difference from the clipped (JAX) loss, per row: with p_t the target probability,
  //   |dropnet - keras_jax| <= max(0, log(1e-7) - log(p_t)) + 2e-7 (the upper clip, plus float rounding),
  // and it is exactly that excess where p_t < 1e-7. Rows inside the clip range agree to kTolOp.
  const npy::Array clipped = golden(name, "per_sample");
  const npy::Array z = golden(name, "logits");
  const npy::Array t = golden(name, "targets");
  const std::int64_t n = z.shape[0], k = z.shape[1];
  double worst_excess = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    double m = -INFINITY, s = 0.0, zt = 0.0;
    for (std::int64_t j = 0; j < k; ++j) m = std::max(m, z.values[std::size_t(i * k + j)]);
    for (std::int64_t j = 0; j < k; ++j) {
      s += std::exp(z.values[std::size_t(i * k + j)] - m);
      zt += t.values[std::size_t(i * k + j)] * z.values[std::size_t(i * k + j)];
    }
    const double log_pt = zt - m - std::log(s);   // one-hot targets
    const double excess = std::max(0.0, std::log(1e-7) - log_pt);
    const double d = std::abs(double(r.per_sample[std::size_t(i)]) - clipped.values[std::size_t(i)]);
    INFO("row " << i << ": log p_t " << log_pt << ", |dropnet - keras_jax| " << d << ", clip excess " << excess);
    CHECK(std::abs(d - excess) <= 1e-5 * std::max(1.0, excess) + 2e-7);
    worst_excess = std::max(worst_excess, d);
  }
  const Diff loss_d = diff(r.per_sample, clipped.values);
  print_row(name, "per_sample vs clipped", loss_d, 0.0);
  const Diff grad_d = diff(r.dlogits.to_vector(), golden(name, "dlogits").values);
  print_row(name, "dlogits vs clipped", grad_d, 0.0);
  // Rows whose probabilities all lie inside the clip range (3..n-1) match the clipped goldens.
  const npy::Array dz_clipped = golden(name, "dlogits");
  const std::vector<float> dz_all = r.dlogits.to_vector();
  std::vector<float> got(dz_all.begin() + 3 * k, dz_all.end());
  std::vector<double> want(dz_clipped.values.begin() + 3 * k, dz_clipped.values.end());
  expect_close(name, "dlogits rows 3.. (clipped)", got, want, kTolOp);
  CHECK(worst_excess > 1.0);   // the case really is saturated
}

// ---------------------------------------------------------------------------------------------------------
// MaxNorm, HeUniform, Adam.

TEST_CASE("Keras parity: MaxNorm(2.0) on conv and dense kernels over several axes", "[keras]") {
  struct Case { const char* name; std::vector<int> axes; };
  const Case cases[] = {{"maxnorm_conv_axis0", {0}},    {"maxnorm_conv_axis012", {0, 1, 2}},
                        {"maxnorm_conv_axis01", {0, 1}}, {"maxnorm_dense_axis0", {0}},
                        {"maxnorm_dense_axis1", {1}},   {"maxnorm_dense_axis01", {0, 1}}};
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      Tensor w = tensor_of(golden(c.name, "w"));
      const npy::Array out = golden(c.name, "out");
      cpu().maxnorm(w.data(), dropnet::backend::MaxNormCall{w.shape(), c.axes, 2.0f});
      expect_close(c.name, "out", w, out, kTolElementwise);
    }
  }
}

TEST_CASE("Keras parity: HeUniform fans and limits", "[keras]") {
  struct Case { const char* tag; Shape shape; };
  const Case cases[] = {{"conv1", {3, 3, 3, 64}}, {"conv2", {3, 3, 64, 64}}, {"dense1", {2304, 256}},
                        {"dense2", {256, 10}}};
  for (const Case& c : cases) {
    const std::string name = std::string("he_uniform_") + c.tag;
    DYNAMIC_SECTION(name) {
      // [fan_in, fan_out, he_limit, glorot_limit, min, max, mean, var, count] of Keras' HeUniform sample.
      const std::vector<double> s = golden(name, "stats").values;
      const auto [fan_in, fan_out] = dropnet::compute_fans(c.shape);
      CHECK(fan_in == s[0]);
      CHECK(fan_out == s[1]);
      const double limit = std::sqrt(6.0 / fan_in);
      CHECK(std::abs(limit - s[2]) <= 1e-12 * s[2]);

      Tensor w(c.shape);
      dropnet::initialize("he_uniform", w, 1234);
      const std::vector<float> v = w.to_vector();
      const double count = double(v.size());
      REQUIRE(count == s[8]);
      double lo = INFINITY, hi = -INFINITY, sum = 0.0, sum_sq = 0.0;
      for (float f : v) { lo = std::min(lo, double(f)); hi = std::max(hi, double(f)); sum += f; sum_sq += double(f) * f; }
      const double mean = sum / count, var = sum_sq / count - mean * mean;
      // Both samples lie in [-limit, limit] and reach within 25 expected gaps (2 limit / count) of each end
      // (probability of failing ~e^-25); mean and variance (limit^2 / 3) agree within 6 standard errors.
      const double edge = 25.0 * 2.0 * s[2] / count;
      if (report_enabled())
        std::printf("keras-parity | %-28s | limit %.9g | dropnet min %.6g max %.6g var %.6g | keras min %.6g max %.6g "
                    "var %.6g\n", name.c_str(), s[2], lo, hi, var, s[4], s[5], s[7]);
      for (double m : {lo, s[4]}) CHECK((m >= -s[2] && m <= -s[2] + edge));
      for (double m : {hi, s[5]}) CHECK((m <= s[2] && m >= s[2] - edge));
      const double var_expected = s[2] * s[2] / 3.0;
      const double mean_se = std::sqrt(var_expected / count);
      const double var_se = var_expected * std::sqrt(0.8 / count);   // Var(U^2) = 4/45 l^4 = 0.8 (l^2/3)^2
      for (double m : {mean, s[6]}) CHECK(std::abs(m) <= 6.0 * mean_se);
      for (double vv : {var, s[7]}) CHECK(std::abs(vv - var_expected) <= 6.0 * var_se);
    }
  }
}

TEST_CASE("Keras parity: Adam over 5 steps of given gradients", "[keras]") {
  struct Case { const char* name; double lr, b1, b2, eps; };
  const Case cases[] = {{"adam_default", 1e-3, 0.9, 0.999, 1e-7}, {"adam_custom", 1e-2, 0.8, 0.99, 1e-6}};
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      const npy::Array grads = golden(c.name, "grads"), values = golden(c.name, "values");
      const npy::Array ms = golden(c.name, "m"), vs = golden(c.name, "v");
      std::vector<float> var = golden(c.name, "init").as_float();
      const std::size_t count = var.size();
      std::vector<float> m(count, 0.0f), v(count, 0.0f);
      for (int step = 0; step < 5; ++step) {
        const std::vector<float> all = grads.as_float();
        const std::vector<float> g(all.begin() + step * count, all.begin() + (step + 1) * count);
        cpu().adam_update(var.data(), g.data(), m.data(), v.data(), count,
                          dropnet::kernels::adam_step(c.lr, c.b1, c.b2, c.eps, step + 1));
        auto slice = [&](const npy::Array& a) {
          return std::vector<double>(a.values.begin() + step * count, a.values.begin() + (step + 1) * count);
        };
        const std::string at = " step " + std::to_string(step + 1);
        expect_close(c.name, "variable" + at, var, slice(values), kTolElementwise);
        expect_close(c.name, "m" + at, m, slice(ms), kTolElementwise);
        expect_close(c.name, "v" + at, v, slice(vs), kTolElementwise);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The seed model: 10 train_on_batch steps with dropout rate 0 on fixed batches.
//
// How close two float32 implementations can be after training is limited by the problem, not only by the
// implementations. Adam's first step moves a weight by lr * g / (|g| + 1e-7 / sqrt(1 - beta_2)), so a gradient
// within float rounding (~1e-8 here) of 0 gets a step anywhere in [-lr, lr], and later steps feed such
// differences back through the network; a max-pooling near-tie or a ReLU input within rounding of 0 can
// route a gradient differently. The generator therefore also trains the same model in float64, stores how
// far Keras' own float32 run is from it (f32err_*, printed next to dropnet's difference), and uses a data
// draw whose float32 trajectory stays close to float64 (see SEED_DATA_VARIANT in generate_goldens.py).
//
// A known systematic difference: Keras computes Adam's bias correction alpha = lr * sqrt(1 - beta_2^t) /
// (1 - beta_1^t) in float32, where 1 - float32(0.999) is 1.3e-5 off, so each of its updates is ~6.5e-6
// relatively smaller than exact; dropnet computes alpha in double. This is the main part of the step >= 1
// differences below (computing alpha in float32 as Keras does brings them to <= 7e-7).
//
// The tolerances:
//   step 0 (forward only) and the step-1 loss              rel 1e-5
//   logits, probabilities and losses after steps 1..10    rel 5e-5   (measured <= 8e-6)
//   weights after step 1                                   max |diff| <= 2% of lr   (measured 0.5%)
//   weights after step 10                                  max |diff| <= 10% of lr  (measured 1.6%)
// docs/keras-parity.md lists the measured differences.

namespace {

constexpr double kLr = 1e-3;                 // Adam's default learning rate, the unit of weight differences
constexpr double kTolSeedStep1Weights = 0.02 * kLr;
constexpr double kTolSeedTrained = 5e-5;     // rel, outputs and losses after training steps
constexpr double kTolSeedStep10Weights = 0.1 * kLr;

// Weights: max |dropnet - keras| against an absolute tolerance (in units of lr).
void expect_close_abs(const std::string& kase, const std::string& quantity, const std::vector<float>& got,
                      const std::vector<double>& want, double tol, double keras_f32_error) {
  const Diff d = diff(got, want);
  if (report_enabled())
    std::printf("keras-parity | %-28s | %-24s | max|diff| %.3e = %.4f lr | max|keras| %.3e | tol %.4f lr | "
                "keras f32 vs f64 %.3e = %.4f lr\n", kase.c_str(), quantity.c_str(), d.max_abs, d.max_abs / kLr,
                d.ref_max, tol / kLr, keras_f32_error, keras_f32_error / kLr);
  INFO(kase << " / " << quantity << ": max|diff| " << d.max_abs << " at element " << d.worst << " (dropnet "
            << double(got[d.worst]) << ", keras " << want[d.worst] << "), tolerance " << tol
            << "; keras' own float32 vs float64 difference " << keras_f32_error);
  CHECK(d.max_abs <= tol);
}

}  // namespace

TEST_CASE("Keras parity: seed model logits and loss and weights after 1 and 10 training steps", "[keras]") {
  const std::string name = "seed_model";
  // The seed program's layers (dropout rate 0 here, so that no random mask is involved).
  dropnet::Conv2DOptions conv_options;
  conv_options.activation = "relu";
  conv_options.kernel_initializer = "he_uniform";
  conv_options.kernel_constraint = dropnet::MaxNorm{2.0};
  dropnet::DenseOptions dense_options;
  dense_options.activation = "relu";
  dense_options.kernel_initializer = "he_uniform";
  dense_options.kernel_constraint = dropnet::MaxNorm{2.0};
  dropnet::DenseOptions softmax_options;
  softmax_options.activation = "softmax";
  dropnet::Sequential model({32, 32, 3});
  model.add(std::make_unique<dropnet::Conv2D>(64, std::array<std::int64_t, 2>{3, 3}, conv_options));
  model.add(std::make_unique<dropnet::MaxPooling2D>());
  model.add(std::make_unique<dropnet::Dropout>(0.0));
  model.add(std::make_unique<dropnet::Conv2D>(64, std::array<std::int64_t, 2>{3, 3}, conv_options));
  model.add(std::make_unique<dropnet::MaxPooling2D>());
  model.add(std::make_unique<dropnet::Dropout>(0.0));
  model.add(std::make_unique<dropnet::Flatten>());
  model.add(std::make_unique<dropnet::Dense>(256, dense_options));
  model.add(std::make_unique<dropnet::Dense>(10, softmax_options));
  model.compile({.loss = "categorical_crossentropy", .device = Device::CPU, .seed = 1});

  // The initial weights: int8 values times a power of two (exact in float32).
  const char* names[] = {"conv1", "conv2", "dense1", "dense2"};
  std::vector<dropnet::Layer*> weighted;
  for (std::size_t i = 0; i < model.layer_count(); ++i)
    if (!model.layer(i).params().empty()) weighted.push_back(&model.layer(i));
  REQUIRE(weighted.size() == 4);
  for (std::size_t l = 0; l < 4; ++l) {
    auto& params = weighted[l]->params();
    REQUIRE(params.size() == 2);
    const std::vector<double> scales = golden(name, std::string(names[l]) + "_scales").values;
    for (int j = 0; j < 2; ++j) {
      const npy::Array q = golden(name, std::string(names[l]) + (j == 0 ? "_kernel_q" : "_bias_q"));
      REQUIRE(params[std::size_t(j)].value.shape() == shape_of(q));
      std::vector<float> values(q.values.size());
      for (std::size_t e = 0; e < values.size(); ++e) values[e] = float(q.values[e]) * float(scales[std::size_t(j)]);
      params[std::size_t(j)].value.copy_from(Tensor::from_vector(shape_of(q), values));
    }
  }

  const npy::Array images = golden(name, "images");
  const npy::Array labels = golden(name, "labels");
  const std::int64_t steps = images.shape[0], batch = images.shape[1];
  REQUIRE(images.shape == std::vector<std::int64_t>{steps, batch, 32, 32, 3});
  const std::vector<float> pixels = images.as_float();
  const std::int64_t per_batch = batch * 32 * 32 * 3;
  auto batch_x = [&](std::int64_t s) {
    return Tensor::from_vector({batch, 32, 32, 3},
                               std::vector<float>(pixels.begin() + s * per_batch, pixels.begin() + (s + 1) * per_batch));
  };
  auto batch_y = [&](std::int64_t s) {
    std::vector<float> v(static_cast<std::size_t>(batch * 10), 0.0f);
    for (std::int64_t i = 0; i < batch; ++i)
      v[std::size_t(i * 10 + std::int64_t(labels.values[std::size_t(s * batch + i)]))] = 1.0f;
    return Tensor::from_vector({batch, 10}, v);
  };
  const Tensor x0 = batch_x(0);
  auto f32err = [&](const std::string& key) { return golden(name, "f32err_" + key).values.at(0); };

  auto check_outputs = [&](int step) {
    const Tensor probs = model.predict(x0, {.batch_size = int(batch)});
    const Tensor logits = model.layer(model.layer_count() - 1).logits().rows(0, batch);
    const std::string at = "step" + std::to_string(step);
    const double tol = step == 0 ? kTolModel : kTolSeedTrained;
    expect_close(name, "logits " + at, logits.to_vector(), golden(name, "logits_" + at).values, tol);
    expect_close(name, "probs " + at, probs.to_vector(), golden(name, "probs_" + at).values, tol);
    if (report_enabled()) {
      const Diff exact = diff(logits.to_vector(), golden(name, "logits_" + at + "_f64").values);
      std::printf("keras-parity | %-28s | %-24s | dropnet vs keras float64: max|diff| %.3e rel %.3e | keras float32 "
                  "vs float64: max|diff| %.3e\n", name.c_str(), ("logits " + at).c_str(), exact.max_abs, exact.rel,
                  f32err("logits_" + at));
    }
  };
  auto check_weights = [&](int step) {
    const std::string at = "step" + std::to_string(step);
    const double tol = step == 1 ? kTolSeedStep1Weights : kTolSeedStep10Weights;
    for (std::size_t l = 0; l < 4; ++l) {
      const auto& params = weighted[l]->params();
      for (int j = 0; j < 2; ++j) {
        const std::string key = std::string(names[l]) + (j == 0 ? "_kernel_" : "_bias_") + at;
        expect_close_abs(name, key, params[std::size_t(j)].value.to_vector(), golden(name, key).values, tol,
                         f32err(key));
      }
    }
  };

  check_outputs(0);
  const std::vector<double> loss_ref = golden(name, "loss").values;
  const std::vector<double> loss_f64 = golden(name, "loss_f64").values;
  const std::vector<double> acc_ref = golden(name, "accuracy").values;
  std::vector<float> losses;
  for (std::int64_t s = 0; s < steps; ++s) {
    const dropnet::Logs logs = model.train_on_batch(batch_x(s), batch_y(s));
    losses.push_back(float(logs.at("loss")));
    INFO("step " << s + 1 << ": loss " << logs.at("loss") << " (keras " << loss_ref[std::size_t(s)]
                 << ", keras float64 " << loss_f64[std::size_t(s)] << ")");
    CHECK(logs.at("accuracy") == Approx(acc_ref[std::size_t(s)]).margin(1e-9));
    expect_close(name, "loss step" + std::to_string(s + 1), {float(logs.at("loss"))}, {loss_ref[std::size_t(s)]},
                 s == 0 ? kTolModel : kTolSeedTrained);
    if (s + 1 == 1 || s + 1 == steps) {
      check_weights(int(s + 1));
      check_outputs(int(s + 1));
    }
  }
  if (report_enabled()) {
    const Diff keras_vs_f64 = diff(std::vector<float>(loss_ref.begin(), loss_ref.end()), loss_f64);
    const Diff dropnet_vs_f64 = diff(losses, loss_f64);
    std::printf("keras-parity | %-28s | %-24s | keras float32 vs float64 rel %.3e | dropnet vs float64 rel %.3e\n",
                name.c_str(), "loss steps 1-10", keras_vs_f64.rel, dropnet_vs_f64.rel);
  }
  CHECK(model.iterations() == steps);
}
