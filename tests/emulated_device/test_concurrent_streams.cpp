// The emulated device with several host threads, as models training side by side use it (each model its
// own non-blocking stream, on its own thread): a thread's wait runs its own stream's work and nothing of
// another thread's stream, and a capture on a non-blocking stream survives another thread's legacy-stream
// copies, allocations and frees (a capture on a blocking stream does not: CUDA's
// cudaErrorStreamCaptureImplicit, why the CUDA backend's streams are non-blocking).
//
// Catch2's assertions are not thread-safe: the threads record what they saw and the test thread checks it.
#include "support/catch.hpp"

#include <cuda_runtime.h>

#include <thread>
#include <vector>

#include "emulation_kernels.hpp"

namespace t = dropnet::emulated::testing;

namespace {

std::vector<float> read(const float* p, std::size_t n) {
  std::vector<float> h(n);
  REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
  return h;
}

float* device_floats(std::size_t n, float value) {
  float* p = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(float)) == cudaSuccess);
  const std::vector<float> h(n, value);
  REQUIRE(cudaMemcpy(p, h.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  return p;
}

// Runs `body` on a host thread of its own and waits for it.
template <typename F>
void on_thread(F body) {
  std::thread th(body);
  th.join();
}

}  // namespace

TEST_CASE("two host threads' non-blocking streams are independent queues: a wait runs only its own stream",
          "[emulation][concurrent]") {
  cudaStream_t a = nullptr, b = nullptr;
  float* pa = device_floats(4, 0.0f);
  float* pb = device_floats(4, 0.0f);
  cudaError_t created_a = cudaErrorUnknown, created_b = cudaErrorUnknown;
  unsigned flags_a = 0;
  on_thread([&] {
    created_a = cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking);
    t::fill_to(pa, 4, 4, 1.0f, a);
  });
  on_thread([&] {
    created_b = cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking);
    t::fill_to(pb, 4, 4, 2.0f, b);
  });
  REQUIRE(created_a == cudaSuccess);
  REQUIRE(created_b == cudaSuccess);
  REQUIRE(cudaStreamGetFlags(a, &flags_a) == cudaSuccess);
  CHECK(flags_a == cudaStreamNonBlocking);

  // Thread A queues more, then waits for its stream: B's fill, queued between A's two, stays queued.
  cudaError_t waited_a = cudaErrorUnknown, queried_b = cudaErrorUnknown;
  on_thread([&] {
    t::fill_to(pa, 4, 2, 3.0f, a);
    waited_a = cudaStreamSynchronize(a);
    queried_b = cudaStreamQuery(b);
  });
  CHECK(waited_a == cudaSuccess);
  CHECK(queried_b == cudaErrorNotReady);
  CHECK(cudaStreamQuery(a) == cudaSuccess);
  // cudaMemcpy is legacy-stream work, which waits for no non-blocking stream: B's fill has still not run.
  CHECK(read(pa, 4) == std::vector<float>{3, 3, 1, 1});
  CHECK(read(pb, 4) == std::vector<float>{0, 0, 0, 0});

  cudaError_t waited_b = cudaErrorUnknown;
  on_thread([&] { waited_b = cudaStreamSynchronize(b); });
  CHECK(waited_b == cudaSuccess);
  CHECK(read(pb, 4) == std::vector<float>{2, 2, 2, 2});
  CHECK(read(pa, 4) == std::vector<float>{3, 3, 1, 1});  // A's work ran once

  // Both threads at once, each queueing and waiting for its own stream many times: every fill lands.
  std::vector<float> last_a, last_b;
  cudaError_t ea = cudaSuccess, eb = cudaSuccess;
  std::thread ta([&] {
    for (int i = 1; i <= 50 && ea == cudaSuccess; ++i) {
      t::fill_to(pa, 4, 4, float(i), a);
      ea = cudaStreamSynchronize(a);
    }
  });
  std::thread tb([&] {
    for (int i = 1; i <= 50 && eb == cudaSuccess; ++i) {
      t::fill_to(pb, 4, 4, float(-i), b);
      eb = cudaStreamSynchronize(b);
    }
  });
  ta.join();
  tb.join();
  CHECK(ea == cudaSuccess);
  CHECK(eb == cudaSuccess);
  CHECK(read(pa, 4) == std::vector<float>{50, 50, 50, 50});
  CHECK(read(pb, 4) == std::vector<float>{-50, -50, -50, -50});

  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
  cudaFree(pa);
  cudaFree(pb);
}

TEST_CASE("a capture on a non-blocking stream survives another thread's copies, fills, mallocs and frees; "
          "on a blocking stream a copy invalidates it",
          "[emulation][concurrent]") {
  for (const bool non_blocking : {true, false}) {
    INFO((non_blocking ? "non-blocking stream" : "blocking stream"));
    cudaStream_t s = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&s, non_blocking ? cudaStreamNonBlocking : cudaStreamDefault) == cudaSuccess);
    float* recorded = device_floats(4, 0.0f);
    float* other = device_floats(4, 0.0f);
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    t::fill_to(recorded, 4, 4, 9.0f, s);

    // Another thread, meanwhile: a synchronous copy, a memset on the legacy stream, a malloc and a free.
    cudaError_t copied = cudaErrorUnknown, set = cudaErrorUnknown, allocated = cudaErrorUnknown,
                freed = cudaErrorUnknown;
    on_thread([&] {
      const std::vector<float> h{4, 3, 2, 1};
      copied = cudaMemcpy(other, h.data(), sizeof(float) * 4, cudaMemcpyHostToDevice);
      set = cudaMemset(other, 0, sizeof(float));
      void* scratch = nullptr;
      allocated = cudaMalloc(&scratch, 64);
      freed = cudaFree(scratch);
    });

    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(s, &graph);
    if (non_blocking) {
      CHECK(copied == cudaSuccess);
      CHECK(set == cudaSuccess);
      CHECK(allocated == cudaSuccess);
      CHECK(freed == cudaSuccess);
      REQUIRE(ended == cudaSuccess);
      CHECK(read(other, 4) == std::vector<float>{0, 3, 2, 1});
      CHECK(read(recorded, 4) == std::vector<float>{0, 0, 0, 0});  // recorded, not run
      cudaGraphExec_t exec = nullptr;
      REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
      REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
      REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
      CHECK(read(recorded, 4) == std::vector<float>{9, 9, 9, 9});
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
    } else {
      // Legacy-stream work would have to wait for the capturing blocking stream.
      CHECK(copied == cudaErrorStreamCaptureImplicit);
      CHECK(ended == cudaErrorStreamCaptureInvalidated);
      CHECK(graph == nullptr);
      (void)cudaGetLastError();
    }
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    cudaStreamDestroy(s);
    cudaFree(recorded);
    cudaFree(other);
  }
}
