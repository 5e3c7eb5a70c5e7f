// curand_reference.hpp: cuRAND's device API as the reference for dropnet's Philox mapping.
#pragma once

#include <cstdint>
#include <vector>

namespace dropnet::cuda_testing {

// Element i of the result is component i % 4 of curand_uniform4() after
// curand_init(seed, /*subsequence=*/step, /*offset=*/4 * (i / 4)): the documented draw behind mask
// element i of a dropout call at (seed, step). Computed on the GPU by cuRAND itself.
std::vector<float> curand_uniforms(std::uint64_t seed, std::uint64_t step, std::int64_t count);

}  // namespace dropnet::cuda_testing
