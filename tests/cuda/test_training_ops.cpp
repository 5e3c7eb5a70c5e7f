// The ops on dropnet's own kernels against the CPU backend: dropout (bit-identical masks and values),
// softmax cross-entropy, Adam, max-norm and the gathers.
#include <numeric>
#include <string>

#include "cuda_test_support.hpp"
#include "kernels/adam_math.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

// Forward and backward of one dropout call on both backends; the CUDA results must equal the CPU's bit
// for bit (same mask from kernels/dropout_math.hpp, same IEEE division).
void check_dropout(const Shape& shape, const Shape& mask, std::uint64_t seed, std::uint64_t step, float rate,
                   std::int64_t offset = 0) {
  const std::string what = "dropout " + to_string(shape) + " mask " + to_string(mask) + " seed " +
                           std::to_string(seed) + " step " + std::to_string(step) + " rate " + std::to_string(rate) +
                           (offset != 0 ? " (misaligned view)" : "");
  const backend::DropoutCall call{seed, step, rate, shape, mask};
  const std::int64_t n = element_count(shape);
  const Tensor x = host_random(shape, seed + 11), dy = host_random(shape, seed + 12);
  Tensor y_ref(shape), dx_ref(shape);
  cpu().dropout_forward(x, y_ref, call);
  cpu().dropout_backward(dy, dx_ref, call);

  // `offset` > 0 runs the op on views that start `offset` floats into their storage, which takes the
  // kernel's scalar (not 16-byte) path.
  Tensor xs({n + offset}, Device::CUDA), dys({n + offset}, Device::CUDA);
  Tensor ys = device_sentinel({n + offset}), dxs = device_sentinel({n + offset});
  Tensor xd = xs.reshaped({n + offset}).rows(offset, n + offset).reshaped(shape);
  Tensor dyd = dys.reshaped({n + offset}).rows(offset, n + offset).reshaped(shape);
  Tensor y = ys.rows(offset, n + offset).reshaped(shape), dx = dxs.rows(offset, n + offset).reshaped(shape);
  xd.copy_from(x);
  dyd.copy_from(dy);
  gpu().dropout_forward(xd, y, call);
  gpu().dropout_backward(dyd, dx, call);
  expect_identical(host_values(y), y_ref.to_vector(), what + " forward");
  expect_identical(host_values(dx), dx_ref.to_vector(), what + " backward");
}

}  // namespace

TEST_CASE("dropout on the GPU is bit-identical to the CPU", "[cuda][dropout]") {
  SECTION("full masks, sizes around multiples of 4") {
    for (std::int64_t n : {1, 3, 4, 5, 1023, 4096, 100003}) check_dropout({n}, {n}, 1234, 0, 0.5f);
  }
  SECTION("NHWC activations, several steps and rates") {
    const Shape s{7, 13, 13, 5};
    for (std::uint64_t step : {0ull, 1ull, 77ull, (1ull << 33) + 5})
      for (float rate : {0.1f, 0.5f, 0.73f}) check_dropout(s, s, 99, step, rate);
  }
  SECTION("seeds above 2^32 use both key words") { check_dropout({5, 31}, {5, 31}, 0x123456789abcull, 3, 0.25f); }
  SECTION("misaligned views take the scalar path and still match") {
    check_dropout({3, 17, 5}, {3, 17, 5}, 5, 2, 0.5f, 1);
    check_dropout({1001}, {1001}, 5, 2, 0.4f, 3);
  }
  SECTION("noise_shape broadcast: spatial, per-example and per-feature masks") {
    check_dropout({4, 6, 5, 7}, {4, 1, 1, 7}, 21, 4, 0.5f);
    check_dropout({4, 6, 5, 7}, {4, 1, 1, 1}, 21, 4, 0.3f);
    check_dropout({4, 6, 5, 7}, {1, 6, 5, 7}, 21, 4, 0.6f);
    check_dropout({9, 1, 3}, {1, 1, 3}, 8, 0, 0.5f);
  }
}

