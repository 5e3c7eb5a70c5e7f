// test_api_templates.cpp: the public API's option structs used inside function templates, as generic C++
// programs use them. Compiling this file is half the test: with GCC 12 (Debian 12's compiler) a braced
// default member initializer in CompileOptions (metrics = {"accuracy"}) made
// compile({.device = ..., .seed = ...}) inside a template stop the compiler with an internal error
// (check_noexcept_r); include/dropnet/model.hpp avoids that shape.
#include "support/catch.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "dropnet/dropnet.hpp"

namespace {

// Builds and compiles a small softmax model with designated-initializer options, in a template.
template <typename Seed>
dropnet::Sequential compiled_model(Seed seed) {
  dropnet::Sequential m({4});
  m.add(dropnet::Dense(3, {.activation = "softmax"}));
  m.compile({.loss = "categorical_crossentropy",
             .device = dropnet::Device::CPU, .seed = static_cast<std::uint64_t>(seed)});
  return m;
}

// The loss's forms in a template: no loss (inference only), a name with from_logits, a Loss object.
template <typename Seed>
dropnet::Sequential compiled_with_loss(Seed seed, int form) {
  dropnet::Sequential m({4});
  m.add(dropnet::Dense(3));
  if (form == 0) m.compile({.device = dropnet::Device::CPU, .seed = static_cast<std::uint64_t>(seed)});
  if (form == 1)
    m.compile({.loss = {"sparse_categorical_crossentropy", true}, .metrics = {"accuracy"},
               .device = dropnet::Device::CPU, .seed = static_cast<std::uint64_t>(seed)});
  if (form == 2)
    m.compile({.loss = dropnet::Loss("binary_crossentropy", true), .metrics = {},
               .device = dropnet::Device::CPU, .seed = static_cast<std::uint64_t>(seed)});
  return m;
}

template <typename Model>
dropnet::History fit_in_template(Model& m, const dropnet::Tensor& x, const dropnet::Tensor& y) {
  return m.fit(x, y, {.batch_size = 2, .epochs = 1, .verbose = 0});
}

}  // namespace

TEST_CASE("compile and fit options work inside function templates (no GCC 12 internal error)", "[model][api]") {
  dropnet::Sequential m = compiled_model(7);
  CHECK(m.seed() == 7);
  const dropnet::CompileOptions defaults{};
  CHECK(defaults.metrics == std::vector<std::string>{"accuracy"});  // the default the workaround keeps
  CHECK(defaults.loss.name.empty());                                  // Keras' loss=None
  CHECK_FALSE(defaults.loss.from_logits);
  const dropnet::Tensor x = dropnet::Tensor::from_vector({4, 4}, std::vector<float>(16, 0.5f));
  const dropnet::Tensor y = dropnet::Tensor::from_vector({4, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0});
  CHECK(fit_in_template(m, x, y).epoch.size() == 1);
}

TEST_CASE("the loss and its from_logits work inside function templates", "[model][api]") {
  const dropnet::Tensor x = dropnet::Tensor::from_vector({4, 4}, std::vector<float>(16, 0.5f));
  CHECK(compiled_with_loss(1, 0).predict(x).shape() == dropnet::Shape{4, 3});
  dropnet::Sequential sparse = compiled_with_loss(2, 1);
  const dropnet::Tensor labels = dropnet::Tensor::from_vector({4}, {0, 1, 2, 0});
  CHECK(fit_in_template(sparse, x, labels).history.count("accuracy") == 1);
  dropnet::Sequential binary = compiled_with_loss(3, 2);
  const dropnet::Tensor targets = dropnet::Tensor::from_vector({4, 3}, std::vector<float>(12, 1.0f));
  CHECK(fit_in_template(binary, x, targets).history.size() == 1);  // the loss only
}
