// The layer ops (Conv2D, MaxPooling2D, Dense, activations) on the GPU against the CPU backend, forward
// and backward, on odd shapes, with NaN-filled outputs. Float32 throughout: the CUDA backend's default
// keeps TF32 off in cuDNN (CUDNN_FMA_MATH) and cuBLAS (CUBLAS_DEFAULT_MATH), so 1e-5 relative holds.
#include <optional>
#include <string>

#include "cuda_test_support.hpp"
#include "dropnet/errors.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

struct ConvCase {
  std::int64_t n, h, w, c, kh, kw, k, sh, sw;
  bool same, bias;
};

backend::ConvGeometry conv_geometry(const ConvCase& p) {
  const auto gy = backend::axis_geometry(p.h, p.kh, p.sh, p.same);
  const auto gx = backend::axis_geometry(p.w, p.kw, p.sw, p.same);
  return {p.n, p.h, p.w, p.c, p.kh, p.kw, p.k, p.sh, p.sw, gy.pad_before, gx.pad_before, gy.out, gx.out};
}

std::string describe(const ConvCase& p) {
  return "x (" + std::to_string(p.n) + "," + std::to_string(p.h) + "," + std::to_string(p.w) + "," +
         std::to_string(p.c) + ") kernel " + std::to_string(p.kh) + "x" + std::to_string(p.kw) + "->" +
         std::to_string(p.k) + " stride " + std::to_string(p.sh) + "x" + std::to_string(p.sw) +
         (p.same ? " same" : " valid") + (p.bias ? " bias" : " no bias");
}

void check_conv(const ConvCase& p, std::uint64_t seed, backend::Backend& be = gpu()) {
  const backend::ConvGeometry g = conv_geometry(p);
  const Tensor x = host_random({g.n, g.h, g.w, g.c}, seed);
  const Tensor w = host_random({g.kh, g.kw, g.c, g.k}, seed + 1, -0.5, 0.5);
  const Tensor b = host_random({g.k}, seed + 2);
  const Tensor dy = host_random({g.n, g.oh, g.ow, g.k}, seed + 3);
  const Tensor xd = x.to(Device::CUDA), wd = w.to(Device::CUDA), bd = b.to(Device::CUDA), dyd = dy.to(Device::CUDA);

  Tensor y_ref({g.n, g.oh, g.ow, g.k});
  cpu().conv2d_forward(x, w, p.bias ? &b : nullptr, y_ref, g);
  Tensor y = device_sentinel({g.n, g.oh, g.ow, g.k});
  be.conv2d_forward(xd, wd, p.bias ? &bd : nullptr, y, g);
  be.synchronize();
  expect_close(y, y_ref, "conv2d forward, " + describe(p));

  Tensor dx_ref(x.shape()), dw_ref(w.shape()), db_ref(b.shape());
  cpu().conv2d_backward(x, w, dy, &dx_ref, dw_ref, p.bias ? &db_ref : nullptr, g);
  Tensor dx = device_sentinel(x.shape()), dw = device_sentinel(w.shape()), db = device_sentinel(b.shape());
  be.conv2d_backward(xd, wd, dyd, &dx, dw, p.bias ? &db : nullptr, g);
  be.synchronize();
  expect_close(dx, dx_ref, "conv2d dx, " + describe(p));
  expect_close(dw, dw_ref, "conv2d dw, " + describe(p));
  if (p.bias) expect_close(db, db_ref, "conv2d db, " + describe(p));

  // The first layer passes no dx.
  Tensor dw2 = device_sentinel(w.shape());
  be.conv2d_backward(xd, wd, dyd, nullptr, dw2, nullptr, g);
  be.synchronize();
  expect_close(dw2, dw_ref, "conv2d dw without dx, " + describe(p));
}

}  // namespace

