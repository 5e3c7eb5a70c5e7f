// Every op's backward against central differences, in double precision (the CPU ops are templates).
// Each check uses L = sum(G * f(inputs)) for a fixed random G, so dL/d(out) = G.
#include "support/catch.hpp"

#include <functional>

#include "backend/cpu/ops.hpp"
#include "support/testing.hpp"

using namespace dropnet;
using namespace dropnet::backend;
using Vec = std::vector<double>;

namespace {

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Compares `analytic` with the central difference of loss() with respect to each element of `x`.
void check_gradient(const char* what, Vec& x, const Vec& analytic, const std::function<double()>& loss) {
  const double h = 1e-6;
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = loss();
    x[i] = keep - h;
    const double down = loss();
    x[i] = keep;
    const double numeric = (up - down) / (2 * h);
    worst = std::max(worst, std::abs(numeric - analytic[i]) / (1e-7 + 1e-6 * std::abs(numeric)));
  }
  INFO(what << ": worst |numeric - analytic| / (1e-7 + 1e-6 |numeric|) = " << worst);
  CHECK(worst <= 1.0);
}

ConvGeometry conv_geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t kh,
                           std::int64_t kw, std::int64_t k, std::int64_t s, bool same) {
  const auto gy = axis_geometry(h, kh, s, same), gx = axis_geometry(w, kw, s, same);
  return {n, h, w, c, kh, kw, k, s, s, gy.pad_before, gx.pad_before, gy.out, gx.out};
}

}  // namespace

TEST_CASE("Conv2D backward matches central differences", "[gradient][conv]") {
  struct Case { std::int64_t n, h, w, c, kh, kw, k, s; bool same; };
  const Case cases[] = {{2, 7, 6, 3, 3, 3, 4, 1, false}, {2, 7, 9, 2, 3, 2, 3, 2, true},
                        {1, 5, 5, 3, 2, 2, 2, 2, false}, {2, 6, 5, 2, 3, 3, 2, 1, true}};
  for (const Case& c : cases) {
    const ConvGeometry g = conv_geometry(c.n, c.h, c.w, c.c, c.kh, c.kw, c.k, c.s, c.same);
    Vec x = testing::uniform<double>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, 1);
    Vec w = testing::uniform<double>(std::size_t(g.kh * g.kw * g.c * g.k), -1, 1, 2);
    Vec b = testing::uniform<double>(std::size_t(g.k), -1, 1, 3);
    const Vec G = testing::uniform<double>(std::size_t(g.n * g.oh * g.ow * g.k), -1, 1, 4);
    Vec y(G.size()), dx(x.size()), dw(w.size()), db(b.size());
    const auto loss = [&] {
      cpu::conv2d_forward(x.data(), w.data(), b.data(), y.data(), g);
      return dot(y, G);
    };
    cpu::conv2d_backward(x.data(), w.data(), G.data(), dx.data(), dw.data(), db.data(), g);
    INFO("case n=" << c.n << " h=" << c.h << " w=" << c.w << " k=" << c.kh << "x" << c.kw << " s=" << c.s
                   << (c.same ? " same" : " valid"));
    check_gradient("dx", x, dx, loss);
    check_gradient("dw", w, dw, loss);
    check_gradient("db", b, db, loss);
  }
}

TEST_CASE("MaxPooling2D backward matches central differences", "[gradient][pool]") {
  struct Case { std::int64_t ph, s; bool same; };
  for (const Case& c : {Case{2, 2, false}, Case{3, 2, true}, Case{2, 1, false}}) {
    const auto gy = axis_geometry(7, c.ph, c.s, c.same), gx = axis_geometry(6, c.ph, c.s, c.same);
    const PoolGeometry g{2, 7, 6, 3, c.ph, c.ph, c.s, c.s, gy.pad_before, gx.pad_before, gy.out, gx.out};
    Vec x = testing::uniform<double>(std::size_t(2 * 7 * 6 * 3), -1, 1, 5);  // continuous: no ties
    const Vec G = testing::uniform<double>(std::size_t(g.n * g.oh * g.ow * g.c), -1, 1, 6);
    Vec y(G.size()), dx(x.size());
    cpu::maxpool2d_forward(x.data(), y.data(), g);
    cpu::maxpool2d_backward(x.data(), y.data(), G.data(), dx.data(), g);
    INFO("pool " << c.ph << " stride " << c.s << (c.same ? " same" : " valid"));
    check_gradient("dx", x, dx, [&] {
      cpu::maxpool2d_forward(x.data(), y.data(), g);
      return dot(y, G);
    });
  }
}

