// isa.hpp: which x86 instruction set the CPU backend's hot loops run on, chosen at run time from one binary.
//
// The library is compiled for baseline x86-64 (SSE2), so that one build runs on any x86-64 machine. The hot
// loops carry their own versions for wider vectors and pick one when the process starts: the element-wise
// loops of dropout.cpp (Philox draw, keep bytes, mask) and optimizer.cpp (Adam, MaxNorm) through GCC's
// target_clones (DROPNET_ISA_CLONES below), whose resolver tests avx512f, then avx2; the small-C
// convolution (conv2d_small_c.cpp) through cpu_isa() below, which makes the same tests in the same order
// (so both pick the same path). cpu_isa_name() names it, for dropnet-bench.
#pragma once

namespace dropnet::backend::cpu {

enum class CpuIsa { Baseline, Avx2, Avx512 };

// The widest of AVX-512 (avx512f), AVX2 and baseline x86-64 this CPU and OS support (the OS must save the
// wide registers: __builtin_cpu_supports checks that too). Baseline on other architectures.
CpuIsa cpu_isa();

// The element-wise loops' three versions: GCC compiles a function marked [[DROPNET_ISA_CLONES]] once per
// target and picks one when the program loads (an ifunc whose resolver makes cpu_isa()'s tests). Only on
// non-template functions; a file whose clones evaluate kernels/*_math.hpp must be compiled with
// -ffp-contract=off (DROPNET_NO_CONTRACT_SOURCES in src/CMakeLists.txt): the avx512f clone has FMA, and
// GCC would otherwise contract a * b + c into one rounding where the GPU (nvcc --fmad=false) rounds twice.
#define DROPNET_ISA_CLONES gnu::target_clones("avx512f", "avx2", "default")

// "avx512", "avx2" or "baseline x86-64".
const char* cpu_isa_name(CpuIsa isa);
inline const char* cpu_isa_name() { return cpu_isa_name(cpu_isa()); }

// Whether this CPU can run code compiled for `isa` (tests run every path the machine has).
bool cpu_supports(CpuIsa isa);
// FMA3: every AVX-512 CPU has it, and AVX2 CPUs in practice; code compiled for "avx2,fma" checks it.
bool cpu_has_fma();

}  // namespace dropnet::backend::cpu
