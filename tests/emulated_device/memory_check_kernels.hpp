// memory_check_kernels.hpp: launchers of the kernels that test the emulated device's memcheck and
// initcheck (memory_check_kernels.cu; memory_check.hpp has the rules). Each queues its kernel on `stream`.
#pragma once

#include <cstdint>

namespace dropnet::emulated::testing {

// out[i] = in[i + offset] for i in [0, n): offset 1 reads one element past the end of an n-element `in`,
// offset -1 one before its start.
void shifted_copy(const float* in, float* out, std::int64_t n, std::int64_t offset, void* stream);
// p[i - 1] = value for i in [0, n): the write one element before the start.
void shifted_fill(float* p, std::int64_t n, float value, void* stream);
// p[0] += 1 by one thread of each of `blocks` blocks: a plain += (a race between blocks) or atomicAdd.
void count_blocks(float* p, int blocks, bool atomic, void* stream);
// out[i] = max(in[i], 0) as a ReLU computes it (a NaN input gives 0: the comparison absorbs it).
void relu(const float* in, float* out, std::int64_t n, void* stream);

}  // namespace dropnet::emulated::testing
