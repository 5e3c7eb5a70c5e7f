// The Winograd convolutions (backend/cpu/winograd.cpp) against the direct convolution computed in double
// (conv2d_forward/backward<double>, which always take im2col + GEMM): forward, input gradient, weight and
// bias gradients, for F(2x2,3x3) and F(4x4,3x3), on odd sizes, "same" padding, batch 1 and channel counts
// that are not multiples of the vector width; results that do not depend on how the work is split over
// threads; and the dispatch rule of conv_path.hpp.
#include "support/catch.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <utility>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/conv2d_small_c.hpp"
#include "backend/cpu/conv_path.hpp"
#include "backend/cpu/ops.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/winograd.hpp"
#include "support/testing.hpp"

using namespace dropnet;
using backend::ConvGeometry;

namespace {

struct Shape3x3 {
  std::int64_t n, h, w, c, k;
  bool same;
};

ConvGeometry geometry(const Shape3x3& s) {
  const auto gy = backend::axis_geometry(s.h, 3, 1, s.same), gx = backend::axis_geometry(s.w, 3, 1, s.same);
  return {s.n, s.h, s.w, s.c, 3, 3, s.k, 1, 1, gy.pad_before, gx.pad_before, gy.out, gx.out};
}

std::string describe(const Shape3x3& s) {
  return "x (" + std::to_string(s.n) + "," + std::to_string(s.h) + "," + std::to_string(s.w) + "," +
         std::to_string(s.c) + ") -> " + std::to_string(s.k) + (s.same ? " same" : " valid");
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// max |a - ref| / max |ref|: the error relative to the tensor's scale (a sum of products that cancels to
// near 0 still carries the rounding of its large terms, so elementwise relative errors mean little).
// An element left unwritten (NaN, the outputs' fill) makes it infinite.
double relative_error(const std::vector<float>& a, const std::vector<double>& ref) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    diff = std::max(diff, std::abs(double(a[i]) - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return diff / scale;
}

struct Errors {
  double forward, input_grad, weight_grad, bias_grad;
};

// All four passes of one geometry with tile m (0: the path conv2d_forward/backward<float> take), against the
// double direct convolution.
Errors winograd_errors(const Shape3x3& s, int m, std::uint64_t seed,
                       backend::cpu::WinogradIsa isa = backend::cpu::WinogradIsa::Best) {
  const ConvGeometry g = geometry(s);
  const auto x = testing::uniform<float>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, seed, 0);
  const auto w = testing::uniform<float>(std::size_t(9 * g.c * g.k), -0.5, 0.5, seed, 1);
  const auto b = testing::uniform<float>(std::size_t(g.k), -1, 1, seed, 2);
  const auto dy = testing::uniform<float>(std::size_t(g.n * g.oh * g.ow * g.k), -1, 1, seed, 3);
  const auto xd = widen(x), wd = widen(w), bd = widen(b), dyd = widen(dy);
  std::vector<double> y_ref(dy.size()), dx_ref(x.size()), dw_ref(w.size()), db_ref(b.size());
  backend::cpu::conv2d_forward<double>(xd.data(), wd.data(), bd.data(), y_ref.data(), g);
  backend::cpu::conv2d_backward<double>(xd.data(), wd.data(), dyd.data(), dx_ref.data(), dw_ref.data(),
                                        db_ref.data(), g);
  // NaN-filled outputs: every element must be written.
  std::vector<float> y(dy.size(), NAN), dx(x.size(), NAN), dw(w.size(), NAN), db(b.size(), NAN);
  const unsigned threads = backend::cpu::cpu_threads();
  if (m == 0) {  // whatever conv2d_forward/backward<float> choose
    backend::cpu::conv2d_forward<float>(x.data(), w.data(), b.data(), y.data(), g);
    backend::cpu::conv2d_backward<float>(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), g);
  } else {
    backend::cpu::winograd_forward(x.data(), w.data(), b.data(), y.data(), g, m, threads, isa);
    backend::cpu::winograd_input_grad(dy.data(), w.data(), dx.data(), g, m, threads, isa);
    backend::cpu::winograd_weight_grad(x.data(), dy.data(), dw.data(), db.data(), g, m, threads, isa);
  }
  return {relative_error(y, y_ref), relative_error(dx, dx_ref), relative_error(dw, dw_ref),
          relative_error(db, db_ref)};
}

// Bounds on max |diff| / max |ref|, from the errors measured on these shapes and at the seed's batch of 250
// (docs/cpu-convolution.md): at most 1.7e-6 for F(2x2) (the direct float convolution: 6e-7) and 8.6e-6 for
// F(4x4), whose transforms multiply by up to 8 (and divide by 24), about one decimal digit more. The bounds
// leave a margin of 3.5x or more.
constexpr double kBound2 = 1e-5;
constexpr double kBound4 = 3e-5;

const Shape3x3 kShapes[] = {
    {8, 15, 15, 64, 64, false},  // the seed model's conv2d_1 (13x13 output), a small batch
    {3, 9, 11, 5, 3, false},     // 7x9 output, C = 5, K = 3
    {1, 5, 5, 17, 19, true},     // batch 1, 5x5 output, "same", channels not multiples of 16
    {2, 7, 9, 16, 33, true},     // 7x9 "same", K = 33 (two vectors and one lane)
    {2, 3, 3, 4, 5, false},      // one output position
    {2, 2, 3, 3, 6, true},       // "same" on an input smaller than any tile
    {2, 12, 12, 64, 64, true},   // "same" on a multiple of both tiles
};

// Each instruction set's compiled variant that this CPU runs (winograd.cpp compiles the tile work for
// AVX-512, AVX2 and the x86-64 baseline, each with its own vector width and register blocking).
std::vector<std::pair<backend::cpu::WinogradIsa, const char*>> supported_isas() {
  using backend::cpu::WinogradIsa;
  std::vector<std::pair<WinogradIsa, const char*>> out;
  for (auto [isa, name] : {std::pair{WinogradIsa::Avx512, "AVX-512"}, std::pair{WinogradIsa::Avx2, "AVX2"},
                           std::pair{WinogradIsa::Baseline, "baseline"}})
    if (backend::cpu::winograd_isa_supported(isa)) out.emplace_back(isa, name);
  return out;
}

}  // namespace