TEST_CASE("softmax cross-entropy matches the CPU backend", "[cuda][loss]") {
  for (const auto& [rows, cols] : std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 1}, {7, 10}, {250, 10}, {33, 47}, {3000, 3}}) {
    const std::string what = "softmax_xent (" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
    const Tensor z = host_random({rows, cols}, 40 + rows, -6.0, 6.0);
    // One-hot targets, plus a few soft rows (rows of t sum to 1).
    std::vector<float> t(static_cast<std::size_t>(rows * cols), 0.0f);
    for (std::int64_t r = 0; r < rows; ++r) {
      if (r % 5 == 4 && cols > 1) {
        t[static_cast<std::size_t>(r * cols)] = 0.25f;
        t[static_cast<std::size_t>(r * cols + 1)] = 0.75f;
      } else {
        t[static_cast<std::size_t>(r * cols + (r * 7) % cols)] = 1.0f;
      }
    }
    const Tensor tt = Tensor::from_vector({rows, cols}, t);
    const float scale = 1.0f / static_cast<float>(rows);
    Tensor dz_ref({rows, cols}), stats_ref = Tensor::from_vector({2}, {0.5f, 2.0f});
    cpu().softmax_cross_entropy(z, tt, &dz_ref, scale, stats_ref);

    const Tensor zd = z.to(Device::CUDA), td = tt.to(Device::CUDA);
    Tensor dz = device_sentinel({rows, cols});
    Tensor stats = Tensor::from_vector({2}, {0.5f, 2.0f}).to(Device::CUDA);  // the op adds to stats
    gpu().softmax_cross_entropy(zd, td, &dz, scale, stats);
    expect_close(dz, dz_ref, what + " dz");
    expect_close(stats, stats_ref, what + " stats");
#if defined(DROPNET_CUDA_EMULATION)
    // Both backends run kernels/softmax_xent_math.hpp's expressions in the same order; on the emulated
    // device expf/logf are the host's too (and nothing contracts into an FMA), so the bits are the same.
    CHECK(host_values(dz) == dz_ref.to_vector());
    CHECK(host_values(stats) == stats_ref.to_vector());
#endif

    Tensor stats2 = Tensor::from_vector({2}, {0.0f, 0.0f}).to(Device::CUDA);
    gpu().softmax_cross_entropy(zd, td, nullptr, scale, stats2);  // evaluation: no gradient
    const auto s = host_values(stats2);
    const auto r = stats_ref.to_vector();
    expect_close(std::vector<float>{s[0] + 0.5f, s[1] + 2.0f}, r, what + " stats without dz");
  }
}

TEST_CASE("Adam matches the CPU backend over one arena", "[cuda][adam]") {
  for (std::int64_t offset : {0, 1}) {  // 1: misaligned pointers take the scalar path
    const std::int64_t n = 10007;
    const Tensor p = host_random({n}, 1), g = host_random({n}, 2), m = host_random({n}, 3, -0.1, 0.1),
                 v = host_random({n}, 4, 0.0, 0.01);
    Tensor p_ref = p.clone(), m_ref = m.clone(), v_ref = v.clone();
    const std::string what = offset ? "adam (misaligned)" : "adam";
    auto dev = [&](const Tensor& h) { return device_copy_at(h, offset); };
    Tensor pd = dev(p), gd = dev(g), md = dev(m), vd = dev(v);
    for (long long t = 1; t <= 3; ++t) {
      const kernels::AdamStep step = kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, t);
      cpu().adam_update(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), static_cast<std::size_t>(n), step);
      gpu().adam_update(pd.data(), gd.data(), md.data(), vd.data(), static_cast<std::size_t>(n), step);
    }
    expect_close(pd, p_ref, what + " params");
    expect_close(md, m_ref, what + " m");
    expect_close(vd, v_ref, what + " v");
  }
}

TEST_CASE("max-norm matches the CPU backend for Keras' axis forms", "[cuda][maxnorm]") {
  struct Case {
    Shape shape;
    std::vector<int> axes;
  };
  const Case cases[] = {{{37, 11}, {0}},             // Dense, one norm per unit (Keras' default)
                        {{37, 11}, {1}},             // Dense, one norm per input
                        {{3, 3, 5, 7}, {0, 1, 2}},   // Conv2D, one norm per filter
                        {{3, 3, 5, 7}, {0}},         // Conv2D with the default axis=0
                        {{3, 2, 5, 7}, {1, 3}},      // non-adjacent axes
                        {{3, 3, 5, 7}, {0, 1, 2, 3}},// one norm over everything
                        {{2304, 256}, {0}}};         // the seed model's hidden Dense
  std::uint64_t seed = 70;
  for (const Case& c : cases) {
    const std::string what = "maxnorm " + to_string(c.shape) + " axes size " + std::to_string(c.axes.size());
    // Values large enough that most groups exceed the limit and some do not.
    const Tensor w = host_random(c.shape, seed++, -1.0, 1.0);
    const backend::MaxNormCall call{c.shape, c.axes, 1.5f};
    Tensor w_ref = w.clone();
    cpu().maxnorm(w_ref.data(), call);
    Tensor wd = w.to(Device::CUDA);
    gpu().maxnorm(wd.data(), call);
    expect_close(wd, w_ref, what);
  }
}

TEST_CASE("gather_rows from host and device sources matches the CPU backend", "[cuda][gather]") {
  const Tensor src = host_random({50, 7, 3}, 5);  // rows of 21 floats (not a multiple of 4)
  const Tensor src4 = host_random({40, 8}, 6);    // rows of 8 floats: the vectorized path
  const std::vector<std::int64_t> index = {3, 49, 0, 0, 17, 22, 5};
  for (const Tensor* s : {&src, &src4}) {
    Shape dst_shape = s->shape();
    dst_shape[0] = static_cast<std::int64_t>(index.size());
    Tensor ref(dst_shape);
    std::vector<std::int64_t> idx = index;
    for (auto& i : idx) i %= s->dim(0);
    cpu().gather_rows(*s, idx, ref);
    Tensor from_host = device_sentinel(dst_shape);
    gpu().gather_rows(*s, idx, from_host);
    expect_identical(host_values(from_host), ref.to_vector(), "gather from host " + to_string(s->shape()));
    const Tensor sd = s->to(Device::CUDA);
    Tensor from_device = device_sentinel(dst_shape);
    gpu().gather_rows(sd, idx, from_device);
    expect_identical(host_values(from_device), ref.to_vector(), "gather on device " + to_string(s->shape()));
  }
}

