// Backends are contexts that models own: two models on the GPU have two CUDA backends (two streams, two sets
// of cuDNN/cuBLAS handles, plans and scratch), each with the settings its model was compiled with, and
// neither model's compile or training changes the other.
#include <cstring>
#include <memory>
#include <vector>

#include "cuda_test_support.hpp"
#include "dropnet/dropnet.hpp"
#include "model/impl.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

Sequential small_model() {
  Sequential m({6, 6, 2});
  m.add(Conv2D(4, {3, 3}, {.padding = "same", .activation = "relu"}));
  m.add(MaxPooling2D());
  m.add(Dropout(0.5));
  m.add(Flatten());
  m.add(Dense(3, {.activation = "softmax"}));
  return m;
}

backend::cuda::CudaBackend& cuda_backend_of(const Sequential& m) {
  return dynamic_cast<backend::cuda::CudaBackend&>(ModelInternals::backend(m));
}

std::vector<float> all_weights(Sequential& m) {
  std::vector<float> w;
  for (std::size_t i = 0; i < m.layer_count(); ++i)
    for (const Param& p : m.layer(i).params())
      for (float v : p.value.to_vector()) w.push_back(v);
  return w;
}

}  // namespace

TEST_CASE("two models on the GPU own distinct CUDA contexts with their own settings", "[cuda][contexts]") {
  Sequential a = small_model(), b = small_model();
  a.compile({.loss = "categorical_crossentropy",
             .device = Device::CUDA, .seed = 1, .deterministic = true, .allow_tf32 = false,
             .workspace_limit = std::size_t{1} << 20});
  backend::cuda::CudaBackend& ba = cuda_backend_of(a);
  b.compile({.loss = "categorical_crossentropy",
             .device = Device::CUDA, .seed = 1, .deterministic = false, .allow_tf32 = true,
             .workspace_limit = std::size_t{8} << 20});
  backend::cuda::CudaBackend& bb = cuda_backend_of(b);

  CHECK(&ba != &bb);
  CHECK(ba.stream() != bb.stream());
  // Compiling b changed nothing of a's context.
  CHECK(&cuda_backend_of(a) == &ba);
  CHECK(ba.deterministic());
  CHECK_FALSE(ba.allow_tf32());
  CHECK(ba.workspace_limit() == std::size_t{1} << 20);
  CHECK_FALSE(bb.deterministic());
  CHECK(bb.allow_tf32());
  CHECK(bb.workspace_limit() == std::size_t{8} << 20);
  CHECK(ba.settings().deterministic);
  CHECK(bb.settings().allow_tf32);
  // Neither is the op tests' shared context.
  CHECK(&ba != &gpu());
  CHECK(&bb != &gpu());
}

TEST_CASE("a GPU model trains the same bits whether or not another GPU model trains in between", "[cuda][contexts]") {
  const std::int64_t n = 24;
  const Tensor x = host_random({n, 6, 6, 2}, 3, 0.0, 1.0);
  std::vector<float> ys(std::size_t(n * 3), 0.0f);
  for (std::int64_t r = 0; r < n; ++r) ys[std::size_t(r * 3 + (r * 5) % 3)] = 1.0f;
  const Tensor y = Tensor::from_vector({n, 3}, ys);
  const FitOptions fit{.batch_size = 8, .epochs = 1, .verbose = 0};
  const CompileOptions options{.loss = "categorical_crossentropy", .device = Device::CUDA, .seed = 11,
                               .deterministic = true};

  Sequential alone = small_model();
  alone.compile(options);
  alone.fit(x, y, fit);
  alone.fit(x, y, fit);

  Sequential interleaved = small_model(), other = small_model();
  interleaved.compile(options);
  interleaved.fit(x, y, fit);
  other.compile({.loss = "categorical_crossentropy",
                 .device = Device::CUDA, .seed = 5, .deterministic = false, .allow_tf32 = true});
  other.fit(x, y, fit);
  interleaved.fit(x, y, fit);

  CHECK(interleaved.step_mode() == alone.step_mode());
  CHECK(interleaved.iterations() == 6);
  CHECK(other.iterations() == 3);
  CHECK(cuda_backend_of(interleaved).deterministic());
  CHECK_FALSE(cuda_backend_of(interleaved).allow_tf32());
  expect_identical(all_weights(interleaved), all_weights(alone), "weights after interleaved training");
}
