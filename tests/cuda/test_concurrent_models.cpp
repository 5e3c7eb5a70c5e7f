// Several models training at once on one GPU, each on its own host thread with its own backend context
// (stream, handles, plans, scratch, step state, recorded CUDA graph), as `dropnet-bench sweep --concurrent`
// runs a study: every model trains the bits it trains alone, one failing leaves the others training, and
// the backends' streams are non-blocking (so that none waits for another through the legacy stream).
//
// Catch2's assertions are not thread-safe: the threads only train and record, the test thread checks.
#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backend/memory.hpp"
#include "cuda_test_support.hpp"
#include "dropnet/dropnet.hpp"
#include "model/impl.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

using Clock = std::chrono::steady_clock;

// Conv, pool, dropout, dense: what the seed model is made of, small enough for the emulated device.
Sequential small_convnet(double rate) {
  Sequential m({8, 8, 3});
  m.add(Conv2D(4, {3, 3}, {.padding = "same", .activation = "relu"}));
  m.add(MaxPooling2D());
  m.add(Dropout(rate));
  m.add(Flatten());
  m.add(Dense(3, {.activation = "softmax"}));
  return m;
}

struct Data {
  Tensor x, y;
};

Data make_data(std::int64_t n, std::uint64_t seed) {
  std::vector<float> ys(std::size_t(n * 3), 0.0f);
  for (std::int64_t r = 0; r < n; ++r) ys[std::size_t(r * 3 + (r * 7 + std::int64_t(seed)) % 3)] = 1.0f;
  return {host_random({n, 8, 8, 3}, seed, 0.0, 1.0), Tensor::from_vector({n, 3}, ys)};
}

// 32 training rows in batches of 8 (the first step eager, the second recorded, the rest replays) and 8
// validation rows (evaluate between epochs), two epochs.
const FitOptions kFit{.batch_size = 8, .epochs = 2, .verbose = 0, .validation_split = 0.2};

struct Run {
  double rate = 0.25;
  std::uint64_t seed = 1;
};

// What a training run leaves: the weights, the history and how its steps ran.
struct Outcome {
  std::vector<float> weights;
  History history;
  std::int64_t iterations = 0;
  std::string step_mode;
  Clock::time_point began, ended;
};

std::vector<float> all_weights(Sequential& m) {
  std::vector<float> w;
  for (std::size_t i = 0; i < m.layer_count(); ++i)
    for (const Param& p : m.layer(i).params())
      for (float v : p.value.to_vector()) w.push_back(v);
  return w;
}

Outcome train(const Run& run, const Data& data, const std::vector<Callback*>& callbacks = {}) {
  Outcome out;
  out.began = Clock::now();
  Sequential m = small_convnet(run.rate);
  m.compile({.loss = "categorical_crossentropy", .device = Device::CUDA, .seed = run.seed, .deterministic = true,
             .cuda_graphs = true});
  FitOptions fit = kFit;
  fit.callbacks = callbacks;
  out.history = m.fit(data.x, data.y, fit);
  // fit returns with the model's stream idle: the weights read here are the trained ones.
  out.weights = all_weights(m);
  out.iterations = m.iterations();
  out.step_mode = m.step_mode();
  out.ended = Clock::now();
  return out;
}

void expect_same_run(const Outcome& concurrent, const Outcome& alone, const std::string& what) {
  INFO(what);
  CHECK(concurrent.step_mode == "cuda graph");
  CHECK(concurrent.step_mode == alone.step_mode);
  CHECK(concurrent.iterations == alone.iterations);
  CHECK(concurrent.history.epoch == alone.history.epoch);
  CHECK(concurrent.history.history == alone.history.history);  // every loss and accuracy, bit for bit
  CHECK(concurrent.history.order_fnv1a == alone.history.order_fnv1a);
  expect_identical(concurrent.weights, alone.weights, what + ": weights");
}

// Starts the threads' bodies together, so that their fits are in flight at the same time.
class StartLine {
 public:
  explicit StartLine(int threads) : waiting_(threads) {}
  void arrive_and_wait() {
    waiting_.fetch_sub(1);
    while (waiting_.load() > 0) std::this_thread::yield();
  }

