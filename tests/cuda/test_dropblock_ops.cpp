// DropBlock2D's and SpatialDropout's ops on the CUDA backend against the CPU backend, bit for bit: the step
// and the rate read from a slot in device memory (steps 0, 44 and a huge one; rates 0 and 1 from the slot),
// both DropBlock kernels (four channels per thread when C % 4 == 0, one element otherwise), odd sizes, and the
// channel-run dropout kernel behind SpatialDropout's masks (and the general broadcast kernel beside it). A
// recorded call replays with the slot's new step. On the emulated device these are the real kernels run as
// host code, not a GPU result.
#include <cuda_runtime_api.h>

#include <limits>
#include <string>
#include <vector>

#include "cuda_test_support.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

// One step-state slot in device memory.
class DeviceSlot {
 public:
  explicit DeviceSlot(const backend::StepSlot& s) {
    REQUIRE(cudaMalloc(&ptr_, sizeof(backend::StepSlot)) == cudaSuccess);
    set(s);
  }
  ~DeviceSlot() { cudaFree(ptr_); }
  DeviceSlot(const DeviceSlot&) = delete;
  DeviceSlot& operator=(const DeviceSlot&) = delete;
  void set(const backend::StepSlot& s) {
    gpu().synchronize();
    REQUIRE(cudaMemcpy(ptr_, &s, sizeof s, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  const backend::StepSlot* get() const { return static_cast<const backend::StepSlot*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

void check_dropblock(const Shape& shape, std::int64_t k, std::uint64_t step, float rate) {
  const std::string what = "DropBlock2D " + to_string(shape) + " block " + std::to_string(k) + " step " +
                           std::to_string(step) + " rate " + std::to_string(rate);
  const backend::StepSlot host_slot{step, 1, rate, kernels::constant_rate(rate)};
  const DeviceSlot slot(host_slot);
  backend::DropBlockCall cpu_call{31, 12345, 0.5f, k, shape};  // the call's own step and rate are wrong on purpose
  cpu_call.slot = &host_slot;
  backend::DropBlockCall gpu_call = cpu_call;
  gpu_call.slot = slot.get();
  const Tensor x = host_random(shape, 5), dy = host_random(shape, 6);
  Tensor y_ref(shape), dx_ref(shape);
  cpu().dropblock_forward(x, y_ref, cpu_call);
  cpu().dropblock_backward(dy, dx_ref, cpu_call);
  const Tensor xd = x.to(Device::CUDA), dyd = dy.to(Device::CUDA);
  Tensor y = device_sentinel(shape), dx = device_sentinel(shape);
  gpu().dropblock_forward(xd, y, gpu_call);
  gpu().dropblock_backward(dyd, dx, gpu_call);
  expect_identical(host_values(y), y_ref.to_vector(), what + " forward");
  expect_identical(host_values(dx), dx_ref.to_vector(), what + " backward");
  if (rate == 0.0f) CHECK(y_ref.to_vector() == x.to_vector());
  if (rate == 1.0f)
    for (float v : y_ref.to_vector()) REQUIRE(v == 0.0f);
}

void check_dropout(const Shape& shape, const Shape& mask, std::uint64_t step, float rate) {
  const std::string what = "dropout " + to_string(shape) + " mask " + to_string(mask) + " step " + std::to_string(step) +
                           " rate " + std::to_string(rate);
  const backend::StepSlot host_slot{step, 1, rate, kernels::constant_rate(rate)};
  const DeviceSlot slot(host_slot);
  backend::DropoutCall cpu_call{77, 3, 0.5f, shape, mask};
  cpu_call.slot = &host_slot;
  backend::DropoutCall gpu_call = cpu_call;
  gpu_call.slot = slot.get();
  const Tensor x = host_random(shape, 7), dy = host_random(shape, 8);
  Tensor y_ref(shape), dx_ref(shape);
  cpu().dropout_forward(x, y_ref, cpu_call);
  cpu().dropout_backward(dy, dx_ref, cpu_call);
  Tensor y = device_sentinel(shape), dx = device_sentinel(shape);
  gpu().dropout_forward(x.to(Device::CUDA), y, gpu_call);
  gpu().dropout_backward(dy.to(Device::CUDA), dx, gpu_call);
  expect_identical(host_values(y), y_ref.to_vector(), what + " forward");
  expect_identical(host_values(dx), dx_ref.to_vector(), what + " backward");
}

}  // namespace

TEST_CASE("DropBlock2D on the GPU is bit-identical to the CPU backend", "[cuda][dropblock]") {
  const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max() - 1;
  for (const std::uint64_t step : {std::uint64_t{0}, std::uint64_t{44}, huge}) {
    check_dropblock({3, 7, 9, 4}, 3, step, 0.4f);    // C % 4 == 0: four channels per thread
    check_dropblock({2, 11, 13, 6}, 5, step, 0.3f);  // odd sizes, one element per thread
  }
  check_dropblock({2, 5, 5, 8}, 5, 3, 0.5f);   // the block is the map: one seed per channel
  check_dropblock({2, 6, 5, 3}, 1, 3, 0.25f);  // block 1: plain dropout with DropBlock's scale
  check_dropblock({1, 3, 3, 2}, 3, 1, 0.9f);   // often nothing kept: zeros
}

TEST_CASE("DropBlock2D on the GPU reads rates 0 and 1 from the slot", "[cuda][dropblock]") {
  for (const float rate : {0.0f, 1.0f}) {
    check_dropblock({2, 6, 6, 4}, 3, 7, rate);
    check_dropblock({2, 6, 7, 3}, 2, 7, rate);
  }
}

TEST_CASE("DropBlock2D recorded once replays the slot's new step", "[cuda][dropblock]") {
  const Shape shape{2, 8, 8, 4};
  DeviceSlot slot({3, 1, 0.3f, kernels::constant_rate(0.3f)});
  backend::DropBlockCall call{13, 0, 0.3f, 3, shape};
  call.slot = slot.get();
  const Tensor x = host_random(shape, 9);
  const Tensor xd = x.to(Device::CUDA);
  Tensor y = device_sentinel(shape);
  gpu().dropblock_forward(xd, y, call);  // an ordinary first call, as fit's first step
  auto recording = gpu().capture([&] { gpu().dropblock_forward(xd, y, call); });
  REQUIRE(recording != nullptr);
  for (const std::uint64_t step : {std::uint64_t{4}, std::uint64_t{9}}) {
    const backend::StepSlot host_slot{step, 1, 0.3f, kernels::constant_rate(0.3f)};
    slot.set(host_slot);
    recording->replay();
    Tensor y_ref(shape);
    backend::DropBlockCall cpu_call = call;
    cpu_call.slot = &host_slot;
    cpu().dropblock_forward(x, y_ref, cpu_call);
    expect_identical(host_values(y), y_ref.to_vector(), "replayed DropBlock2D at step " + std::to_string(step));
  }
}

TEST_CASE("SpatialDropout's channel masks on the GPU are bit-identical to the CPU backend", "[cuda][spatial_dropout]") {
  const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max() - 1;
  for (const std::uint64_t step : {std::uint64_t{0}, std::uint64_t{44}, huge}) {
    check_dropout({5, 37, 6}, {5, 1, 6}, step, 0.3f);                 // SpatialDropout1D
    check_dropout({3, 9, 7, 5}, {3, 1, 1, 5}, step, 0.5f);            // SpatialDropout2D, a run of 63 positions
    check_dropout({2, 3, 4, 5, 3}, {2, 1, 1, 1, 3}, step, 0.2f);      // SpatialDropout3D
  }
  check_dropout({4, 1, 33, 2}, {4, 1, 1, 2}, 5, 0.4f);   // an extent-1 dim inside the run
  check_dropout({3, 5, 7}, {1, 5, 7}, 5, 0.4f);          // the run at the front: outer 1
  check_dropout({3, 5, 7}, {3, 5, 1}, 5, 0.4f);          // the run at the back: inner 1
  check_dropout({3, 5, 7, 2}, {3, 1, 7, 1}, 5, 0.4f);    // two runs: the general broadcast kernel
  for (const float rate : {0.0f, 1.0f}) check_dropout({3, 9, 7, 5}, {3, 1, 1, 5}, 2, rate);
}
