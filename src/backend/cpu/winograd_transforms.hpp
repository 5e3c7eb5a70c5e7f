// winograd_transforms.hpp: the one-dimensional transforms of Winograd's minimal filtering algorithms
// F(2,3) and F(4,3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), written out
// term by term (a matrix product with constant coefficients would multiply by the zeros too).
//
// F(m,3) computes m outputs of a 3-tap correlation y_i = sum_j d_{i+j} g_j from alpha = m + 2 inputs as
// y = A^T [(G g) . (B^T d)]. Read the other way round (the trilinear form sum_i z_i y_i is symmetric in z
// and g), the same matrices compute F(3,m), the 3 taps of the correlation of d with an m-long "filter" z:
// w = G^T [(A z) . (B^T d)]. The weight gradient uses that form with dy tiles as z.
//
// Each function maps an array of points to an array of points, and is written once for any value type V:
// a float (one channel) or a vector of 16 channels (winograd_gemm.hpp's Lanes). Channels are innermost in
// NHWC, so a transform of 16 channels is the same arithmetic on one vector. winograd.cpp applies them to
// whole 2-D tiles, inlined into its target_clones functions, so the vectors are those of the running ISA.
// GCC contracts a * b + c into FMAs there (it does so by default in C++ mode when the target has FMA);
// that is fine for the convolution, whose rounding is tolerance-tested against the direct one, never
// compared bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dropnet::backend::cpu::winograd {

template <int M>
struct Transforms;

// F(2,3), interpolation points 0, 1, -1, infinity.
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
template <>
struct Transforms<2> {
  static constexpr int kAlpha = 4;

  // B^T d: 4 inputs -> 4 transformed values.
  template <typename V>
  [[gnu::always_inline]] static inline void input(const V (&d)[4], V (&o)[4]) {
    o[0] = d[0] - d[2];
    o[1] = d[1] + d[2];
    o[2] = d[2] - d[1];
    o[3] = d[1] - d[3];
  }
  // A^T m: 4 products -> 2 outputs.
  template <typename V>
  [[gnu::always_inline]] static inline void output(const V (&m)[4], V (&y)[2]) {
    y[0] = m[0] + m[1] + m[2];
    y[1] = m[1] - m[2] - m[3];
  }
  // G g: 3 kernel taps -> 4.
  template <typename V>
  [[gnu::always_inline]] static inline void kernel(const V (&g)[3], V (&u)[4]) {
    u[0] = g[0];
    u[1] = 0.5f * (g[0] + g[1] + g[2]);
    u[2] = 0.5f * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  }
  // A z: a 2-long dy "filter" -> 4 (F(3,2)'s filter transform).
  template <typename V>
  [[gnu::always_inline]] static inline void gradient(const V (&z)[2], V (&a)[4]) {
    a[0] = z[0];
    a[1] = z[0] + z[1];
    a[2] = z[0] - z[1];
    a[3] = -z[1];
  }
  // G^T s: 4 products -> the 3 kernel taps (F(3,2)'s output transform).
  template <typename V>
  [[gnu::always_inline]] static inline void taps(const V (&s)[4], V (&w)[3]) {
    const V half_sum = 0.5f * (s[1] + s[2]);
    w[0] = s[0] + half_sum;
    w[1] = 0.5f * (s[1] - s[2]);
    w[2] = half_sum + s[3];
  }
};

// F(4,3), interpolation points 0, 1, -1, 2, -2, infinity.
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
template <>
struct Transforms<4> {
  static constexpr int kAlpha = 6;

