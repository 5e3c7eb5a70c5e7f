// hd.hpp: the one macro that lets per-element math compile for both the host and the device.
#pragma once

#if defined(__CUDACC__)
#define DROPNET_HD __host__ __device__ __forceinline__
#else
#define DROPNET_HD inline
#endif
