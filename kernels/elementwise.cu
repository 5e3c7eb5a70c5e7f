// elementwise.cu: fill, bias, ReLU, row softmax, transpose and NHWC pad/crop: the small kernels around
// cuDNN and cuBLAS (ops they do not fuse for us, or layout changes they need).
#include <cfloat>

#include "kernels/launch.cuh"
#include "kernels/activation_math.hpp"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

__global__ void fill_kernel(float* p, std::int64_t n, float value) {
  DROPNET_GRID_STRIDE(i, n) { p[i] = value; }
}

__global__ void add_bias_kernel(float* y, const float* b, std::int64_t n, std::int64_t cols) {
  DROPNET_GRID_STRIDE(i, n) { y[i] += b[i % cols]; }
}

__global__ void relu_forward_kernel(const float* z, float* y, std::int64_t n) {
  DROPNET_GRID_STRIDE(i, n) {
    y[i] = relu_forward(z[i]);
  }
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dz, std::int64_t n) {
  DROPNET_GRID_STRIDE(i, n) { dz[i] = relu_backward(y[i], dy[i]); }
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

constexpr int kWarpsPerBlock = detail::kBlock / 32;

// One warp per row: row_math.hpp's lanes, the math activation_math.hpp's. Lane l owns columns l, l + 32, ...
// (so in-place is safe: a lane only rewrites what it
// read itself, after the warp-wide reductions).
__global__ void softmax_forward_kernel(const float* z, float* y, std::int64_t rows, std::int64_t cols) {
  const int lane = threadIdx.x % 32;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; r < rows;
       r += warps) {
    const float* zr = z + r * cols;
    float* yr = y + r * cols;
    float m = RowLowest<float>::value;
    for (std::int64_t c = lane; c < cols; c += 32) m = fmaxf(m, zr[c]);
    m = warp_max(m);
    float s = 0.0f;
    for (std::int64_t c = lane; c < cols; c += 32) s += softmax_term(zr[c], m);
    s = warp_sum(s);
    for (std::int64_t c = lane; c < cols; c += 32) yr[c] = softmax_term(zr[c], m) / s;
  }
}

__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dz, std::int64_t rows,
                                        std::int64_t cols) {
  const int lane = threadIdx.x % 32;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; r < rows;
       r += warps) {
    const float* yr = y + r * cols;
    const float* dyr = dy + r * cols;
    float* dzr = dz + r * cols;
    float dot = 0.0f;
    for (std::int64_t c = lane; c < cols; c += 32) dot += dyr[c] * yr[c];
    dot = warp_sum(dot);
    for (std::int64_t c = lane; c < cols; c += 32) dzr[c] = softmax_backward(yr[c], dyr[c], dot);
  }
}

// 32x32 tiles through shared memory (the +1 column keeps the column reads free of bank conflicts), so
// both the reads of src and the writes of dst are coalesced.
constexpr int kTile = 32;
__global__ void transpose_kernel(const float* src, float* dst, std::int64_t rows, std::int64_t cols) {
  __shared__ float tile[kTile][kTile + 1];
  const std::int64_t c0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  // grid.y is capped at 65535: row tiles beyond it are taken in a grid-stride loop.
  for (std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * kTile; r0 < rows;
       r0 += static_cast<std::int64_t>(gridDim.y) * kTile) {
    for (int dy = threadIdx.y; dy < kTile; dy += blockDim.y) {
      const std::int64_t r = r0 + dy, c = c0 + threadIdx.x;
      if (r < rows && c < cols) tile[dy][threadIdx.x] = src[r * cols + c];
    }
    __syncthreads();
    for (int dy = threadIdx.y; dy < kTile; dy += blockDim.y) {
      const std::int64_t c = c0 + dy, r = r0 + threadIdx.x;  // dst row c, column r
      if (r < rows && c < cols) dst[c * rows + r] = tile[threadIdx.x][dy];
    }
    __syncthreads();  // the tile is refilled by the next iteration
  }
}

