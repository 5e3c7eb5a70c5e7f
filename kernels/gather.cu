// gather.cu: builds a batch from a dataset that already lives on the GPU. gather_rows: dst row r = src row
// index[r] of a float Tensor (evaluate, predict, train_on_batch).
//
// gather_batch (fit's step) reads the data set as floats or as bytes (CIFAR-10 pixels, 4x less memory) and
// even the batch's indices on the device: rows order[*batch * batch_size + r], with
// *batch the step state's batch (StepHeader::batch), so one recorded launch gathers whichever batch it
// replays. Its bytes become floats by kernels/data_math.hpp's unit_from_byte, as on the CPU and in the
// loaders: the same bits.
#include "kernels/launch.cuh"
#include "kernels/data_math.hpp"
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

// ---- gather_batch --------------------------------------------------------------------------------

// Dataset row of batch row r.
__device__ __forceinline__ std::int64_t batch_row(const std::int64_t* order, std::int64_t first, std::int64_t r) {
  return order[first + r];
}

// x rows of floats; kQuads: x_row % 4 == 0 with 16-byte aligned rows, one float4 per thread.
template <bool kQuads>
__global__ void gather_batch_x_float(const float* x, const std::int64_t* order, const std::int64_t* batch,
                                     std::int64_t batch_size, std::int64_t rows, std::int64_t x_row, float* bx) {
  const std::int64_t first = *batch * batch_size;
  const std::int64_t width = kQuads ? x_row / 4 : x_row;
  DROPNET_GRID_STRIDE(i, rows * width) {
    const std::int64_t r = i / width, c = i - r * width;
    const std::int64_t src = batch_row(order, first, r) * width + c;
    if (kQuads) reinterpret_cast<float4*>(bx)[i] = reinterpret_cast<const float4*>(x)[src];
    else bx[i] = x[src];
  }
}

// x rows of bytes; kQuads: x_row % 4 == 0, 4-byte aligned bytes and 16-byte aligned bx, four per thread.
template <bool kQuads>
__global__ void gather_batch_x_bytes(const std::uint8_t* x, const std::int64_t* order, const std::int64_t* batch,
                                     std::int64_t batch_size, std::int64_t rows, std::int64_t x_row, float* bx) {
  const std::int64_t first = *batch * batch_size;
  const std::int64_t width = kQuads ? x_row / 4 : x_row;
  DROPNET_GRID_STRIDE(i, rows * width) {
    const std::int64_t r = i / width, c = i - r * width;
    const std::int64_t src = batch_row(order, first, r) * width + c;
    if (kQuads) {
      const uchar4 b = reinterpret_cast<const uchar4*>(x)[src];
      reinterpret_cast<float4*>(bx)[i] =
          make_float4(unit_from_byte(b.x), unit_from_byte(b.y), unit_from_byte(b.z), unit_from_byte(b.w));
    } else {
      bx[i] = unit_from_byte(x[src]);
    }
  }
}

// y rows: copies of float rows, or one-hot rows from class bytes.
__global__ void gather_batch_y(const float* y_float, const std::uint8_t* y_class, const std::int64_t* order,
                               const std::int64_t* batch, std::int64_t batch_size, std::int64_t rows,
                               std::int64_t classes, float* by) {
  const std::int64_t first = *batch * batch_size;
  DROPNET_GRID_STRIDE(i, rows * classes) {
    const std::int64_t r = i / classes, c = i - r * classes;
    const std::int64_t row = batch_row(order, first, r);
    if (y_class != nullptr) by[i] = static_cast<std::int64_t>(y_class[row]) == c ? 1.0f : 0.0f;
    else by[i] = y_float[row * classes + c];
  }
}

}  // namespace

void launch_gather_batch(const GatherBatchLaunch& call, void* stream) {
  if (call.rows <= 0) return;
  const auto rows = static_cast<std::size_t>(call.rows);
  const auto x_row = static_cast<std::size_t>(call.x_row);
  const bool quads = x_row % 4 == 0 && detail::aligned16(call.bx);
  if (call.x_bytes != nullptr) {
    if (quads && reinterpret_cast<std::uintptr_t>(call.x_bytes) % 4 == 0)
      DROPNET_LAUNCH_LINEAR(gather_batch_x_bytes<true>, rows * x_row / 4, stream,
                            call.x_bytes, call.order, call.batch, call.batch_size, call.rows, call.x_row, call.bx);
    else
      DROPNET_LAUNCH_LINEAR(gather_batch_x_bytes<false>, rows * x_row, stream,
                            call.x_bytes, call.order, call.batch, call.batch_size, call.rows, call.x_row, call.bx);
  } else {
    if (quads && detail::aligned16(call.x_float))
      DROPNET_LAUNCH_LINEAR(gather_batch_x_float<true>, rows * x_row / 4, stream,
                            call.x_float, call.order, call.batch, call.batch_size, call.rows, call.x_row, call.bx);
    else
      DROPNET_LAUNCH_LINEAR(gather_batch_x_float<false>, rows * x_row, stream,
                            call.x_float, call.order, call.batch, call.batch_size, call.rows, call.x_row, call.bx);
  }
  DROPNET_LAUNCH_LINEAR(gather_batch_y, rows * static_cast<std::size_t>(call.classes), stream,
                        call.y_float, call.y_class, call.order, call.batch, call.batch_size, call.rows, call.classes, call.by);
}

void launch_gather_rows(const float* src, const std::int64_t* index, float* dst, std::size_t rows,
                        std::size_t row_size, void* stream) {
  const auto r = static_cast<std::int64_t>(rows);
  if (row_size % 4 == 0 && detail::aligned16(src) && detail::aligned16(dst)) {
    DROPNET_LAUNCH_LINEAR(gather_rows_vec4_kernel, rows * row_size / 4, stream,
                          reinterpret_cast<const float4*>(src), index, reinterpret_cast<float4*>(dst), r,
                          static_cast<std::int64_t>(row_size / 4));
  } else {
    DROPNET_LAUNCH_LINEAR(gather_rows_kernel, rows * row_size, stream, src, index, dst, r,
                          static_cast<std::int64_t>(row_size));
  }
}

}  // namespace dropnet::kernels
