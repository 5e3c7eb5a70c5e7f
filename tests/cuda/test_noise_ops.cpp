// test_noise_ops.cpp: GaussianDropout, GaussianNoise and AlphaDropout on the CUDA backend against the CPU
// backend, bit for bit: forward and backward with the step and the rate read from a slot in device memory
// (several steps, 0 and one near 2^64 included; odd sizes; misaligned pointers; AlphaDropout's noise_shape),
// the slot's rates 0 and 1, the normals themselves over 2^20 draws, and a recorded launch replayed at the
// next step. On the emulated device the kernels run as host C++: these results are not GPU results.
#include <cuda_runtime_api.h>

#include <limits>
#include <string>
#include <vector>

#include "cuda_test_support.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;
using Kind = backend::NoiseCall::Kind;

namespace {

// One StepSlot in device memory.
class DeviceSlot {
 public:
  explicit DeviceSlot(const backend::StepSlot& s) {
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&ptr_), sizeof s) == cudaSuccess);
    set(s);
  }
  ~DeviceSlot() { cudaFree(ptr_); }
  DeviceSlot(const DeviceSlot&) = delete;
  DeviceSlot& operator=(const DeviceSlot&) = delete;
  void set(const backend::StepSlot& s) {
    gpu().synchronize();
    REQUIRE(cudaMemcpy(ptr_, &s, sizeof s, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  const backend::StepSlot* get() const { return ptr_; }

 private:
  backend::StepSlot* ptr_ = nullptr;
};

const char* kind_name(Kind k) {
  return k == Kind::GaussianDropout ? "GaussianDropout" : k == Kind::GaussianNoise ? "GaussianNoise" : "AlphaDropout";
}

// Forward and backward of one call on both backends, the GPU's reading its slot from device memory; the
// call's own step and rate are wrong on purpose, so only the slot's can give the CPU's bits.
void expect_same(Kind kind, const Shape& shape, const Shape& mask, std::uint64_t step, float rate,
                 std::int64_t offset, const std::string& what) {
  const backend::StepSlot host_slot{step, 1, rate, kernels::constant_rate(rate)};
  const DeviceSlot slot(host_slot);
  backend::NoiseCall cpu_call{kind, 0x5EED5EEDull, step + 7, 0.77f, shape, mask};
  cpu_call.slot = &host_slot;
  backend::NoiseCall gpu_call = cpu_call;
  gpu_call.slot = slot.get();

  const Tensor x = host_random(shape, 5, -2.0, 2.0), dy = host_random(shape, 6);
  Tensor y_ref(shape), dx_ref(shape);
  cpu().noise_forward(x, y_ref, cpu_call);
  cpu().noise_backward(dy, dx_ref, cpu_call);

  const Tensor xd = device_copy_at(x, offset), dyd = device_copy_at(dy, offset);
  Tensor y = device_sentinel(shape), dx = device_sentinel(shape);
  gpu().noise_forward(xd, y, gpu_call);
  gpu().noise_backward(dyd, dx, gpu_call);
  expect_identical(host_values(y), y_ref.to_vector(), what + " forward");
  expect_identical(host_values(dx), dx_ref.to_vector(), what + " backward");
}

}  // namespace

TEST_CASE("noise ops on the CUDA backend match the CPU backend bit for bit, the slot in device memory", "[cuda][noise]") {
  const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max() - 1;
  const Shape odd{3, 5, 7, 3};
  for (Kind kind : {Kind::GaussianDropout, Kind::GaussianNoise, Kind::AlphaDropout}) {
    for (std::uint64_t step : {std::uint64_t{0}, std::uint64_t{44}, huge}) {
      for (std::int64_t offset : {0, 1}) {
        const std::string what = std::string(kind_name(kind)) + " step " + std::to_string(step) + " offset " +
                                 std::to_string(offset);
        expect_same(kind, odd, {}, step, 0.3f, offset, what + " shape " + to_string(odd));
        expect_same(kind, {4099}, {}, step, 0.45f, offset, what + " shape (4099)");
      }
    }
  }
  // AlphaDropout's noise_shape: one draw per (n, c), broadcast over rows and columns, and over the batch.
  for (const Shape& mask : {Shape{3, 1, 1, 3}, Shape{1, 5, 7, 1}, Shape{3, 5, 7, 3}})
    expect_same(Kind::AlphaDropout, odd, mask, 12, 0.25f, 1, "AlphaDropout mask " + to_string(mask));
}

TEST_CASE("noise ops on the CUDA backend: the slot's rate 0 and 1 and between", "[cuda][noise]") {
  const Shape shape{2, 9, 5};
  for (Kind kind : {Kind::GaussianDropout, Kind::GaussianNoise, Kind::AlphaDropout}) {
    for (float rate : {0.0f, 1.0f, 0.6f}) {
      const std::string what = std::string(kind_name(kind)) + " slot rate " + std::to_string(rate);
      expect_same(kind, shape, {}, 3, rate, 0, what);
      expect_same(kind, shape, kind == Kind::AlphaDropout ? Shape{2, 1, 5} : Shape{}, 3, rate, 1, what + " (mask)");
    }
  }
}

TEST_CASE("noise ops on the CUDA backend: 2^20 normals are the CPU's, and a recorded launch draws the replayed step's", "[cuda][noise]") {
  const Shape shape{std::int64_t{1} << 20};
  Tensor zeros(shape);
  zeros.fill(0.0f);
  const Tensor zd = zeros.to(Device::CUDA);
  backend::StepSlot host_slot{9, 1, 1.0f, kernels::constant_rate(1.0f)};
  DeviceSlot slot(host_slot);
  backend::NoiseCall cpu_call{Kind::GaussianNoise, 31337, 0, 1.0f, shape, {}};
  cpu_call.slot = &host_slot;
  backend::NoiseCall gpu_call = cpu_call;
  gpu_call.slot = slot.get();

  Tensor ref(shape);
  cpu().noise_forward(zeros, ref, cpu_call);  // y = fmaf(1, n, 0): the normals themselves
  Tensor y = device_sentinel(shape);
  gpu().noise_forward(zd, y, gpu_call);
  expect_identical(host_values(y), ref.to_vector(), "2^20 normals at step 9");

  std::unique_ptr<backend::Recording> recording = gpu().capture([&] { gpu().noise_forward(zd, y, gpu_call); });
  REQUIRE(recording != nullptr);
  for (std::uint64_t step : {10u, 11u}) {
    host_slot.step = step;  // what advance_step does on the device
    slot.set(host_slot);
    recording->replay();
    cpu().noise_forward(zeros, ref, cpu_call);
    expect_identical(host_values(y), ref.to_vector(), "replayed at step " + std::to_string(step));
  }
}
