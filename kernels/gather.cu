// gather.cu: builds a batch from a dataset that already lives on the GPU: dst row r = src row index[r].
// The float version serves Tensor datasets; the uint8 version reads CIFAR-10 pixels kept on the GPU as
// bytes (4x less memory than floats) and scales them on the fly, so no host-to-device copy of images
// happens per step, only the batch's indices.
#include "kernels/launch.cuh"
#include "kernels/launchers.hpp"

namespace dropnet::kernels {
namespace {

__global__ void gather_rows_kernel(const float* src, const std::int64_t* index, float* dst, std::int64_t rows,
                                   std::int64_t row_size) {
  DROPNET_GRID_STRIDE(i, rows * row_size) {
    const std::int64_t r = i / row_size, c = i - r * row_size;
    dst[i] = src[index[r] * row_size + c];
  }
}

// Rows whose size is a multiple of 4 with 16-byte aligned rows: one float4 per thread.
__global__ void gather_rows_vec4_kernel(const float4* src, const std::int64_t* index, float4* dst, std::int64_t rows,
                                        std::int64_t row_quads) {
  DROPNET_GRID_STRIDE(i, rows * row_quads) {
    const std::int64_t r = i / row_quads, c = i - r * row_quads;
    dst[i] = src[index[r] * row_quads + c];
  }
}

__global__ void gather_rows_u8_kernel(const std::uint8_t* src, const std::int64_t* index, float* dst,
                                      std::int64_t rows, std::int64_t row_size, float scale) {
  DROPNET_GRID_STRIDE(i, rows * row_size) {
    const std::int64_t r = i / row_size, c = i - r * row_size;
    dst[i] = static_cast<float>(src[index[r] * row_size + c]) * scale;
  }
}

// Four bytes per thread (rows a multiple of 4 bytes, 4-byte aligned), written as one float4.
__global__ void gather_rows_u8x4_kernel(const uchar4* src, const std::int64_t* index, float4* dst, std::int64_t rows,
                                        std::int64_t row_quads, float scale) {
  DROPNET_GRID_STRIDE(i, rows * row_quads) {
    const std::int64_t r = i / row_quads, c = i - r * row_quads;
    const uchar4 b = src[index[r] * row_quads + c];
    dst[i] = make_float4(b.x * scale, b.y * scale, b.z * scale, b.w * scale);
  }
}

}  // namespace

void launch_gather_rows(const float* src, const std::int64_t* index, float* dst, std::size_t rows,
                        std::size_t row_size, void* stream) {
  const auto r = static_cast<std::int64_t>(rows);
  if (row_size % 4 == 0 && detail::aligned16(src) && detail::aligned16(dst)) {
    detail::launch_linear("gather_rows_vec4_kernel", gather_rows_vec4_kernel, rows * row_size / 4, stream,
                          reinterpret_cast<const float4*>(src), index, reinterpret_cast<float4*>(dst), r,
                          static_cast<std::int64_t>(row_size / 4));
  } else {
    detail::launch_linear("gather_rows_kernel", gather_rows_kernel, rows * row_size, stream, src, index, dst, r,
                          static_cast<std::int64_t>(row_size));
  }
}

void launch_gather_rows_u8(const std::uint8_t* src, const std::int64_t* index, float* dst, std::size_t rows,
                           std::size_t row_size, float scale, void* stream) {
  const auto r = static_cast<std::int64_t>(rows);
  if (row_size % 4 == 0 && reinterpret_cast<std::uintptr_t>(src) % 4 == 0 && detail::aligned16(dst)) {
    detail::launch_linear("gather_rows_u8x4_kernel", gather_rows_u8x4_kernel, rows * row_size / 4, stream,
                          reinterpret_cast<const uchar4*>(src), index, reinterpret_cast<float4*>(dst), r,
                          static_cast<std::int64_t>(row_size / 4), scale);
  } else {
    detail::launch_linear("gather_rows_u8_kernel", gather_rows_u8_kernel, rows * row_size, stream, src, index, dst, r,
                          static_cast<std::int64_t>(row_size), scale);
  }
}

}  // namespace dropnet::kernels