TEST_CASE("Dense backward matches central differences", "[gradient][dense]") {
  const std::int64_t n = 3, in = 7, out = 5;
  Vec x = testing::uniform<double>(std::size_t(n * in), -1, 1, 7);
  Vec w = testing::uniform<double>(std::size_t(in * out), -1, 1, 8);
  Vec b = testing::uniform<double>(std::size_t(out), -1, 1, 9);
  const Vec G = testing::uniform<double>(std::size_t(n * out), -1, 1, 10);
  Vec y(G.size()), dx(x.size()), dw(w.size()), db(b.size());
  const auto loss = [&] {
    cpu::dense_forward(x.data(), w.data(), b.data(), y.data(), n, in, out);
    return dot(y, G);
  };
  cpu::dense_backward(x.data(), w.data(), G.data(), dx.data(), dw.data(), db.data(), n, in, out);
  check_gradient("dx", x, dx, loss);
  check_gradient("dw", w, dw, loss);
  check_gradient("db", b, db, loss);
}

TEST_CASE("Activation backward matches central differences", "[gradient][activation]") {
  const std::int64_t rows = 4, cols = 6;
  for (ActivationKind kind : {ActivationKind::ReLU, ActivationKind::Softmax, ActivationKind::Linear}) {
    Vec z = testing::uniform<double>(std::size_t(rows * cols), 0.1, 2.0, 11);
    for (std::size_t i = 0; i < z.size(); i += 2) z[i] = -z[i];  // |z| >= 0.1: away from relu's kink
    const Vec G = testing::uniform<double>(z.size(), -1, 1, 12);
    Vec y(z.size()), dz(z.size());
    cpu::activation_forward(kind, z.data(), y.data(), rows, cols);
    cpu::activation_backward(kind, y.data(), G.data(), dz.data(), rows, cols);
    INFO("activation " << int(kind));
    check_gradient("dz", z, dz, [&] {
      cpu::activation_forward(kind, z.data(), y.data(), rows, cols);
      return dot(y, G);
    });
  }
}

TEST_CASE("Softmax cross-entropy gradient matches central differences", "[gradient][loss]") {
  const std::int64_t rows = 5, cols = 10;
  Vec z = testing::uniform<double>(std::size_t(rows * cols), -3, 3, 13);
  Vec t(z.size(), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) t[std::size_t(r * cols + (r * 3) % cols)] = 1.0;
  const double scale = 1.0 / double(rows);
  Vec dz(z.size());
  double loss_sum = 0, correct = 0;
  cpu::softmax_cross_entropy(z.data(), t.data(), dz.data(), scale, rows, cols, loss_sum, correct);
  check_gradient("dz", z, dz, [&] {
    double l = 0, c = 0;
    cpu::softmax_cross_entropy<double>(z.data(), t.data(), nullptr, scale, rows, cols, l, c);
    return l * scale;
  });
}

TEST_CASE("Dropout backward matches central differences", "[gradient][dropout]") {
  const Shape shape{2, 3, 4, 5};
  Vec x = testing::uniform<double>(std::size_t(element_count(shape)), -1, 1, 14);
  const Vec G = testing::uniform<double>(x.size(), -1, 1, 15);
  const DropoutCall call{21, 4, 0.35f, shape, {2, 1, 4, 5}};
  Vec y(x.size()), dx(x.size());
  cpu::dropout_apply(G.data(), dx.data(), call);
  check_gradient("dx", x, dx, [&] {
    cpu::dropout_apply(x.data(), y.data(), call);
    return dot(y, G);
  });
}
