// A measurement with checks on what it measures (hidden tag [.probe]: `dropnet_cuda_tests "[probe]"` runs
// it; plain runs and CTest skip it, a GPU step at batch 250 being too slow for the emulated device). One training step of the seed model at batch 250 on the GPU: the peak of device
// memory the backend holds (tensors at their peak plus cuDNN/cuBLAS workspaces and scratch), comparable
// with PyTorch's torch.cuda.max_memory_allocated for the same step (benchmarks/reference/
// torch_seed_model.py), and images/s. scripts/gpu-check.sh parses the DROPNET_PROBE line.
// It asserts what must hold of a steady training step: after the warm-up, steps allocate no more (scratch
// and the peak of tensor memory do not grow from one window of steps to the next), the peak holds at
// least the batch and the parameters, and every step's loss is finite.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "model/impl.hpp"
#include "programs/seed_model.hpp"
#include "cuda_test_support.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

TEST_CASE("seed model training step: peak device memory and images/s", "[.probe]") {
  const std::int64_t batch = 250;
  Sequential model = cli::build_seed_model({});
  model.compile({.loss = "categorical_crossentropy", .device = Device::CUDA, .seed = 1});
  // The model's own backend context: its scratch, and the device's tensor memory.
  auto& be = dynamic_cast<backend::cuda::CudaBackend&>(ModelInternals::backend(model));
  const Tensor x = host_random({batch, 32, 32, 3}, 1, 0.0, 1.0).to(Device::CUDA);
  std::vector<float> ys(static_cast<std::size_t>(batch * 10), 0.0f);
  for (std::int64_t i = 0; i < batch; ++i) ys[static_cast<std::size_t>(i * 10 + (i * 7) % 10)] = 1.0f;
  const Tensor y = Tensor::from_vector({batch, 10}, ys).to(Device::CUDA);

  for (int i = 0; i < 3; ++i) model.train_on_batch(x, y);  // algorithm search and scratch growth
  be.synchronize();
  // One window of steps to reach the steady state's peak, then the measured window.
  be.reset_peak_memory();
  for (int i = 0; i < 5; ++i) model.train_on_batch(x, y);
  be.synchronize();
  const backend::cuda::MemoryStats warm = be.memory_stats();
  be.reset_peak_memory();
  const int steps = 30;
  std::vector<double> times;
  for (int i = 0; i < steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const Logs logs = model.train_on_batch(x, y);  // host numbers: the step has finished
    be.synchronize();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    REQUIRE(std::isfinite(logs.at("loss")));
  }
  std::sort(times.begin(), times.end());
  const double step_s = times[times.size() / 2];
  const backend::cuda::MemoryStats m = be.memory_stats();
  std::printf("DROPNET_PROBE {\"batch\": %lld, \"step_ms_median\": %.4f, \"images_per_second\": %.1f, "
              "\"peak_tensor_bytes\": %zu, \"scratch_bytes\": %zu, \"peak_bytes\": %zu}\n",
              static_cast<long long>(batch), step_s * 1e3, double(batch) / step_s, m.peak_tensor_bytes,
              m.scratch_bytes, m.peak_tensor_bytes + m.scratch_bytes);
  CHECK(m.scratch_bytes == warm.scratch_bytes);
  CHECK(m.peak_tensor_bytes <= warm.peak_tensor_bytes);
  const auto parameter_bytes = static_cast<std::size_t>(model.count_params()) * sizeof(float);
  CHECK(m.peak_tensor_bytes >= parameter_bytes + static_cast<std::size_t>(x.size() + y.size()) * sizeof(float));
}