TEST_CASE("conv2d matches the CPU backend", "[cuda][conv]") {
  const ConvCase cases[] = {
      {3, 9, 11, 5, 3, 3, 7, 1, 1, false, true},    // valid, odd everything
      {2, 10, 7, 3, 3, 3, 4, 1, 1, true, true},     // same, symmetric padding: cuDNN pads
      {2, 9, 8, 3, 3, 3, 5, 2, 2, true, false},     // same, stride 2: asymmetric padding done explicitly
      {1, 7, 9, 2, 2, 4, 3, 1, 1, true, true},      // same with even kernels: extra pad at the bottom/right
      {2, 13, 12, 4, 5, 3, 6, 3, 2, false, true},   // valid with strides that leave a remainder
      {5, 32, 32, 3, 3, 3, 64, 1, 1, false, true},  // the seed model's first layer, a small batch
  };
  std::uint64_t seed = 100;
  for (const ConvCase& p : cases) {
    SECTION(describe(p)) { check_conv(p, seed); }
    seed += 10;
  }
}

TEST_CASE("conv2d in deterministic mode is bit-reproducible and still matches the CPU", "[cuda][conv]") {
  // A context of its own with the setting: the shared test backend keeps its own.
  backend::cuda::CudaBackend det({.deterministic = true});
  REQUIRE(det.deterministic());
  REQUIRE_FALSE(gpu().deterministic());
  const ConvCase p{4, 15, 13, 8, 3, 3, 16, 1, 1, false, true};
  check_conv(p, 7, det);
  const backend::ConvGeometry g = conv_geometry(p);
  const Tensor x = host_random({g.n, g.h, g.w, g.c}, 1).to(Device::CUDA);
  const Tensor w = host_random({g.kh, g.kw, g.c, g.k}, 2).to(Device::CUDA);
  const Tensor dy = host_random({g.n, g.oh, g.ow, g.k}, 3).to(Device::CUDA);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    Tensor dx = device_sentinel(x.shape()), dw = device_sentinel(w.shape()), db = device_sentinel({g.k});
    det.conv2d_backward(x, w, dy, &dx, dw, &db, g);
    det.synchronize();
    std::vector<float> all = host_values(dx);
    for (float v : host_values(dw)) all.push_back(v);
    for (float v : host_values(db)) all.push_back(v);
    if (run == 0) first = all;
    else expect_identical(all, first, "deterministic conv2d backward, run " + std::to_string(run));
  }
  CHECK_FALSE(gpu().deterministic());
}

TEST_CASE("maxpool2d matches the CPU backend", "[cuda][pool]") {
  struct PoolCase {
    std::int64_t n, h, w, c, ph, pw, sh, sw;
    bool same;
  };
  const PoolCase cases[] = {
      {3, 9, 11, 5, 2, 2, 2, 2, false},  // odd sizes: the last row/column is dropped
      {2, 9, 11, 3, 2, 2, 2, 2, true},   // same: the last windows run past the edge
      {2, 10, 10, 4, 3, 3, 2, 2, true},  // overlapping windows, padding on both sides
      {1, 8, 7, 6, 3, 2, 1, 1, false},   // stride 1, overlapping
      {5, 30, 30, 64, 2, 2, 2, 2, false} // the seed model's first pooling
  };
  std::uint64_t seed = 500;
  for (const PoolCase& p : cases) {
    const auto gy = backend::axis_geometry(p.h, p.ph, p.sh, p.same);
    const auto gx = backend::axis_geometry(p.w, p.pw, p.sw, p.same);
    const backend::PoolGeometry g{p.n, p.h, p.w, p.c, p.ph, p.pw, p.sh, p.sw, gy.pad_before, gx.pad_before,
                                  gy.out, gx.out};
    const std::string what = "pool " + std::to_string(p.ph) + "x" + std::to_string(p.pw) + " stride " +
                             std::to_string(p.sh) + (p.same ? " same" : " valid") + " on " + std::to_string(p.h) +
                             "x" + std::to_string(p.w);
    // Continuous random values: no ties inside a window, where implementations may route differently.
    const Tensor x = host_random({g.n, g.h, g.w, g.c}, seed++);
    const Tensor dy = host_random({g.n, g.oh, g.ow, g.c}, seed++);
    Tensor y_ref({g.n, g.oh, g.ow, g.c}), dx_ref(x.shape());
    cpu().maxpool2d_forward(x, y_ref, g);
    cpu().maxpool2d_backward(x, y_ref, dy, dx_ref, g);
    const Tensor xd = x.to(Device::CUDA), dyd = dy.to(Device::CUDA);
    Tensor y = device_sentinel(y_ref.shape()), dx = device_sentinel(x.shape());
    gpu().maxpool2d_forward(xd, y, g);
    gpu().maxpool2d_backward(xd, y, dyd, dx, g);
    expect_identical(host_values(y), y_ref.to_vector(), what + " forward");
    expect_close(dx, dx_ref, what + " backward");
  }
}