TEST_CASE("Winograd F(2x2,3x3) and F(4x4,3x3) match the direct convolution in double", "[conv][winograd]") {
  std::uint64_t seed = 40;
  const auto isas = supported_isas();
  REQUIRE_FALSE(isas.empty());
  for (const Shape3x3& s : kShapes) {
    for (int m : {2, 4}) {
      for (const auto& [isa, isa_name] : isas) {
        const Errors e = winograd_errors(s, m, seed++, isa);
        const double bound = m == 2 ? kBound2 : kBound4;
        INFO(describe(s) << ", F(" << m << "x" << m << ",3x3), " << isa_name << ": relative errors forward "
                         << e.forward << ", dx " << e.input_grad << ", dw " << e.weight_grad << ", db "
                         << e.bias_grad);
        CHECK(e.forward <= bound);
        CHECK(e.input_grad <= bound);
        CHECK(e.weight_grad <= bound);
        CHECK(e.bias_grad <= kBound2);  // db is a plain sum of dy whatever the tile
      }
    }
  }
}

// The errors docs/cpu-convolution.md quotes (run with -s to print them): every shape above and the seed
// model's conv2d_1 at its full batch, for both tiles, and for the float path that conv2d_forward/backward
// take in this process (DROPNET_CPU_CONV=direct shows the direct float convolution's own errors).
TEST_CASE("Winograd errors, printed", "[.][winograd-errors]") {
  std::vector<Shape3x3> shapes(std::begin(kShapes), std::end(kShapes));
  shapes.push_back({250, 15, 15, 64, 64, false});
  std::uint64_t seed = 900;
  for (const Shape3x3& s : shapes) {
    for (int m : {2, 4}) {
      const Errors e = winograd_errors(s, m, seed);
      std::printf("%-32s F(%dx%d,3x3): max|diff|/max|ref| forward %.2e, dx %.2e, dw %.2e, db %.2e\n",
                  describe(s).c_str(), m, m, e.forward, e.input_grad, e.weight_grad, e.bias_grad);
      const double bound = m == 2 ? kBound2 : kBound4;
      CHECK(e.forward <= bound);
      CHECK(e.input_grad <= bound);
      CHECK(e.weight_grad <= bound);
    }
    const Errors e = winograd_errors(s, 0, seed++);
    std::printf("%-32s dispatched float path:  forward %.2e, dx %.2e, dw %.2e, db %.2e\n", describe(s).c_str(),
                e.forward, e.input_grad, e.weight_grad, e.bias_grad);
  }
}

