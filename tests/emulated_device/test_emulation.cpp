// Tests of the emulated device itself: that it catches what it is there to catch (a missing barrier, a
// write past a buffer, a barrier that can never open, a host read without its wait, a stream reading
// another's output without waiting for it, a value frozen into a graph, calls CUDA forbids during
// capture). A fault makes the device's error sticky, as on a GPU, so those cases run in a child process.
#include "support/catch.hpp"

#include <cuda_runtime.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "dropnet/errors.hpp"
#include "emulated_device/block_scheduler.hpp"
#include "emulated_device/memory_check.hpp"
#include "emulation_kernels.hpp"

namespace emu = dropnet::emulated;
namespace t = dropnet::emulated::testing;

namespace {

struct DeviceFloats {
  explicit DeviceFloats(std::size_t n) : n(n) { REQUIRE(cudaMalloc(&p, n * sizeof(float)) == cudaSuccess); }
  ~DeviceFloats() { cudaFree(p); }
  std::vector<float> read() const {
    std::vector<float> h(n);
    REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
  void write(const std::vector<float>& h) {
    REQUIRE(cudaMemcpy(p, h.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  float* p = nullptr;
  std::size_t n;
};

// Runs `body` in a child process; returns what the runtime's next synchronisation reported there (-1 when
// the child died some other way). stderr shows the emulated device's fault message.
int in_child(const std::function<cudaError_t()>& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) _exit(static_cast<int>(body()) & 0xFF);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct OrderGuard {
  ~OrderGuard() { emu::set_thread_order(nullptr); }  // back to DROPNET_EMULATION_THREAD_ORDER
};

}  // namespace

TEST_CASE("a reduction without its barrier fails in some thread order; with it, in none", "[emulation]") {
  OrderGuard guard;
  const int blocks = 8;
  std::vector<float> values(256 * blocks);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 7);
  DeviceFloats in(values.size()), out(blocks);
  in.write(values);
  auto sums_right = [&](bool barrier) {
    t::block_sum(in.p, out.p, blocks, barrier, nullptr);
    const std::vector<float> got = out.read();
    for (int b = 0; b < blocks; ++b) {
      float expected = 0;
      for (int i = 0; i < 256; ++i) expected += values[static_cast<std::size_t>(b * 256 + i)];
      if (got[static_cast<std::size_t>(b)] != expected) return false;
    }
    return true;
  };
  int caught = 0;
  for (const char* order : {"forward", "reverse", "shuffle"}) {
    emu::set_thread_order(order);
    INFO("order " << order);
    CHECK(sums_right(true));
    caught += sums_right(false) ? 0 : 1;
  }
  CHECK(caught >= 2);  // forward (low threads read high ones too early) and shuffle
}

TEST_CASE("warp shuffles exchange among the 32 lanes of each warp", "[emulation]") {
  std::vector<float> values(64);
  for (int i = 0; i < 64; ++i) values[static_cast<std::size_t>(i)] = static_cast<float>(i);
  DeviceFloats in(64), out(64);
  in.write(values);
  t::warp_sum(in.p, out.p, nullptr);
  const std::vector<float> got = out.read();
  for (int i = 0; i < 64; ++i) CHECK(got[static_cast<std::size_t>(i)] == (i < 32 ? 496.0f : 1520.0f));
}

TEST_CASE("warps do not move in lockstep: __syncwarp where __syncthreads is needed gives a wrong sum",
          "[emulation]") {
  OrderGuard guard;
  std::vector<float> values(64);
  for (int i = 0; i < 64; ++i) values[static_cast<std::size_t>(i)] = static_cast<float>(i);
  DeviceFloats in(64), out(1);
  in.write(values);
  auto sum_right = [&](bool block_barrier) {
    t::cross_warp_sum(in.p, out.p, block_barrier, nullptr);
    return out.read()[0] == 2016.0f;
  };
  int caught = 0;
  for (const char* order : {"forward", "reverse", "shuffle"}) {
    emu::set_thread_order(order);
    INFO("order " << order);
    CHECK(sum_right(true));
    caught += sum_right(false) ? 0 : 1;
  }
  // Forward: warp 0 runs ahead past its __syncwarp and reads warp 1's slot before warp 1 has written it.
  CHECK(caught >= 1);
  emu::set_thread_order("forward");
  CHECK_FALSE(sum_right(false));
}

TEST_CASE("threads waiting at different __syncthreads() call sites are a device fault", "[emulation]") {
  const int code = in_child([] {
    float* p = nullptr;
    cudaMalloc(&p, 64 * sizeof(float));
    t::split_barrier(p, nullptr);
    return cudaDeviceSynchronize() == cudaErrorLaunchFailure ? cudaSuccess : cudaErrorUnknown;
  });
  CHECK(code == 0);
}

TEST_CASE("a kernel writing one element past its buffer is a sticky device fault", "[emulation]") {
  const int code = in_child([] {
    float* p = nullptr;
    cudaMalloc(&p, 100 * sizeof(float));
    t::fill_to(p, 100, 101, 1.0f, nullptr);  // the off-by-one: i <= n
    const cudaError_t first = cudaDeviceSynchronize();
    return first == cudaErrorIllegalAddress && cudaGetLastError() == cudaErrorIllegalAddress ? cudaSuccess : first;
  });
  // Under the asan preset the guard zone is poisoned: ASan stops the child at the write (memory_check.hpp).
  CHECK((code == 0 || (!emu::memory_check_instrumented() && code == -1)));
  DeviceFloats p(100);  // the same write within bounds is fine (and this process is unharmed)
  t::fill_to(p.p, 100, 100, 1.0f, nullptr);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("a barrier that can never open is a device fault, not a hang", "[emulation]") {
  const int code = in_child([] {
    float* p = nullptr;
    cudaMalloc(&p, 64 * sizeof(float));
    t::divergent_barrier(p, nullptr);
    return cudaDeviceSynchronize() == cudaErrorLaunchFailure ? cudaSuccess : cudaErrorUnknown;
  });
  CHECK(code == 0);
}

TEST_CASE("an invalid launch configuration is the last error, cleared by reading it", "[emulation]") {
  DeviceFloats p(1);
  // The launch seam reads the last error (clearing it) and throws DeviceError naming the kernel.
  CHECK_THROWS_AS(t::launch_with_block(2048, p.p, nullptr), dropnet::DeviceError);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  t::launch_with_block(1024, p.p, nullptr);  // the largest block is fine
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("a failed launch names the line in the .cu file that queued it, not the launch seam", "[emulation]") {
  DeviceFloats p(1);
  try {
    t::linear_launch_after_bad_launch(p.p, nullptr);
    FAIL("no DeviceError");
  } catch (const dropnet::DeviceError& e) {
    const std::string what = e.what();
    CHECK(what.find("fill_kernel") != std::string::npos);
    CHECK(what.find("emulation_kernels.cu") != std::string::npos);
    CHECK(what.find("launch.cuh") == std::string::npos);
  }
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("work queued on a stream runs only when the host waits for it", "[emulation]") {
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  DeviceFloats p(4);
  p.write({0, 0, 0, 0});
  t::fill_to(p.p, 4, 4, 5.0f, s);
  // cudaMemcpy runs on the legacy stream, which a non-blocking stream is not ordered with: the fill has not
  // run, as it need not have on a GPU.
  CHECK(p.read() == std::vector<float>{0, 0, 0, 0});
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(p.read() == std::vector<float>{5, 5, 5, 5});
  cudaEvent_t e = nullptr;
  REQUIRE(cudaEventCreate(&e) == cudaSuccess);
  t::fill_to(p.p, 4, 4, 6.0f, s);
  REQUIRE(cudaEventRecord(e, s) == cudaSuccess);
  REQUIRE(cudaEventSynchronize(e) == cudaSuccess);
  CHECK(p.read() == std::vector<float>{6, 6, 6, 6});
  cudaEventDestroy(e);
  cudaStreamDestroy(s);
}

// Stream A writes `in` (a kernel), stream B copies it to `out`, the host waits in one of the ways below and
// reads `out`. Blocking streams, as the CUDA backend's.
TEST_CASE("a stream sees another stream's write only when it waits for it (cudaStreamWaitEvent)", "[emulation]") {
  cudaStream_t a = nullptr, b = nullptr;
  REQUIRE(cudaStreamCreate(&a) == cudaSuccess);
  REQUIRE(cudaStreamCreate(&b) == cudaSuccess);
  cudaEvent_t written = nullptr, copied = nullptr;
  REQUIRE(cudaEventCreate(&written) == cudaSuccess);
  REQUIRE(cudaEventCreate(&copied) == cudaSuccess);
  DeviceFloats in(4), out(4);
  auto wait_and_read = [&](const std::string& how) {
    if (how == "cudaStreamSynchronize(B)") REQUIRE(cudaStreamSynchronize(b) == cudaSuccess);
    if (how == "cudaEventSynchronize on B") {
      REQUIRE(cudaEventRecord(copied, b) == cudaSuccess);
      REQUIRE(cudaEventSynchronize(copied) == cudaSuccess);
    }
    if (how == "a copy on B to pageable memory") {  // complete when the call returns
      std::vector<float> host(4);
      REQUIRE(cudaMemcpyAsync(host.data(), out.p, 4 * sizeof(float), cudaMemcpyDeviceToHost, b) == cudaSuccess);
      return host;
    }
    if (how == "cudaDeviceSynchronize") REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    return out.read();  // on the legacy stream: runs A's fill now, after B's copy if that ran first
  };
  for (const std::string how : {"cudaStreamSynchronize(B)", "cudaEventSynchronize on B",
                                "a copy on B to pageable memory", "cudaDeviceSynchronize"}) {
    for (const bool wait : {true, false}) {
      INFO(how << (wait ? " after cudaStreamWaitEvent" : " without cudaStreamWaitEvent"));
      in.write({1, 1, 1, 1});
      out.write({0, 0, 0, 0});
      t::fill_to(in.p, 4, 4, 7.0f, a);
      REQUIRE(cudaEventRecord(written, a) == cudaSuccess);
      if (wait) REQUIRE(cudaStreamWaitEvent(b, written, 0) == cudaSuccess);
      REQUIRE(cudaMemcpyAsync(out.p, in.p, 4 * sizeof(float), cudaMemcpyDeviceToDevice, b) == cudaSuccess);
      // Without the wait, B copies `in` before A's fill runs: the missing dependency shows as the old values.
      CHECK(wait_and_read(how) == (wait ? std::vector<float>{7, 7, 7, 7} : std::vector<float>{1, 1, 1, 1}));
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    }
  }
  cudaEventDestroy(written);
  cudaEventDestroy(copied);
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
}

TEST_CASE("the legacy default stream orders blocking streams, not non-blocking ones", "[emulation]") {
  cudaStream_t blocking = nullptr, non_blocking = nullptr;
  REQUIRE(cudaStreamCreate(&blocking) == cudaSuccess);
  REQUIRE(cudaStreamCreateWithFlags(&non_blocking, cudaStreamNonBlocking) == cudaSuccess);
  cudaEvent_t copied = nullptr;
  REQUIRE(cudaEventCreate(&copied) == cudaSuccess);
  DeviceFloats in(4), out(4);
  for (cudaStream_t s : {blocking, non_blocking}) {
    const bool ordered = s == blocking;
    INFO((ordered ? "blocking stream" : "non-blocking stream"));
    // Legacy-stream work, then a copy on `s` of what it wrote: no event between them.
    in.write({1, 1, 1, 1});
    out.write({0, 0, 0, 0});
    t::fill_to(in.p, 4, 4, 3.0f, nullptr);
    REQUIRE(cudaMemcpyAsync(out.p, in.p, 4 * sizeof(float), cudaMemcpyDeviceToDevice, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(out.read() == (ordered ? std::vector<float>{3, 3, 3, 3} : std::vector<float>{1, 1, 1, 1}));
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    // Work on `s`, then a copy on the legacy stream, waited for through an event on the legacy stream only.
    in.write({1, 1, 1, 1});
    out.write({0, 0, 0, 0});
    t::fill_to(in.p, 4, 4, 5.0f, s);
    REQUIRE(cudaMemcpyAsync(out.p, in.p, 4 * sizeof(float), cudaMemcpyDeviceToDevice, nullptr) == cudaSuccess);
    REQUIRE(cudaEventRecord(copied, nullptr) == cudaSuccess);
    REQUIRE(cudaEventSynchronize(copied) == cudaSuccess);
    CHECK(out.read() == (ordered ? std::vector<float>{5, 5, 5, 5} : std::vector<float>{1, 1, 1, 1}));
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  }
  cudaEventDestroy(copied);
  cudaStreamDestroy(blocking);
  cudaStreamDestroy(non_blocking);
}

TEST_CASE("a graph replays the argument values it was recorded with and reads device memory afresh",
          "[emulation]") {
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  DeviceFloats acc(1), step(1);
  acc.write({0});
  step.write({10});
  float host_step = 1;
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  t::add(acc.p, host_step, step.p, s);
  cudaGraph_t g = nullptr;
  REQUIRE(cudaStreamEndCapture(s, &g) == cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, g, 0) == cudaSuccess);
  CHECK(acc.read() == std::vector<float>{0});  // capture ran nothing
  for (float k = 1; k <= 3; ++k) {
    host_step = 100 * k;  // not seen: recorded by value
    step.write({10 * k});  // seen: read from device memory at each replay
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  }
  CHECK(acc.read() == std::vector<float>{1 + 10 + 1 + 20 + 1 + 30});
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
}

TEST_CASE("calls CUDA forbids during capture fail and invalidate it", "[emulation]") {
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  DeviceFloats p(4);
  std::vector<float> host(4);
  auto check_forbidden = [&](const char* what, const std::function<cudaError_t()>& call, cudaError_t expected) {
    INFO(what);
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    t::fill_to(p.p, 4, 4, 1.0f, s);
    CHECK(call() == expected);
    cudaGraph_t g = nullptr;
    CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
    CHECK(g == nullptr);
    (void)cudaGetLastError();
  };
  check_forbidden("cudaMalloc", [] { void* q = nullptr; return cudaMalloc(&q, 16); }, cudaErrorStreamCaptureUnsupported);
  check_forbidden("cudaStreamSynchronize", [&] { return cudaStreamSynchronize(s); }, cudaErrorStreamCaptureUnsupported);
  check_forbidden("a synchronous cudaMemcpy",
                  [&] { return cudaMemcpy(host.data(), p.p, 16, cudaMemcpyDeviceToHost); },
                  cudaErrorStreamCaptureImplicit);
  check_forbidden("cudaMemcpyAsync from pageable memory",
                  [&] { return cudaMemcpyAsync(p.p, host.data(), 16, cudaMemcpyHostToDevice, s); },
                  cudaErrorStreamCaptureUnsupported);
  CHECK(cudaStreamSynchronize(s) == cudaSuccess);  // the stream is usable again
  cudaStreamDestroy(s);
}

TEST_CASE("cudaStreamWaitEvent within one capture is stream order; across a capture's boundary it is refused",
          "[emulation]") {
  cudaStream_t s = nullptr, other = nullptr;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  REQUIRE(cudaStreamCreate(&other) == cudaSuccess);
  cudaEvent_t inside = nullptr, outside = nullptr;
  REQUIRE(cudaEventCreate(&inside) == cudaSuccess);
  REQUIRE(cudaEventCreate(&outside) == cudaSuccess);
  REQUIRE(cudaEventRecord(outside, other) == cudaSuccess);
  DeviceFloats p(4);
  cudaGraph_t g = nullptr;
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  t::fill_to(p.p, 4, 4, 1.0f, s);
  REQUIRE(cudaEventRecord(inside, s) == cudaSuccess);
  CHECK(cudaStreamWaitEvent(s, inside, 0) == cudaSuccess);
  REQUIRE(cudaStreamEndCapture(s, &g) == cudaSuccess);
  CHECK(cudaGraphDestroy(g) == cudaSuccess);
  // A fork (another stream waits for an event recorded in the capture) and a wait for an event recorded
  // outside it are not emulated: refused, and the capture with them.
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  REQUIRE(cudaEventRecord(inside, s) == cudaSuccess);
  CHECK(cudaStreamWaitEvent(other, inside, 0) == cudaErrorNotSupported);
  CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  CHECK(cudaStreamWaitEvent(s, outside, 0) == cudaErrorNotSupported);
  CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
  (void)cudaGetLastError();
  CHECK(cudaStreamSynchronize(other) == cudaSuccess);  // both streams are usable again
  CHECK(cudaStreamSynchronize(s) == cudaSuccess);
  cudaEventDestroy(inside);
  cudaEventDestroy(outside);
  cudaStreamDestroy(s);
  cudaStreamDestroy(other);
}
