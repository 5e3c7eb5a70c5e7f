// nvtx.hpp: NVTX ranges for a profiler's timeline (Nsight Systems: nsys profile --trace=cuda,nvtx ...).
// In a CUDA build, DROPNET_NVTX_RANGE(name) opens an NVTX 3 range that closes at the end of the enclosing
// scope; NVTX 3 is header-only (CUDA::nvtx3), and with no profiler attached each range costs one call
// through a pointer to an empty function. In a CPU-only build the macro expands to nothing, and its
// argument is not evaluated. Private to the library: no public header includes it.
#pragma once

#if DROPNET_WITH_CUDA
#include <nvtx3/nvToolsExt.h>

namespace dropnet::profiling {

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) noexcept { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace dropnet::profiling

#define DROPNET_NVTX_CONCAT2(a, b) a##b
#define DROPNET_NVTX_CONCAT(a, b) DROPNET_NVTX_CONCAT2(a, b)
#define DROPNET_NVTX_RANGE(name) \
  const ::dropnet::profiling::NvtxRange DROPNET_NVTX_CONCAT(dropnet_nvtx_range_, __LINE__)(name)
#else
#define DROPNET_NVTX_RANGE(name) static_cast<void>(0)
#endif
