// isa.hpp: which x86 instruction set the CPU backend's hot loops run on, chosen at run time from one binary.
//
// The library is compiled for baseline x86-64 (SSE2), so that one build runs on any x86-64 machine. The hot
// loops carry their own versions for wider vectors and pick one when the process starts: loops marked
// with GCC's target_clones (dropout.cpp's Philox draw), whose resolver tests avx512f, then avx2; the
// small-C convolution (conv2d_small_c.cpp) through cpu_isa() below, which makes
// the same tests in the same order (so both pick the same path). cpu_isa_name() names it, for dropnet-bench.
#pragma once

namespace dropnet::backend::cpu {

enum class CpuIsa { Baseline, Avx2, Avx512 };

// The widest of AVX-512 (avx512f), AVX2 and baseline x86-64 this CPU and OS support (the OS must save the
// wide registers: __builtin_cpu_supports checks that too). Baseline on other architectures.
CpuIsa cpu_isa();

// "avx512", "avx2" or "baseline x86-64".
const char* cpu_isa_name(CpuIsa isa);
inline const char* cpu_isa_name() { return cpu_isa_name(cpu_isa()); }

// Whether this CPU can run code compiled for `isa` (tests run every path the machine has).
bool cpu_supports(CpuIsa isa);
// FMA3: every AVX-512 CPU has it, and AVX2 CPUs in practice; code compiled for "avx2,fma" checks it.
bool cpu_has_fma();

}  // namespace dropnet::backend::cpu
