// contracting_kernel.cu: the PTX check's own test subject (tests/ptx/check_ptx.py --self-test), never part
// of the library. y = a x + y / s: nvcc contracts the multiply-add into an fma unless -fmad=false, and
// --use_fast_math turns the division into an approximate one. The checker must fail on both and pass on
// the file compiled as the kernels that promise bit-identity are (kernels/adam.cu's flags).
#include <cstdint>

__global__ void axpy_div(float a, const float* x, float* y, float s, std::int64_t n) {
  const std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i] / s;
}
