// call_layer.cpp: a layer called directly on a tensor, y = layer(x, training), through the installed
// libdropnet, with the statistics of the masks it draws. Built and run by tests/install/test_install.sh,
// which checks its output.
//
// Prints, for three training calls of Dropout(0.3) on a (1000, 100) tensor of ones, the fraction dropped
// and the value of the kept elements (1 / (1 - 0.3)); how much the first two masks differ; that an
// inference call is the identity; on a GPU (when one is available) that the same calls draw the same
// masks; and that a Dense layer is built on its first call. Exits 1 when any of that does not hold.
#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

#include <dropnet/dropnet.hpp>

namespace dn = dropnet;

int main() try {
  const double rate = 0.3;
  const float kept_value = 1.0f / (1.0f - float(rate));
  dn::Dropout dropout(rate, {.seed = 7});
  dn::Tensor x({1000, 100});
  x.fill(1.0f);
  const double n = double(x.size());
  int failed = 0;

  std::vector<std::vector<float>> masks;
  for (int call = 0; call < 3; ++call) {
    const std::vector<float> y = dropout(x, /*training=*/true).to_vector();
    double dropped = 0;
    bool values_ok = true;
    for (float v : y) {
      dropped += v == 0.0f;
      values_ok = values_ok && (v == 0.0f || v == kept_value);
    }
    // Within 6 standard errors of the rate.
    const bool ok = values_ok && std::abs(dropped / n - rate) < 6.0 * std::sqrt(rate * (1 - rate) / n);
    std::printf("training call %d: dropped %.4f, kept values %s %.6f: %s\n", call, dropped / n,
                values_ok ? "all" : "NOT all", double(kept_value), ok ? "ok" : "FAILED");
    failed += !ok;
    masks.push_back(y);
  }
  double differ = 0;
  for (std::size_t i = 0; i < masks[0].size(); ++i) differ += masks[0][i] != masks[1][i];
  // Two independent masks at rate r differ where exactly one drops: 2 r (1 - r) = 0.42.
  const bool differ_ok = std::abs(differ / n - 2 * rate * (1 - rate)) < 0.01;
  std::printf("calls 0 and 1 differ in %.4f of elements: %s\n", differ / n, differ_ok ? "ok" : "FAILED");
  failed += !differ_ok;
  std::printf("call step after 3 training calls: %llu\n", static_cast<unsigned long long>(dropout.call_step()));
  failed += dropout.call_step() != 3;

  const bool identity = dropout(x).to_vector() == x.to_vector();
  std::printf("inference call: %s\n", identity ? "identity" : "CHANGES its input");
  failed += !identity;

  if (dn::cuda_available()) {
    // A fresh layer of the same seed called on the GPU draws the same three masks.
    dn::Dropout on_gpu(rate, {.seed = 7});
    const dn::Tensor x_gpu = x.to(dn::Device::CUDA);
    bool same = true;
    for (int call = 0; call < 3; ++call) {
      const dn::Tensor y = on_gpu(x_gpu, /*training=*/true);
      same = same && y.device() == dn::Device::CUDA && y.to_vector() == masks[std::size_t(call)];
    }
    std::printf("cuda: %s\n", same ? "the same masks as the cpu" : "masks DIFFER from the cpu's");
    failed += !same;
  } else {
    std::printf("cuda: not available\n");
  }

  dn::Dense dense(4, {.activation = "relu"});
  const dn::Tensor h = dense(dn::Tensor({2, 3}));
  const bool dense_ok = dense.built() && h.shape() == dn::Shape{2, 4} && dense.count_params() == 16;
  std::printf("Dense(4) on %s: %s, %lld parameters: %s\n", dn::to_string(dn::Shape{2, 3}).c_str(),
              dn::to_string(h.shape()).c_str(), static_cast<long long>(dense.count_params()),
              dense_ok ? "ok" : "FAILED");
  failed += !dense_ok;

  std::printf("call_layer: %d failed\n", failed);
  return failed == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "call_layer: error: %s\n", e.what());
  return 1;
}
