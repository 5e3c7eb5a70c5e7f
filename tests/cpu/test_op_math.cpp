// The shared per-element math of kernels/*_math.hpp as the CPU runs it, and the shared preconditions of
// backend/op_checks.hpp as the CPU backend applies them (the CUDA suite checks the GPU against the CPU).
#include "support/catch.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include "backend/backend.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/tensor.hpp"
#include "kernels/dropout_math.hpp"
#include "kernels/maxnorm_math.hpp"
#include "kernels/row_math.hpp"
#include "kernels/softmax_xent_math.hpp"

using namespace dropnet;

namespace {

// A CPU backend context of its own for the op tests (models make theirs at compile).
backend::Backend& cpu() {
  static const std::unique_ptr<backend::Backend> context = backend::make_backend(Device::CPU);
  return *context;
}

// A warp of 32 lanes, each with its own value, reduced by the kernels' loop
// `for (o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(~0u, v, o)`, every lane at once.
std::vector<float> warp_butterfly(std::vector<float> v) {
  for (int o = 16; o > 0; o >>= 1) {
    const std::vector<float> before = v;
    for (int l = 0; l < 32; ++l) v[std::size_t(l)] = before[std::size_t(l)] + before[std::size_t(l ^ o)];
  }
  return v;
}

}  // namespace

TEST_CASE("row_lane_sum adds as a warp does: lanes by column stride 32, then the xor butterfly", "[math]") {
  for (std::int64_t cols : {1, 10, 31, 32, 33, 100, 1000}) {
    std::vector<float> x(static_cast<std::size_t>(cols));
    for (std::int64_t c = 0; c < cols; ++c) x[std::size_t(c)] = std::sin(float(c) * 1.7f) * std::pow(10.0f, float(c % 7) - 3.0f);
    std::vector<float> lanes(32, 0.0f);
    for (int l = 0; l < 32; ++l)
      for (std::int64_t c = l; c < cols; c += 32) lanes[std::size_t(l)] += x[std::size_t(c)];
    const std::vector<float> warp = warp_butterfly(lanes);
    for (int l = 1; l < 32; ++l) CHECK(warp[std::size_t(l)] == warp[0]);  // every lane ends with the same value
    const float sum = kernels::row_lane_sum<float>(cols, [&](std::int64_t c) { return x[std::size_t(c)]; });
    INFO("cols " << cols);
    CHECK(sum == warp[0]);
  }
}

TEST_CASE("row_first_max finds the first maximum, and none in a row without finite values", "[math]") {
  std::int64_t index = -1;
  const std::vector<float> tie = {1.0f, 3.0f, 2.0f, 3.0f};
  CHECK(kernels::row_first_max(tie.data(), 4, index) == 3.0f);
  CHECK(index == 1);
  std::vector<float> wide(70, 0.0f);
  wide[40] = 5.0f;
  wide[66] = 5.0f;  // lane 2 sees 66 before lane 8 sees 40: the smaller index still wins
  kernels::row_first_max(wide.data(), 70, index);
  CHECK(index == 40);
  const std::vector<float> nan = {NAN, -INFINITY};
  kernels::row_first_max(nan.data(), 2, index);
  CHECK(index == kernels::kNoColumn);
}

TEST_CASE("softmax cross-entropy of a batch adds its rows in the kernels' order", "[math][loss]") {
  // 1000 rows: 125 blocks of 8 warps, one row per warp.
  std::vector<float> row(1000);
  for (std::size_t r = 0; r < row.size(); ++r) row[r] = 1.0f + float(r % 13) * 1e-3f;
  const float total = kernels::xent_batch_sum<float>(row.size(), [&](std::size_t r) { return row[r]; });
  std::vector<float> slot(256, 0.0f);
  for (std::size_t b = 0; b < 125; ++b) {
    float block = 0.0f;
    for (std::size_t w = 0; w < 8; ++w) block += row[b * 8 + w];
    slot[b] = block;
  }
  for (std::size_t half = 128; half > 0; half /= 2)
    for (std::size_t k = 0; k < half; ++k) slot[k] += slot[k + half];
  CHECK(total == slot[0]);
  CHECK(std::abs(double(total) - 1000.0 - 1e-3 * 6.0 * 1000.0) < 0.1);
}

