// Philox4x32-10 against Random123's known answers and cuRAND's own host generator.
#include "support/catch.hpp"

#include <vector>

#include "kernels/dropout_math.hpp"
#include "kernels/philox.hpp"

#if DROPNET_TEST_WITH_CURAND
#include <curand.h>
#endif

using namespace dropnet::kernels;

TEST_CASE("Philox4x32-10 matches Random123's known-answer vectors", "[philox]") {
  struct Kat { PhiloxCounter c; PhiloxKey k; PhiloxBlock out; };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, {{0, 0}}, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, {{0xffffffff, 0xffffffff}},
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, {{0xa4093822, 0x299f31d0}},
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& kat : kats) {
    const PhiloxBlock got = philox4x32_10(kat.c, kat.k);
    for (int i = 0; i < 4; ++i) CHECK(got.w[i] == kat.out.w[i]);
  }
}

TEST_CASE("philox_block lays out (seed, subsequence, block) as curand_init does", "[philox]") {
  // curand_init(seed, subsequence, offset): key (lo, hi of seed), counter (offset/4 lo, hi, subseq lo, hi).
  const std::uint64_t seed = 0x0123456789ABCDEFull, subsequence = 0x1111222233334444ull, block = 0x55556666ull;
  const PhiloxBlock a = philox_block(seed, subsequence, block);
  const PhiloxBlock b = philox4x32_10({{0x55556666u, 0u, 0x33334444u, 0x11112222u}}, {{0x89ABCDEFu, 0x01234567u}});
  for (int i = 0; i < 4; ++i) CHECK(a.w[i] == b.w[i]);
}

TEST_CASE("uniform_from_bits maps words into 0 < u <= 1 as curand_uniform", "[philox]") {
  CHECK(uniform_from_bits(0u) == 1.1641532e-10f);          // 2^-33, never 0
  CHECK(uniform_from_bits(0xFFFFFFFFu) == 1.0f);           // rounds up to 1
  CHECK(uniform_from_bits(0x80000000u) == 0.5f);            // 0.5 + 2^-33 rounds to 0.5 in float
}

#if DROPNET_TEST_WITH_CURAND
namespace {
void curand_ok(curandStatus_t s) { REQUIRE(s == CURAND_STATUS_SUCCESS); }
}  // namespace

TEST_CASE("Philox matches cuRAND's host generator, words and uniforms", "[philox][curand]") {
  // A fresh host generator with seed s < 2^32 returns block j = subsequence j at offset 0 (j < 65536).
  for (unsigned long long seed : {0ull, 5ull, 123456789ull}) {
    constexpr std::size_t blocks = 2048;
    curandGenerator_t gen;
    curand_ok(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10));
    curand_ok(curandSetPseudoRandomGeneratorSeed(gen, seed));
    std::vector<unsigned int> words(4 * blocks);
    curand_ok(curandGenerate(gen, words.data(), words.size()));
    curand_ok(curandDestroyGenerator(gen));

    curand_ok(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10));
    curand_ok(curandSetPseudoRandomGeneratorSeed(gen, seed));
    std::vector<float> uniforms(4 * blocks);
    curand_ok(curandGenerateUniform(gen, uniforms.data(), uniforms.size()));
    curand_ok(curandDestroyGenerator(gen));

    std::size_t word_mismatches = 0, uniform_mismatches = 0;
    for (std::size_t j = 0; j < blocks; ++j) {
      const PhiloxBlock b = philox_block(seed, /*subsequence=*/j, /*block=*/0);
      for (int i = 0; i < 4; ++i) {
        word_mismatches += b.w[i] != words[4 * j + i];
        uniform_mismatches += uniform_from_bits(b.w[i]) != uniforms[4 * j + i];
      }
    }
    INFO("seed " << seed);
    CHECK(word_mismatches == 0);
    CHECK(uniform_mismatches == 0);
  }
}

TEST_CASE("dropout masks are cuRAND's uniforms compared with keep_prob", "[philox][curand][dropout]") {
  // The mask of step j, elements 0..3 reads the block curand gives as its j-th block for this seed.
  const unsigned long long seed = 77;
  curandGenerator_t gen;
  curand_ok(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10));
  curand_ok(curandSetPseudoRandomGeneratorSeed(gen, seed));
  std::vector<float> u(4 * 512);
  curand_ok(curandGenerateUniform(gen, u.data(), u.size()));
  curand_ok(curandDestroyGenerator(gen));
  const float keep_prob = dropout_keep_prob(0.5f);
  for (std::uint64_t step = 0; step < 512; ++step)
    for (std::uint64_t i = 0; i < 4; ++i)
      REQUIRE(dropout_keep_at(seed, step, i, keep_prob) == (u[4 * step + i] < keep_prob));
}
#endif
