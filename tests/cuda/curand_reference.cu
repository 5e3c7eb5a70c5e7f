// curand_reference.cu: the curand_init/curand_uniform4 draws that dropnet's masks must reproduce.
#include <cuda_runtime.h>
#include <curand_kernel.h>

#include "backend/cuda/cuda_check.hpp"
#include "curand_reference.hpp"

namespace dropnet::cuda_testing {
namespace {

__global__ void curand_uniforms_kernel(unsigned long long seed, unsigned long long step, long long count, float* out) {
  const long long block = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (4 * block >= count) return;
  curandStatePhilox4_32_10_t state;
  curand_init(seed, step, 4ull * static_cast<unsigned long long>(block), &state);
  const float4 u = curand_uniform4(&state);
  const float v[4] = {u.x, u.y, u.z, u.w};
  for (int c = 0; c < 4 && 4 * block + c < count; ++c) out[4 * block + c] = v[c];
}

}  // namespace

std::vector<float> curand_uniforms(std::uint64_t seed, std::uint64_t step, std::int64_t count) {
  std::vector<float> host(static_cast<std::size_t>(count));
  if (count == 0) return host;
  float* device = nullptr;
  CUDA_CHECK(cudaMalloc(&device, host.size() * sizeof(float)));
  const long long blocks = (count + 3) / 4;
  curand_uniforms_kernel<<<static_cast<unsigned>((blocks + 127) / 128), 128>>>(seed, step, count, device);
  CHECK_LAUNCH("curand_uniforms_kernel");
  const cudaError_t copied = cudaMemcpy(host.data(), device, host.size() * sizeof(float), cudaMemcpyDeviceToHost);
  CUDA_CHECK_LOG(cudaFree(device));
  CUDA_CHECK(copied);
  return host;
}

}  // namespace dropnet::cuda_testing
