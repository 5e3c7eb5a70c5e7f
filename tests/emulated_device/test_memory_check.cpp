// test_memory_check.cpp: the emulated device's memcheck and initcheck (memory_check.hpp) fail for the
// right reason on kernels with the bug, and stay silent on their correct versions. Each faulty case runs
// in a child process (a device fault is sticky for the rest of the process, as on a GPU), which reports
// through its exit code and the fault message it captured.
#include "support/catch.hpp"

#include <cuda_runtime.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "emulated_device/block_scheduler.hpp"
#include "emulated_device/memory_check.hpp"
#include "emulation_kernels.hpp"
#include "memory_check_kernels.hpp"

namespace emu = dropnet::emulated;
namespace t = dropnet::emulated::testing;

namespace {

struct Outcome {
  bool exited;           // false: killed by a signal (ASan aborts at the bad access under the asan preset)
  int error;             // what cudaDeviceSynchronize returned in the child, as an exit code (& 0xFF)
  std::string messages;  // what the child wrote to stderr
};

// Runs `body` (which queues work and returns) in a child process, synchronises there and returns the
// error and the emulated device's messages.
Outcome in_child(const std::function<void()>& body) {
  char path[] = "/tmp/dropnet-memcheck-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, 2);
    try {
      body();
    } catch (...) {  // a failed REQUIRE: never back into the test runner from a child
      _exit(254);
    }
    _exit(static_cast<int>(cudaDeviceSynchronize()) & 0xFF);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::string text;
  if (FILE* f = std::fopen(path, "r")) {
    char buf[4096];
    std::size_t got = 0;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
    std::fclose(f);
  }
  close(fd);
  std::remove(path);
  const bool exited = WIFEXITED(status);
  return {exited, exited ? WEXITSTATUS(status) : -1, text};
}

float* device_floats(std::size_t n, const std::vector<float>* init = nullptr) {
  float* p = nullptr;
  REQUIRE(cudaMalloc(&p, n * sizeof(float)) == cudaSuccess);
  if (init != nullptr) REQUIRE(cudaMemcpy(p, init->data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  return p;
}

// An error as the child's exit code carries it.
int code(cudaError_t e) { return static_cast<int>(e) & 0xFF; }

bool has(const std::string& text, const char* what) { return text.find(what) != std::string::npos; }

// Under the asan preset the kernels are compiled with ASan, not memory_check's hooks: a bad access ends
// the child with ASan's report instead of a device fault.
bool asan_caught(const Outcome& o) { return !emu::memory_check_instrumented() && has(o.messages, "AddressSanitizer"); }

}  // namespace

TEST_CASE("memcheck: a read one element past the end or before the start faults at the read", "[emulation][memcheck]") {
  const std::vector<float> ones(100, 1.0f);
  for (const std::int64_t offset : {1, -1}) {
    INFO("offset " << offset);
    const Outcome o = in_child([&] {
      float* in = device_floats(100, &ones);
      float* out = device_floats(100);
      t::shifted_copy(in, out, 100, offset, nullptr);
    });
    if (asan_caught(o)) continue;
    CHECK(o.error == code(cudaErrorIllegalAddress));
    CHECK(has(o.messages, "kernel shifted_copy_kernel read 4 byte(s)"));
    CHECK(has(o.messages, offset > 0 ? "at offset 400 of allocation" : "at offset -4 of allocation"));
    CHECK(has(o.messages, offset > 0 ? "past its end (memcheck)" : "before its start (memcheck)"));
  }
  // In bounds: no fault.
  float* in = device_floats(100, &ones);
  float* out = device_floats(100);
  t::shifted_copy(in, out, 99, 1, nullptr);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  cudaFree(in);
  cudaFree(out);
}

TEST_CASE("memcheck: a write one element before the start faults", "[emulation][memcheck]") {
  const Outcome o = in_child([] { t::shifted_fill(device_floats(100), 100, 2.0f, nullptr); });
  if (!asan_caught(o)) {
    CHECK(o.error == code(cudaErrorIllegalAddress));
    CHECK(has(o.messages, "kernel shifted_fill_kernel wrote 4 byte(s) at offset -4 of allocation"));
    CHECK(has(o.messages, "before its start (memcheck)"));
  }
}

TEST_CASE("initcheck: a read of device memory nothing wrote faults even where a ReLU absorbs the NaN",
          "[emulation][initcheck]") {
  if (!emu::memory_check_instrumented()) {
    WARN("initcheck needs memory_check's instrumentation, which the asan preset replaces by ASan: not run");
    return;
  }
  const Outcome o = in_child([] {
    emu::set_initcheck(true);
    float* in = device_floats(100);  // cudaMalloc'd, never written: every float is the NaN fill
    float* out = device_floats(100);
    t::relu(in, out, 100, nullptr);
  });
  CHECK(o.error == code(cudaErrorIllegalAddress));
  CHECK(has(o.messages, "kernel relu_kernel read 4 byte(s) at offset 0 of allocation"));
  CHECK(has(o.messages, "which nothing has written since cudaMalloc (initcheck)"));
  // Without initcheck the same kernel passes: the ReLU turns the NaN fill into zeros, which look right.
  const Outcome unchecked = in_child([] {
    emu::set_initcheck(false);
    t::relu(device_floats(100), device_floats(100), 100, nullptr);
  });
  CHECK(unchecked.error == code(cudaSuccess));
  // The correct version (the input written first, by a copy, a memset or a kernel) passes initcheck.
  const Outcome written = in_child([] {
    emu::set_initcheck(true);
    float* in = device_floats(100);
    cudaMemsetAsync(in, 0, 50 * sizeof(float), nullptr);
    const std::vector<float> rest(50, -1.0f);
    cudaMemcpyAsync(in + 50, rest.data(), 50 * sizeof(float), cudaMemcpyHostToDevice, nullptr);
    float* mid = device_floats(100);
    t::relu(in, mid, 100, nullptr);   // writes all of mid
    t::relu(mid, in, 100, nullptr);   // reads only what the kernel wrote
  });
  CHECK(written.error == code(cudaSuccess));
  CHECK(written.messages.empty());
}

TEST_CASE("racecheck: a cross-warp sum after __syncwarp where __syncthreads is needed is a race, in every order",
          "[emulation][racecheck]") {
  if (!emu::memory_check_instrumented()) {
    WARN("racecheck needs memory_check's instrumentation, which the asan preset replaces by ASan: not run");
    return;
  }
  const std::vector<float> values(64, 1.0f);
  for (const char* order : {"forward", "reverse", "shuffle"}) {
    INFO("order " << order);
    const Outcome bad = in_child([&] {
      emu::set_thread_order(order);
      emu::set_racecheck(true);
      t::cross_warp_sum(device_floats(64, &values), device_floats(1), false, nullptr);
    });
    CHECK(bad.error == code(cudaErrorLaunchFailure));
    CHECK(has(bad.messages, "kernel cross_warp_sum_kernel: data race on shared memory"));
    CHECK(has(bad.messages, "(racecheck)"));
    const Outcome good = in_child([&] {
      emu::set_thread_order(order);
      emu::set_racecheck(true);
      t::cross_warp_sum(device_floats(64, &values), device_floats(1), true, nullptr);
    });
    CHECK(good.error == code(cudaSuccess));
    CHECK(good.messages.empty());
  }
}

TEST_CASE("racecheck: a non-atomic update by several blocks is a race; atomicAdd is not", "[emulation][racecheck]") {
  if (!emu::memory_check_instrumented()) {
    WARN("racecheck needs memory_check's instrumentation, which the asan preset replaces by ASan: not run");
    return;
  }
  const std::vector<float> zero(1, 0.0f);
  const Outcome bad = in_child([&] {
    emu::set_racecheck(true);
    t::count_blocks(device_floats(1, &zero), 4, false, nullptr);
  });
  INFO("the child's messages: " << bad.messages);
  CHECK(bad.error == code(cudaErrorLaunchFailure));
  CHECK(has(bad.messages, "kernel count_blocks_kernel: data race on allocation"));
  // Two threads of two different blocks (which ones depends on the thread order of the run).
  std::smatch m;
  REQUIRE(std::regex_search(bad.messages, m, std::regex("thread 0 of block (\\d) reads it, thread 0 of block (\\d) wrote it")));
  CHECK(m[1].str() != m[2].str());
  // Without racecheck the emulation's blocks run one after another, and the lost update does not show.
  float* p = device_floats(1, &zero);
  t::count_blocks(p, 4, false, nullptr);
  float got = 0;
  REQUIRE(cudaMemcpy(&got, p, sizeof got, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(got == 4.0f);
  cudaFree(p);
  const Outcome good = in_child([&] {
    emu::set_racecheck(true);
    t::count_blocks(device_floats(1, &zero), 4, true, nullptr);
  });
  CHECK(good.error == code(cudaSuccess));
  CHECK(good.messages.empty());
}
