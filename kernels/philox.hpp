// philox.hpp: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11),
// the counter-based generator behind cuRAND's CURAND_RNG_PSEUDO_PHILOX4_32_10 and curand_init().
//
// One call maps a 128-bit counter and a 64-bit key to four 32-bit words. The same function runs on the
// host (CPU backend, tests) and on the device (kernels/*.cu), so both backends draw identical numbers.
//
// cuRAND's mapping, which dropnet keeps so that a kernel may equally call curand_init():
//   curand_init(seed, subsequence, offset, &state) starts at
//     key     = (lo32(seed), hi32(seed))
//     counter = (lo32(offset / 4), hi32(offset / 4), lo32(subsequence), hi32(subsequence))
//   and curand_uniform4() then returns the four words of philox4x32_10(counter, key), each mapped by
//   uniform_from_bits() below. (Read from curand_philox4x32_x.h; checked in tests/cpu/test_philox.cpp
//   against Random123's known answers and cuRAND's host generator.)
#pragma once

#include <cstdint>

#include "hd.hpp"

namespace dropnet::kernels {

struct PhiloxCounter { std::uint32_t w[4]; };
struct PhiloxKey { std::uint32_t w[2]; };
struct PhiloxBlock { std::uint32_t w[4]; };

// One Philox round on the counter words (x0..x3) with the round key (k0, k1). philox4x32_10 is ten of
// them; the CPU backend also runs it on 64 counters side by side, which vectorises.
DROPNET_HD void philox_round(std::uint32_t& x0, std::uint32_t& x1, std::uint32_t& x2, std::uint32_t& x3,
                             std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  // The high and low halves of the 32x32 -> 64-bit products, written so that compilers see a high-part
  // multiply (which vectorises) and a plain one.
  const std::uint32_t hi0 = static_cast<std::uint32_t>((static_cast<std::uint64_t>(M0) * x0) >> 32), lo0 = M0 * x0;
  const std::uint32_t hi1 = static_cast<std::uint32_t>((static_cast<std::uint64_t>(M1) * x2) >> 32), lo1 = M1 * x2;
  const std::uint32_t y0 = hi1 ^ x1 ^ k0, y2 = hi0 ^ x3 ^ k1;
  x0 = y0;
  x1 = lo1;
  x2 = y2;
  x3 = lo0;
}

// Between rounds the key is bumped by the Weyl constants.
constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

DROPNET_HD PhiloxBlock philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  std::uint32_t x0 = c.w[0], x1 = c.w[1], x2 = c.w[2], x3 = c.w[3];
  std::uint32_t k0 = k.w[0], k1 = k.w[1];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    philox_round(x0, x1, x2, x3, k0, k1);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return PhiloxBlock{{x0, x1, x2, x3}};
}

DROPNET_HD PhiloxKey philox_key(std::uint64_t seed) {
  return PhiloxKey{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
}

// The block curand_init(seed, subsequence, 4 * block) followed by curand_uniform4() would use.
DROPNET_HD PhiloxBlock philox_block(std::uint64_t seed, std::uint64_t subsequence, std::uint64_t block) {
  const PhiloxCounter c{{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                         static_cast<std::uint32_t>(subsequence),
                         static_cast<std::uint32_t>(subsequence >> 32)}};
  return philox4x32_10(c, philox_key(seed));
}

// curand_uniform(): x * 2^-32 + 2^-33, in float, giving (0, 1]. The product by a power of two is exact,
// so a fused multiply-add on the device rounds exactly like the separate host operations.
DROPNET_HD float uniform_from_bits(std::uint32_t x) {
  constexpr float two_pow_m32 = 2.3283064e-10f;  // exactly 2^-32 once rounded to float
  return static_cast<float>(x) * two_pow_m32 + two_pow_m32 / 2.0f;
}

// splitmix64 (Steele et al.): derives independent 64-bit seeds from one seed and an index.
DROPNET_HD std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace dropnet::kernels