__global__ void pad_nhwc_kernel(const float* src, float* dst, PadGeometry g, float fill) {
  const std::int64_t total = g.n * g.ph * g.pw * g.c;
  DROPNET_GRID_STRIDE(i, total) {
    const std::int64_t ch = i % g.c;
    std::int64_t rest = i / g.c;
    const std::int64_t x = rest % g.pw - g.left;
    rest /= g.pw;
    const std::int64_t y = rest % g.ph - g.top;
    const std::int64_t n = rest / g.ph;
    dst[i] = (y >= 0 && y < g.h && x >= 0 && x < g.w) ? src[((n * g.h + y) * g.w + x) * g.c + ch] : fill;
  }
}

__global__ void crop_nhwc_kernel(const float* src, float* dst, PadGeometry g) {
  const std::int64_t total = g.n * g.h * g.w * g.c;
  DROPNET_GRID_STRIDE(i, total) {
    const std::int64_t ch = i % g.c;
    std::int64_t rest = i / g.c;
    const std::int64_t x = rest % g.w;
    rest /= g.w;
    const std::int64_t y = rest % g.h;
    const std::int64_t n = rest / g.h;
    // Rows/columns past the padded extent were never read by any window: their gradient is 0.
    const std::int64_t py = y + g.top, px = x + g.left;
    dst[i] = (py < g.ph && px < g.pw) ? src[((n * g.ph + py) * g.pw + px) * g.c + ch] : 0.0f;
  }
}

// Rows per launch for the warp-per-row kernels: one warp per row up to the grid cap.
std::size_t row_threads(std::size_t rows) { return rows * 32; }

}  // namespace

void launch_fill(float* p, std::size_t n, float value, void* stream) {
  DROPNET_LAUNCH_LINEAR(fill_kernel, n, stream, p, static_cast<std::int64_t>(n), value);
}

void launch_add_bias(float* y, const float* b, std::size_t rows, std::size_t cols, void* stream) {
  if (cols == 0) return;
  const std::size_t n = rows * cols;
  DROPNET_LAUNCH_LINEAR(add_bias_kernel, n, stream, y, b, static_cast<std::int64_t>(n),
                        static_cast<std::int64_t>(cols));
}

void launch_relu_forward(const float* z, float* y, std::size_t n, void* stream) {
  DROPNET_LAUNCH_LINEAR(relu_forward_kernel, n, stream, z, y, static_cast<std::int64_t>(n));
}

void launch_relu_backward(const float* y, const float* dy, float* dz, std::size_t n, void* stream) {
  DROPNET_LAUNCH_LINEAR(relu_backward_kernel, n, stream, y, dy, dz,
                        static_cast<std::int64_t>(n));
}

void launch_softmax_forward(const float* z, float* y, std::size_t rows, std::size_t cols, void* stream) {
  if (cols == 0) return;
  DROPNET_LAUNCH_LINEAR(softmax_forward_kernel, row_threads(rows), stream, z, y,
                        static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols));
}

void launch_softmax_backward(const float* y, const float* dy, float* dz, std::size_t rows, std::size_t cols,
                             void* stream) {
  if (cols == 0) return;
  DROPNET_LAUNCH_LINEAR(softmax_backward_kernel, row_threads(rows), stream, y, dy, dz,
                        static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols));
}

void launch_transpose(const float* src, float* dst, std::size_t rows, std::size_t cols, void* stream) {
  if (rows == 0 || cols == 0) return;
  const dim3 block(kTile, 8);
  const std::size_t row_tiles = (rows + kTile - 1) / kTile;
  const dim3 grid(static_cast<unsigned>((cols + kTile - 1) / kTile),
                  static_cast<unsigned>(row_tiles < 65535 ? row_tiles : 65535));
  DROPNET_LAUNCH(transpose_kernel, grid, block, stream, src, dst, static_cast<std::int64_t>(rows),
                 static_cast<std::int64_t>(cols));
}

void launch_pad_nhwc(const float* src, float* dst, const PadGeometry& g, float fill, void* stream) {
  DROPNET_LAUNCH_LINEAR(pad_nhwc_kernel, static_cast<std::size_t>(g.n * g.ph * g.pw * g.c), stream,
                        src, dst, g, fill);
}

void launch_crop_nhwc(const float* src, float* dst, const PadGeometry& g, void* stream) {
  DROPNET_LAUNCH_LINEAR(crop_nhwc_kernel, static_cast<std::size_t>(g.n * g.h * g.w * g.c), stream,
                        src, dst, g);
}

}  // namespace dropnet::kernels
