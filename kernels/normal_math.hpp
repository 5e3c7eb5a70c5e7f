// normal_math.hpp: standard normal draws from Philox words, bit-identical on the CPU and the GPU.
//
// Which draw. Normal element i at (seed, step) comes from Philox block i / 4 of (seed, step), the block
// curand_init(seed, step, 4 * (i / 4)) + curand4() returns (kernels/philox.hpp): its words (w0, w1) give
// normals 4j and 4j + 1, (w2, w3) give 4j + 2 and 4j + 3, by Box–Muller:
//     r = sqrt(-2 ln u1),  theta = 2 pi u2,  (n_even, n_odd) = (r cos theta, r sin theta)
//     u1 = (w0 + 1/2) 2^-32            (in (0, 1): never 0 or 1, so ln u1 is finite and r > 0)
//     u2 = (q + x) / 4,  q = w1 >> 30 (the quadrant), x = (2b + 1) 2^-24 with b = the next 23 bits of w1
//
// Why not logf/sincosf. The CPU's libm and CUDA's libdevice implement logf, sinf and cosf differently:
// both are accurate to an ulp or two, but not the same in the last bit. Dropout-family draws must be the
// same bits on both backends (the CPU backend is the reference the CUDA backend is tested against, and a
// run must not change when it moves between them), so this header builds ln, sin and cos from operations
// that IEEE 754 defines to the bit and that both compilers emit as such:
//   * integer arithmetic, and int64 -> float conversion (round to nearest even on both);
//   * float +, -, *, / and sqrtf, correctly rounded (nvcc's defaults -prec-div=true -prec-sqrt=true; never
//     -use_fast_math);
//   * fmaf, one rounding on both: every multiply-add below is an explicit fmaf, none is left as a * b + c
//     for a compiler to fuse (or not) as it likes. As a second guard, the files that compile this header
//     for a backend do so without contraction: -ffp-contract=off for the host (src/CMakeLists.txt, and the
//     emulated device's copy of kernels/noise.cu) and --fmad=false for nvcc (src/backend/cuda/sources.cmake).
//
// ln u1. u1 = v 2^-33 with the odd integer v = 2 w0 + 1 < 2^33. Integer code finds e' with
// v = m 2^e', m in [sqrt(1/2), sqrt(2)) (the comparison with sqrt(2) is exact: v's top bits against
// floor(sqrt(2) 2^63)). Then ln u1 = (e' - 33) ln 2 + ln m with
//     ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ... + s^11/11),   s = (m - 1)/(m + 1) = (v - 2^e')/(v + 2^e')
// |s| <= 0.1716, so the series' remainder is below 2e-11 relative. s is formed from the exact integers
// v - 2^e' and v + 2^e' (each rounded once to float), which keeps ln u1's relative accuracy even as u1 -> 1
// (no cancellation in m - 1). ln 2 is split into ln2_hi (15 significant bits: k ln2_hi is exact for
// |k| <= 33) and ln2_lo. Measured over every float m in [sqrt(1/2), sqrt(2)) and 2^24 + 2^17 words w0
// against double precision: tests/cpu/test_normal_math.cpp (ln u1 within 2 ulp).
//
// sin and cos. The quadrant comes from the top 2 bits of w1 and is applied exactly (swap and negate); the
// angle within it, pi x / 2 with x = (2b + 1) 2^-24 (exact in float), is folded to x <= 1/2 (exactly:
// 1 - x is (2 (2^23 - 1 - b) + 1) 2^-24) and given to Taylor polynomials in x (coefficients
// (pi/2)^k / k!, rounded to float) through x^11 for sin and x^10 for cos: on x <= 1/2 their remainders are
// below 1e-11 and 2e-10. Horner with fmaf; measured within 2 ulp of double sin/cos over every x.
//
// r is sqrtf(-2 ln u1) and the normals r cos theta, r sin theta: single roundings. With 2^32 values of u1
// the largest |n| is sqrt(66 ln 2) = 6.76; the smallest r is 1.5e-5.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/hd.hpp"
#include "kernels/philox.hpp"