 private:
  std::atomic<int> waiting_;
};

// Throws from on_batch_end at one batch of the first epoch, with steps still queued on the stream and a
// recorded graph alive: fit then unwinds through the model's buffers and its backend.
struct FailAtBatch : Callback {
  int batch;
  explicit FailAtBatch(int b) : batch(b) {}
  void on_batch_end(int b, const Logs&) override {
    if (b == batch) throw std::runtime_error("injected failure at batch " + std::to_string(b));
  }
};

}  // namespace

TEST_CASE("a CUDA backend's stream is non-blocking", "[cuda][concurrent]") {
  Sequential m = small_convnet(0.25);
  m.compile({.loss = "categorical_crossentropy", .device = Device::CUDA, .seed = 1});
  auto& be = dynamic_cast<backend::cuda::CudaBackend&>(ModelInternals::backend(m));
  unsigned flags = 0;
  REQUIRE(cudaStreamGetFlags(static_cast<cudaStream_t>(be.stream()), &flags) == cudaSuccess);
  CHECK((flags & cudaStreamNonBlocking) != 0);
  CHECK(cudaStreamGetFlags(static_cast<cudaStream_t>(gpu().stream()), &flags) == cudaSuccess);
  CHECK((flags & cudaStreamNonBlocking) != 0);
}

TEST_CASE("another thread's tensor copies, fills, allocations and frees leave a recording intact",
          "[cuda][concurrent][graph]") {
  // With blocking streams the other thread's copies, on the legacy default stream, would have to wait for
  // the stream being recorded, which invalidates the recording (cudaErrorStreamCaptureImplicit).
  backend::cuda::CudaBackend be;
  const std::int64_t n = 64;
  Tensor recorded({n}, Device::CUDA);
  std::vector<float> read_back;
  std::exception_ptr other_error;
  std::unique_ptr<backend::Recording> recording = be.capture([&] {
    be.fill(recorded.data(), std::size_t(n), 3.0f);
    std::thread other([&] {
      try {
        Tensor t = host_random({n}, 5).to(Device::CUDA);  // allocation and host-to-device copy
        t.fill(2.0f);
        Tensor u({n}, Device::CUDA);
        u.copy_from(t);  // device to device
        read_back = u.to_vector();
        // t and u are freed here, while the recording is in progress (the memory layer defers it).
      } catch (...) {
        other_error = std::current_exception();
      }
    });
    other.join();
    be.copy(recorded.data() + n / 2, recorded.data(), std::size_t(n / 2));
  });
  if (other_error) std::rethrow_exception(other_error);
  CHECK(read_back == std::vector<float>(std::size_t(n), 2.0f));
  REQUIRE(recording != nullptr);
  recorded.fill(0.0f);
  recording->replay();
  be.synchronize();
  CHECK(recorded.to_vector() == std::vector<float>(std::size_t(n), 3.0f));
}

TEST_CASE("a backend made and dropped on another thread while a step is recorded leaves the recording intact",
          "[cuda][concurrent][graph]") {
  // Destroying a cuBLAS handle synchronizes the device, which fails every capture in progress, whatever
  // its thread and mode: the backend makes and drops its handles outside every recording (DeviceWideCall).
  backend::cuda::CudaBackend be;
  const std::int64_t n = 64;
  Tensor recorded({n}, Device::CUDA);
  std::vector<float> other_values;
  std::exception_ptr other_error;
  std::thread other;
  std::unique_ptr<backend::Recording> recording = be.capture([&] {
    be.fill(recorded.data(), std::size_t(n), 1.0f);
    other = std::thread([&] {
      try {
        backend::cuda::CudaBackend mine;
        Tensor t({8}, Device::CUDA);
        mine.fill(t.data(), 8, 2.0f);
        mine.synchronize();
        other_values = t.to_vector();
      } catch (...) {
        other_error = std::current_exception();
      }
    });
    // The other thread makes its backend, fills, drops it, or waits for this recording to end to do so.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    be.fill(recorded.data(), std::size_t(n), 3.0f);
  });
  other.join();
  if (other_error) std::rethrow_exception(other_error);
  CHECK(other_values == std::vector<float>(8, 2.0f));
  REQUIRE(recording != nullptr);
  recorded.fill(0.0f);
  recording->replay();
  be.synchronize();
  CHECK(recorded.to_vector() == std::vector<float>(std::size_t(n), 3.0f));
}