  template <typename V>
  [[gnu::always_inline]] static inline void input(const V (&d)[6], V (&o)[6]) {
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    o[1] = (d[3] + d[4]) - 4.0f * (d[1] + d[2]);
    o[2] = (d[4] - d[3]) + 4.0f * (d[1] - d[2]);
    o[3] = (d[4] - d[2]) + 2.0f * (d[3] - d[1]);
    o[4] = (d[4] - d[2]) - 2.0f * (d[3] - d[1]);
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
  }
  template <typename V>
  [[gnu::always_inline]] static inline void output(const V (&m)[6], V (&y)[4]) {
    const V sum12 = m[1] + m[2], diff12 = m[1] - m[2], sum34 = m[3] + m[4], diff34 = m[3] - m[4];
    y[0] = m[0] + sum12 + sum34;
    y[1] = diff12 + 2.0f * diff34;
    y[2] = sum12 + 4.0f * sum34;
    y[3] = diff12 + 8.0f * diff34 + m[5];
  }
  template <typename V>
  [[gnu::always_inline]] static inline void kernel(const V (&g)[3], V (&u)[6]) {
    const V outer = g[0] + g[2];
    u[0] = 0.25f * g[0];
    u[1] = (outer + g[1]) * (-1.0f / 6.0f);
    u[2] = (outer - g[1]) * (-1.0f / 6.0f);
    u[3] = g[0] * (1.0f / 24.0f) + g[1] * (1.0f / 12.0f) + g[2] * (1.0f / 6.0f);
    u[4] = g[0] * (1.0f / 24.0f) - g[1] * (1.0f / 12.0f) + g[2] * (1.0f / 6.0f);
    u[5] = g[2];
  }
  // A z, A = (A^T)^T: a 4-long dy "filter" -> 6.
  template <typename V>
  [[gnu::always_inline]] static inline void gradient(const V (&z)[4], V (&a)[6]) {
    const V even1 = z[0] + z[2], odd1 = z[1] + z[3], even2 = z[0] + 4.0f * z[2], odd2 = 2.0f * z[1] + 8.0f * z[3];
    a[0] = z[0];
    a[1] = even1 + odd1;
    a[2] = even1 - odd1;
    a[3] = even2 + odd2;
    a[4] = even2 - odd2;
    a[5] = z[3];
  }
  // G^T s: 6 products -> the 3 kernel taps.
  template <typename V>
  [[gnu::always_inline]] static inline void taps(const V (&s)[6], V (&w)[3]) {
    const V sum12 = s[1] + s[2], sum34 = s[3] + s[4];
    w[0] = 0.25f * s[0] - sum12 * (1.0f / 6.0f) + sum34 * (1.0f / 24.0f);
    w[1] = (s[2] - s[1]) * (1.0f / 6.0f) + (s[3] - s[4]) * (1.0f / 12.0f);
    w[2] = (sum34 - sum12) * (1.0f / 6.0f) + s[5];
  }
};

// ---- whole tiles --------------------------------------------------------------------------------------

template <typename V>
[[gnu::always_inline]] inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V>
[[gnu::always_inline]] inline void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// The 2-D transform out(p, q) = sum_ij L[p][i] in(i, j) L[q][j] of a 1-D transform L = fn (N points -> P):
// along the rows, then along the columns, in registers. load_point(i, j) reads point (i, j) of the input,
// store_point(p, q, value) takes the outputs; V is a vector of channels or a float (one channel).
template <int N, int P, typename V, typename Fn, typename Load, typename Store>
[[gnu::always_inline]] inline void transform_2d(Fn&& fn, Load&& load_point, Store&& store_point) {
  V rows[N][P];
  for (int i = 0; i < N; ++i) {
    V d[N];
    for (int j = 0; j < N; ++j) d[j] = load_point(i, j);
    fn(d, rows[i]);
  }
  for (int q = 0; q < P; ++q) {
    V d[N], o[P];
    for (int i = 0; i < N; ++i) d[i] = rows[i][q];
    fn(d, o);
    for (int p = 0; p < P; ++p) store_point(p, q, o[p]);
  }
}

// Calls fn.template operator()<T>(s) for the slices [s, s + width) of the channels [0, count) with T = V
// (width = V's floats), then for each remaining channel with T = float.
template <typename V, typename Fn>
[[gnu::always_inline]] inline void for_each_slice(std::int64_t count, Fn&& fn) {
  constexpr std::int64_t width = std::int64_t(sizeof(V) / sizeof(float));
  std::int64_t s = 0;
  for (; s + width <= count; s += width) fn.template operator()<V>(s);
  for (; s < count; ++s) fn.template operator()<float>(s);
}

}  // namespace dropnet::backend::cpu::winograd
