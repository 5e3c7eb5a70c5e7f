// parallel.hpp: the CPU backend's one parallel loop. Every threaded CPU op splits its range over its
// backend context's threads here: the GEMMs (OpenBLAS itself runs single-threaded, gemm.cpp says why), im2col,
// activations, dropout and pooling.
//
// Plain std::threads that exit when their range is done: nothing spins between calls, so nothing competes
// with OpenBLAS's own threads (an OpenMP pool beside them made training steps 2x slower on 2 cores). A
// thread start costs some microseconds, so ranges below `grain` items run inline. Every item is computed
// by exactly one thread and no loop here reduces across items, so results do not depend on the split.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace dropnet::backend::cpu {

// The process's default thread count for these loops: the hardware threads (at most 16), or
// DROPNET_CPU_THREADS when set. Read once; it never changes.
inline unsigned default_cpu_threads() {
  static const unsigned n = [] {
    unsigned count = std::thread::hardware_concurrency();
    if (const char* env = std::getenv("DROPNET_CPU_THREADS"); env != nullptr && std::atoi(env) > 0)
      count = static_cast<unsigned>(std::atoi(env));
    return std::max(1u, std::min(count, 16u));
  }();
  return n;
}

namespace detail {
// The calling thread's share while one backend context runs an op (0: none set). Per thread, not per
// process: models training side by side on their own threads (`dropnet-bench sweep --concurrent`) each
// run their ops with their own share, and no thread's setting changes another's.
inline thread_local unsigned thread_share = 0;
}  // namespace detail

// Threads for the loops of the op being run on this thread: the share of the backend context that runs
// it (BackendSettings::cpu_threads, set by ThreadShare), else the process default.
inline unsigned cpu_threads() {
  return detail::thread_share != 0 ? detail::thread_share : default_cpu_threads();
}

// Sets the calling thread's share for one op (0 keeps the default) and restores the previous one at
// the end of the scope. CpuBackend opens one at the start of every op.
class ThreadShare {
 public:
  explicit ThreadShare(unsigned threads) noexcept : previous_(detail::thread_share) {
    if (threads != 0) detail::thread_share = std::min(threads, 16u);
  }
  ~ThreadShare() { detail::thread_share = previous_; }
  ThreadShare(const ThreadShare&) = delete;
  ThreadShare& operator=(const ThreadShare&) = delete;

 private:
  unsigned previous_;
};

// Calls fn(begin, end) on disjoint ranges covering [0, n); the caller's thread takes the first range.
template <typename F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& fn) {
  const std::int64_t parts = std::min<std::int64_t>(cpu_threads(), n / std::max<std::int64_t>(grain, 1));
  if (parts <= 1) {
    if (n > 0) fn(std::int64_t(0), n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(std::size_t(parts - 1));
  for (std::int64_t p = 1; p < parts; ++p)
    workers.emplace_back([&fn, n, parts, p, share = detail::thread_share] {
      const ThreadShare same(share);  // an op a worker calls sees its caller's share
      fn(n * p / parts, n * (p + 1) / parts);
    });
  fn(std::int64_t(0), n / parts);
  for (std::thread& t : workers) t.join();
}

}  // namespace dropnet::backend::cpu