TEST_CASE("Winograd results do not depend on how the blocks are split over threads", "[conv][winograd]") {
  // Enough tiles for many blocks and weight-gradient chunks: F(2x2) 20 x 49 tiles, F(4x4) 20 x 16.
  const ConvGeometry g = geometry({20, 15, 15, 24, 40, false});
  const auto x = testing::uniform<float>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, 3, 0);
  const auto w = testing::uniform<float>(std::size_t(9 * g.c * g.k), -0.5, 0.5, 3, 1);
  const auto b = testing::uniform<float>(std::size_t(g.k), -1, 1, 3, 2);
  const auto dy = testing::uniform<float>(std::size_t(g.n * g.oh * g.ow * g.k), -1, 1, 3, 3);
  for (int m : {2, 4}) {
    auto run = [&](unsigned parts) {
      std::vector<float> y(dy.size()), dx(x.size()), dw(w.size()), db(b.size());
      backend::cpu::winograd_forward(x.data(), w.data(), b.data(), y.data(), g, m, parts);
      backend::cpu::winograd_input_grad(dy.data(), w.data(), dx.data(), g, m, parts);
      backend::cpu::winograd_weight_grad(x.data(), dy.data(), dw.data(), db.data(), g, m, parts);
      std::vector<float> all = y;
      for (const auto* v : {&dx, &dw, &db}) all.insert(all.end(), v->begin(), v->end());
      return all;
    };
    const std::vector<float> one = run(1);
    for (unsigned parts : {2u, 3u, 7u, 16u}) {
      const std::vector<float> other = run(parts);
      INFO("F(" << m << "x" << m << ",3x3), " << parts << " runs against 1");
      REQUIRE(other.size() == one.size());
      CHECK(std::memcmp(other.data(), one.data(), one.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("Conv2D on the CPU takes the path conv_path names, and that path's results", "[conv][winograd]") {
  using backend::cpu::ConvPass;
  const ConvGeometry first = geometry({4, 32, 32, 3, 64, false});   // the seed model's conv2d: C = 3
  const ConvGeometry second = geometry({4, 15, 15, 64, 64, false}); // its conv2d_1
  ConvGeometry strided = second;
  strided.sh = strided.sw = 2;
  strided.oh = strided.ow = 7;
  // Whatever DROPNET_CPU_CONV says, a strided convolution and double are direct.
  CHECK(std::string(backend::cpu::conv_path_name(strided, ConvPass::Forward)) == "direct");
  const char* forced = std::getenv("DROPNET_CPU_CONV");
  if (forced == nullptr || std::string(forced) == "auto") {
    auto path = [](const ConvGeometry& g, ConvPass pass) { return std::string(backend::cpu::conv_path_name(g, pass)); };
    // C < 8: the small-C kernels (forward and weight gradient) where the CPU has AVX2 or AVX-512, else direct;
    // never Winograd.
    const std::string few = backend::cpu::small_c_applies(first) ? "small-c" : "direct";
    CHECK(path(first, ConvPass::Forward) == few);
    CHECK(path(first, ConvPass::WeightGrad) == few);
    CHECK(path(first, ConvPass::InputGrad) == "direct");
    for (ConvPass pass : {ConvPass::Forward, ConvPass::InputGrad, ConvPass::WeightGrad})
      CHECK(path(second, pass) == "winograd4");  // 13x13 (dx: 15x15) grids: F(4x4) has 27% fewer products
    // 8x8 -> 6x6: both tiles need as many products there, and F(2x2) is cheaper; dx's grid is 8x8.
    const ConvGeometry small = geometry({4, 8, 8, 64, 64, false});
    CHECK(path(small, ConvPass::Forward) == "winograd2");
    CHECK(path(small, ConvPass::WeightGrad) == "winograd2");
    CHECK(path(small, ConvPass::InputGrad) == "winograd4");
    // The weight gradient's F(4x4) sums of 128 x 128 channels would not fit in the L2 cache.
    CHECK(path(geometry({4, 15, 15, 128, 128, false}), ConvPass::WeightGrad) == "winograd2");
    CHECK(path(geometry({4, 15, 15, 128, 128, false}), ConvPass::Forward) == "winograd4");
  }
  // conv2d_forward/backward<float> give exactly what the named paths give.
  const ConvGeometry& g = second;
  const auto x = testing::uniform<float>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, 5, 0);
  const auto w = testing::uniform<float>(std::size_t(9 * g.c * g.k), -0.5, 0.5, 5, 1);
  const auto b = testing::uniform<float>(std::size_t(g.k), -1, 1, 5, 2);
  const auto dy = testing::uniform<float>(std::size_t(g.n * g.oh * g.ow * g.k), -1, 1, 5, 3);
  std::vector<float> y(dy.size()), dx(x.size()), dw(w.size()), db(b.size());
  backend::cpu::conv2d_forward<float>(x.data(), w.data(), b.data(), y.data(), g);
  backend::cpu::conv2d_backward<float>(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), g);
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& e) {
    return a.size() == e.size() && std::memcmp(a.data(), e.data(), a.size() * sizeof(float)) == 0;
  };
  std::vector<float> y2(y.size()), dx2(dx.size()), dw2(dw.size()), db2(db.size());
  backend::cpu::conv2d_forward_on_path(x.data(), w.data(), b.data(), y2.data(), g,
                                       backend::cpu::conv_path(g, ConvPass::Forward));
  backend::cpu::conv2d_backward_on_paths(x.data(), w.data(), dy.data(), dx2.data(), dw2.data(), db2.data(), g,
                                         backend::cpu::conv_path(g, ConvPass::InputGrad),
                                         backend::cpu::conv_path(g, ConvPass::WeightGrad));
  CHECK(same_bits(y, y2));
  CHECK(same_bits(dx, dx2));
  CHECK(same_bits(dw, dw2));
  CHECK(same_bits(db, db2));
  // And without dx (the first layer's call), the weight gradient is the same.
  std::vector<float> dw3(dw.size()), db3(db.size());
  backend::cpu::conv2d_backward<float>(x.data(), w.data(), dy.data(), nullptr, dw3.data(), db3.data(), g);
  CHECK(same_bits(dw3, dw));
  CHECK(same_bits(db3, db));
}

TEST_CASE("Conv2D on any mix of direct and Winograd passes matches the double direct convolution",
          "[conv][winograd]") {
  using backend::cpu::ConvPath;
  const ConvPath paths[] = {ConvPath::Direct, ConvPath::Winograd2, ConvPath::Winograd4};
  // A Winograd geometry, and a strided one that every path must hand to the direct code.
  ConvGeometry strided = geometry({2, 9, 8, 8, 12, true});
  strided.sh = strided.sw = 2;
  strided.oh = 5;
  strided.ow = 4;
  strided.pad_top = strided.pad_left = 1;
  for (const ConvGeometry& g : {geometry({3, 9, 11, 16, 24, true}), strided}) {
    const auto x = testing::uniform<float>(std::size_t(g.n * g.h * g.w * g.c), -1, 1, 8, 0);
    const auto w = testing::uniform<float>(std::size_t(9 * g.c * g.k), -0.5, 0.5, 8, 1);
    const auto b = testing::uniform<float>(std::size_t(g.k), -1, 1, 8, 2);
    const auto dy = testing::uniform<float>(std::size_t(g.n * g.oh * g.ow * g.k), -1, 1, 8, 3);
    const auto xd = widen(x), wd = widen(w), bd = widen(b), dyd = widen(dy);
    std::vector<double> y_ref(dy.size()), dx_ref(x.size()), dw_ref(w.size()), db_ref(b.size());
    backend::cpu::conv2d_forward<double>(xd.data(), wd.data(), bd.data(), y_ref.data(), g);
    backend::cpu::conv2d_backward<double>(xd.data(), wd.data(), dyd.data(), dx_ref.data(), dw_ref.data(),
                                          db_ref.data(), g);
    for (ConvPath forward : paths) {
      std::vector<float> y(dy.size(), NAN);
      backend::cpu::conv2d_forward_on_path(x.data(), w.data(), b.data(), y.data(), g, forward);
      INFO("stride " << g.sh << ", forward path " << int(forward));
      CHECK(relative_error(y, y_ref) <= kBound4);
    }
    for (ConvPath dx_path : paths)
      for (ConvPath dw_path : paths) {
        std::vector<float> dx(x.size(), NAN), dw(w.size(), NAN), db(b.size(), NAN);
        backend::cpu::conv2d_backward_on_paths(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), g,
                                               dx_path, dw_path);
        INFO("stride " << g.sh << ", dx path " << int(dx_path) << ", dw path " << int(dw_path));
        CHECK(relative_error(dx, dx_ref) <= kBound4);
        CHECK(relative_error(dw, dw_ref) <= kBound4);
        CHECK(relative_error(db, db_ref) <= kBound2);
      }
  }
}