namespace dropnet::kernels {

// floor(log2(v)) for 0 < v < 2^63.
DROPNET_HD int normal_floor_log2(std::uint64_t v) {
  int e = 0;
  for (int shift = 32; shift > 0; shift >>= 1) {
    if (v >= (std::uint64_t(1) << shift)) {
      v >>= shift;
      e += shift;
    }
  }
  return e;
}

// ln m for m = (2^e' + d) / 2^e', given d = v - 2^e' and the denominator v + 2^e' as exact integers
// (|d| < 0.42 * 2^e'), i.e. 2 atanh(s) with s = d / (v + 2^e').
DROPNET_HD float normal_log_mantissa(std::int64_t d, std::int64_t sum) {
  const float s = static_cast<float>(d) / static_cast<float>(sum);
  const float z = s * s;
  float p = fmaf(z, 0x1.745d18p-4f, 0x1.c71c72p-4f);  // 1/11, 1/9
  p = fmaf(z, p, 0x1.24924ap-3f);                      // 1/7
  p = fmaf(z, p, 0x1.99999ap-3f);                      // 1/5
  p = fmaf(z, p, 0x1.555556p-2f);                      // 1/3
  const float t = s + s;                               // 2s, exact
  return fmaf(t, z * p, t);                            // 2s + 2s (s^2/3 + s^4/5 + ...)
}

// ln m for a float m in [sqrt(1/2), sqrt(2)) (m = (2^24 + d) / 2^24 exactly): what the tests measure.
DROPNET_HD float normal_log_mantissa(float m) {
  const auto scaled = static_cast<std::int64_t>(m * 16777216.0f);  // exact: m has 24 significant bits
  const std::int64_t one = std::int64_t(1) << 24;
  return normal_log_mantissa(scaled - one, scaled + one);
}

// ln u1 for u1 = (w + 1/2) 2^-32 (negative, finite).
DROPNET_HD float normal_log_uniform(std::uint32_t w) {
  const std::uint64_t v = 2 * std::uint64_t(w) + 1;  // u1 = v 2^-33, v odd, 1 <= v < 2^33
  int e = normal_floor_log2(v);                      // 2^e <= v < 2^(e+1)
  // v >= sqrt(2) 2^e  <=>  (v's bits with the top one at bit 63) > floor(sqrt(2) 2^63): sqrt(2) is irrational.
  constexpr std::uint64_t kSqrt2Top = 0xB504F333F9DE6484ull;
  if ((v << (63 - e)) > kSqrt2Top) ++e;              // now v = m 2^e, m in [sqrt(1/2), sqrt(2))
  const std::int64_t pow = std::int64_t(1) << e;
  const float ln_m = normal_log_mantissa(static_cast<std::int64_t>(v) - pow, static_cast<std::int64_t>(v) + pow);
  const float k = static_cast<float>(e - 33);        // in [-33, 0]
  constexpr float kLn2Hi = 0x1.62e4p-1f;             // 0.693145751953125: k * kLn2Hi is exact
  constexpr float kLn2Lo = 0x1.7f7d1cp-20f;          // ln 2 - kLn2Hi, rounded
  return fmaf(k, kLn2Hi, fmaf(k, kLn2Lo, ln_m));
}

struct SinCos {
  float sin, cos;
};

// sin and cos of pi x / 2 for x in [0, 1/2] (Taylor through x^11 and x^10, Horner in x^2).
DROPNET_HD SinCos normal_sincos_folded(float x) {
  const float z = x * x;
  float s = fmaf(z, -0x1.e3075p-19f, 0x1.507834p-13f);
  s = fmaf(z, s, -0x1.32d2ccp-8f);
  s = fmaf(z, s, 0x1.466bc6p-4f);
  s = fmaf(z, s, -0x1.4abbcep-1f);
  s = fmaf(z, s, 0x1.921fb6p+0f);                    // pi/2
  float c = fmaf(z, -0x1.a6d1f2p-16f, 0x1.e1f506p-11f);
  c = fmaf(z, c, -0x1.55d3c8p-6f);
  c = fmaf(z, c, 0x1.03c1f0p-2f);
  c = fmaf(z, c, -0x1.3bd3ccp+0f);
  return SinCos{x * s, fmaf(z, c, 1.0f)};
}

// sin and cos of pi x / 2 for x = (2b + 1) 2^-24, b < 2^23 (x in (0, 1)): folded to x <= 1/2 exactly.
DROPNET_HD SinCos normal_sincos_quarter(std::uint32_t b) {
  constexpr std::uint32_t kHalf = 1u << 22;
  const bool fold = b >= kHalf;                        // x > 1/2: sin(pi x/2) = cos(pi (1 - x)/2)
  const std::uint32_t bf = fold ? (2 * kHalf - 1 - b) : b;
  const float x = static_cast<float>(2 * bf + 1) * 0x1p-24f;
  const SinCos f = normal_sincos_folded(x);
  return fold ? SinCos{f.cos, f.sin} : f;
}

// cos and sin of theta = 2 pi u2 for the word w1 (see the header comment).
DROPNET_HD SinCos normal_sincos_word(std::uint32_t w) {
  const SinCos q = normal_sincos_quarter((w >> 7) & 0x7FFFFFu);
  switch (w >> 30) {                                   // theta = quadrant * pi/2 + phi
    case 0: return q;
    case 1: return SinCos{q.cos, -q.sin};              // sin = cos phi, cos = -sin phi
    case 2: return SinCos{-q.sin, -q.cos};
    default: return SinCos{-q.cos, q.sin};
  }
}

struct NormalPair {
  float first, second;  // r cos theta, r sin theta
};

// Box–Muller on two Philox words.
DROPNET_HD NormalPair normal_pair(std::uint32_t w0, std::uint32_t w1) {
  const float r = sqrtf(-2.0f * normal_log_uniform(w0));
  const SinCos t = normal_sincos_word(w1);
  return NormalPair{r * t.cos, r * t.sin};
}

// Component c (0..3) of the four normals of one Philox block (words w[0..3]).
DROPNET_HD float normal_component(std::uint32_t w0, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3, int c) {
  const NormalPair p = c < 2 ? normal_pair(w0, w1) : normal_pair(w2, w3);
  return (c & 1) == 0 ? p.first : p.second;
}

// Normal element i at (seed, step), by definition.
DROPNET_HD float normal_at(std::uint64_t seed, std::uint64_t step, std::uint64_t i) {
  const PhiloxBlock b = philox_block(seed, step, i / 4);
  return normal_component(b.w[0], b.w[1], b.w[2], b.w[3], static_cast<int>(i % 4));
}

}  // namespace dropnet::kernels
