// isa.cpp: the run-time instruction-set test of isa.hpp.
#include "backend/cpu/isa.hpp"

namespace dropnet::backend::cpu {

bool cpu_supports(CpuIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case CpuIsa::Baseline: return true;
    // The same tests as target_clones' resolver ("avx512f", "avx2").
    case CpuIsa::Avx2: return __builtin_cpu_supports("avx2");
    case CpuIsa::Avx512: return __builtin_cpu_supports("avx512f");
  }
  return false;
#else
  return isa == CpuIsa::Baseline;
#endif
}

bool cpu_has_fma() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

CpuIsa cpu_isa() {
  static const CpuIsa isa = cpu_supports(CpuIsa::Avx512) ? CpuIsa::Avx512
                            : cpu_supports(CpuIsa::Avx2) ? CpuIsa::Avx2
                                                         : CpuIsa::Baseline;
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Baseline: break;
  }
  return "baseline x86-64";
}

}  // namespace dropnet::backend::cpu