TEST_CASE("the dropout broadcast index drops the coordinates of noise_shape's ones", "[math][dropout]") {
  const std::vector<std::int64_t> in = {4, 6, 5, 7}, mask = {4, 1, 1, 7};
  const kernels::DropoutBroadcast b = kernels::dropout_broadcast(in.data(), mask.data(), 4);
  CHECK(b.broadcast);
  std::int64_t i = 0;
  for (std::int64_t n = 0; n < 4; ++n)
    for (std::int64_t y = 0; y < 6; ++y)
      for (std::int64_t x = 0; x < 5; ++x)
        for (std::int64_t c = 0; c < 7; ++c, ++i) REQUIRE(kernels::dropout_mask_index(i, b) == n * 7 + c);
  const kernels::DropoutBroadcast same = kernels::dropout_broadcast(in.data(), in.data(), 4);
  CHECK_FALSE(same.broadcast);
  CHECK(kernels::dropout_mask_index(777, same) == 777);
}

TEST_CASE("max-norm grouping merges contiguous dims: Conv2D's kernel is one run per filter", "[math][maxnorm]") {
  const std::vector<std::int64_t> shape = {3, 3, 8, 16};
  const bool reduced[] = {true, true, true, false};
  const kernels::MaxNormGrouping g = kernels::maxnorm_grouping(shape.data(), 4, reduced);
  CHECK(g.groups == 16);
  CHECK(g.group_size == 72);
  CHECK(g.kept_rank == 1);
  CHECK(g.kept_stride[0] == 1);
  CHECK(g.reduced_rank == 1);
  CHECK(g.reduced_stride[0] == 16);
  // Axis 1 of a (2, 3, 4) kernel: groups (a, c), 3 elements each, 4 apart.
  const std::vector<std::int64_t> s3 = {2, 3, 4};
  const bool middle[] = {false, true, false};
  const kernels::MaxNormGrouping m = kernels::maxnorm_grouping(s3.data(), 3, middle);
  CHECK(m.groups == 8);
  CHECK(m.group_size == 3);
  CHECK(kernels::maxnorm_offset(5, m.kept_rank, m.kept_extent, m.kept_stride) == 12 + 1);
  CHECK(kernels::maxnorm_offset(2, m.reduced_rank, m.reduced_extent, m.reduced_stride) == 8);
}

TEST_CASE("the CPU backend checks every op's arguments as the CUDA backend does", "[errors]") {
  Tensor x({2, 3}), y({2, 3}), small({2, 2});
  CHECK_THROWS_AS(cpu().activation_forward(ActivationKind::ReLU, x, small), InvalidArgument);
  CHECK_THROWS_AS(cpu().dropout_forward(x, y, {1, 0, 0.5f, x.shape(), {2, 2}}), InvalidArgument);   // no broadcast
  CHECK_THROWS_AS(cpu().dropout_forward(x, y, {1, 0, 1.5f, x.shape(), x.shape()}), InvalidArgument);  // rate > 1
  CHECK_THROWS_AS(cpu().dropout_forward(x, small, {1, 0, 0.5f, x.shape(), x.shape()}), InvalidArgument);
  Tensor stats({2});
  CHECK_THROWS_AS(cpu().softmax_cross_entropy(x, small, nullptr, 1.0f, stats), InvalidArgument);
  Tensor three({3});
  CHECK_THROWS_AS(cpu().softmax_cross_entropy(x, y, nullptr, 1.0f, three), InvalidArgument);
  std::vector<float> w(6);
  CHECK_THROWS_AS(cpu().maxnorm(w.data(), {{2, 3}, {2}, 1.0f}), InvalidArgument);
  const std::vector<std::int64_t> index = {0, 2};
  Tensor rows({2, 3});
  CHECK_THROWS_AS(cpu().gather_rows(x, index, rows), InvalidArgument);
  Tensor w_bad({4, 3}), out({2, 3});
  CHECK_THROWS_AS(cpu().dense_forward(x, w_bad, nullptr, out), InvalidArgument);
}