TEST_CASE("dense matches the CPU backend", "[cuda][dense]") {
  struct DenseCase {
    std::int64_t n, in, out;
    bool bias, dx;
  };
  const DenseCase cases[] = {{7, 13, 5, true, true}, {1, 3, 1, true, true}, {33, 65, 17, false, true},
                             {250, 2304, 256, true, false}, {19, 256, 10, true, true}};
  std::uint64_t seed = 900;
  for (const DenseCase& p : cases) {
    const std::string what = "dense (" + std::to_string(p.n) + ", " + std::to_string(p.in) + ") -> " +
                             std::to_string(p.out) + (p.bias ? " bias" : "") + (p.dx ? " dx" : "");
    const Tensor x = host_random({p.n, p.in}, seed++), w = host_random({p.in, p.out}, seed++, -0.3, 0.3);
    const Tensor b = host_random({p.out}, seed++), dy = host_random({p.n, p.out}, seed++);
    Tensor y_ref({p.n, p.out}), dx_ref(x.shape()), dw_ref(w.shape()), db_ref(b.shape());
    cpu().dense_forward(x, w, p.bias ? &b : nullptr, y_ref);
    cpu().dense_backward(x, w, dy, p.dx ? &dx_ref : nullptr, dw_ref, p.bias ? &db_ref : nullptr);
    const Tensor xd = x.to(Device::CUDA), wd = w.to(Device::CUDA), bd = b.to(Device::CUDA), dyd = dy.to(Device::CUDA);
    Tensor y = device_sentinel(y_ref.shape()), dx = device_sentinel(x.shape()), dw = device_sentinel(w.shape()),
           db = device_sentinel(b.shape());
    gpu().dense_forward(xd, wd, p.bias ? &bd : nullptr, y);
    gpu().dense_backward(xd, wd, dyd, p.dx ? &dx : nullptr, dw, p.bias ? &db : nullptr);
    expect_close(y, y_ref, what + " forward");
    if (p.dx) expect_close(dx, dx_ref, what + " dx");
    expect_close(dw, dw_ref, what + " dw");
    if (p.bias) expect_close(db, db_ref, what + " db");
  }
}

TEST_CASE("activations match the CPU backend, in place too", "[cuda][activation]") {
  const Shape shape{7, 3, 5, 11};  // softmax over the last axis of 11
  std::uint64_t seed = 1300;
  for (ActivationKind kind : {ActivationKind::Linear, ActivationKind::ReLU, ActivationKind::Softmax}) {
    const std::string what = kind == ActivationKind::Linear ? "linear" : kind == ActivationKind::ReLU ? "relu" : "softmax";
    const Tensor z = host_random(shape, seed++, -3.0, 3.0), dy = host_random(shape, seed++);
    Tensor y_ref(shape), dz_ref(shape);
    cpu().activation_forward(kind, z, y_ref);
    cpu().activation_backward(kind, y_ref, dy, dz_ref);

    const Tensor zd = z.to(Device::CUDA), dyd = dy.to(Device::CUDA);
    Tensor y = device_sentinel(shape), dz = device_sentinel(shape);
    gpu().activation_forward(kind, zd, y);
    gpu().activation_backward(kind, y, dyd, dz);
    expect_close(y, y_ref, what + " forward");
    expect_close(dz, dz_ref, what + " backward");

    Tensor inplace = z.to(Device::CUDA);
    gpu().activation_forward(kind, inplace, inplace);
    expect_close(inplace, y_ref, what + " forward in place");
    Tensor grad = dy.to(Device::CUDA);
    gpu().activation_backward(kind, y, grad, grad);
    expect_close(grad, dz_ref, what + " backward in place");
  }
}

TEST_CASE("the CUDA backend rejects host tensors instead of faulting", "[cuda][errors]") {
  const Tensor x = host_random({2, 3}, 1), w = host_random({3, 4}, 2);
  Tensor y({2, 4}, Device::CUDA);
  CHECK_THROWS_AS(gpu().dense_forward(x, w.to(Device::CUDA), nullptr, y), InvalidArgument);
}