TEST_CASE("models trained on two host threads at once train the bits they train one after another",
          "[cuda][concurrent][model]") {
  const Data data = make_data(40, 21);
  const std::vector<Run> runs{{0.25, 7}, {0.5, 8}};
  // One after another, on this thread.
  std::vector<Outcome> alone;
  for (const Run& run : runs) alone.push_back(train(run, data));

  // At once, each on its own thread.
  std::vector<Outcome> together(runs.size());
  std::vector<std::exception_ptr> errors(runs.size());
  StartLine start(static_cast<int>(runs.size()));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      try {
        together[i] = train(runs[i], data);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (errors[i]) std::rethrow_exception(errors[i]);
    expect_same_run(together[i], alone[i], "run " + std::to_string(i));
  }
  // The premise: the two fits were in flight at the same time (each takes many scheduler slices).
  const bool overlapped = together[0].began < together[1].ended && together[1].began < together[0].ended;
  CHECK(overlapped);
  CHECK(alone[0].weights != alone[1].weights);  // two different runs, not one run twice
}

TEST_CASE("a model failing on one host thread leaves the model on another training its own bits",
          "[cuda][concurrent][model]") {
  const Data data = make_data(40, 22);
  const Run steady{0.25, 31}, failing{0.5, 32}, after{0.25, 33};
  const Outcome steady_alone = train(steady, data);
  const Outcome after_alone = train(after, data);

  Outcome steady_together, after_failure;
  std::exception_ptr steady_error, after_error;
  std::string bad_input_error, injected_error;
  StartLine start(2);
  std::thread a([&] {
    start.arrive_and_wait();
    try {
      steady_together = train(steady, data);
    } catch (...) {
      steady_error = std::current_exception();
    }
  });
  std::thread b([&] {
    start.arrive_and_wait();
    try {
      {  // a fit on labels of the wrong shape: refused before anything reaches the device
        Sequential m = small_convnet(failing.rate);
        m.compile({.loss = "categorical_crossentropy", .device = Device::CUDA, .seed = failing.seed,
                   .deterministic = true});
        try {
          m.fit(data.x, Tensor({40, 4}, Device::CPU), kFit);
        } catch (const InvalidArgument& e) {
          bad_input_error = e.what();
        }
      }
      // A fit that fails mid-epoch, after its step was recorded as a CUDA graph and replayed.
      FailAtBatch fail(2);
      try {
        train(failing, data, {&fail});
      } catch (const std::runtime_error& e) {
        injected_error = e.what();
      }
      // The thread, and the GPU, go on: a new model trains its own bits.
      after_failure = train(after, data);
    } catch (...) {
      after_error = std::current_exception();
    }
  });
  a.join();
  b.join();
  if (steady_error) std::rethrow_exception(steady_error);
  if (after_error) std::rethrow_exception(after_error);
  CHECK(bad_input_error.find("y has shape") != std::string::npos);
  CHECK(injected_error == "injected failure at batch 2");
  expect_same_run(steady_together, steady_alone, "the model beside the failing one");
  expect_same_run(after_failure, after_alone, "a model trained after the failure on the failing thread");
}

TEST_CASE("device_memory on CUDA reports the device's total and what allocations take from it",
          "[cuda][concurrent]") {
  const DeviceMemory before = device_memory(Device::CUDA);
  CHECK(before.total_bytes > 0);
  CHECK(before.free_bytes <= before.total_bytes);
  const std::size_t bytes = std::size_t{64} << 20;
  void* block = backend::memory::allocate(Device::CUDA, bytes);
  const DeviceMemory during = device_memory(Device::CUDA);
  backend::memory::release(Device::CUDA, block);
  CHECK(during.total_bytes == before.total_bytes);
  // At least the block (the driver rounds allocations up; nothing else runs in this process meanwhile).
  CHECK(during.free_bytes + bytes <= before.free_bytes);
  const DeviceMemory after = device_memory(Device::CUDA);
  CHECK(after.free_bytes > during.free_bytes);
}
