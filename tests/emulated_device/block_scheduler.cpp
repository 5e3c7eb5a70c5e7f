// block_scheduler.cpp: fibers, barriers and warp exchanges of the emulated device (see block_scheduler.hpp).
#include "emulated_device/block_scheduler.hpp"
#include "emulated_device/memory_check.hpp"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "emulated_device/device_state.hpp"
#include "kernels/philox.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define DROPNET_ASAN_FIBERS 1
#endif

// Bounds of the section that holds every __shared__ variable (kernel_prelude.hpp); the linker defines
// them when some kernel has one. Weak, so that a program without shared memory links too.
extern "C" char __start_dropnet_shared[] __attribute__((weak));
extern "C" char __stop_dropnet_shared[] __attribute__((weak));

namespace dropnet::emulated {
namespace {

enum class Order { Forward, Reverse, Shuffle };

Order parse_order(const char* text) {
  const std::string_view v = text != nullptr ? text : "forward";
  if (v == "forward") return Order::Forward;
  if (v == "reverse") return Order::Reverse;
  if (v == "shuffle") return Order::Shuffle;
  std::fprintf(stderr, "DROPNET_EMULATION_THREAD_ORDER must be forward, reverse or shuffle, not '%s'\n", text);
  std::abort();
}

const Order env_order = parse_order(std::getenv("DROPNET_EMULATION_THREAD_ORDER"));
std::atomic<Order> chosen_order{env_order};  // a test thread may choose while another runs a grid

Order thread_order() { return chosen_order.load(std::memory_order_relaxed); }

// A fixed permutation of 0..n-1 for `key` (splitmix64-driven Fisher-Yates): the same on every run.
std::vector<int> permutation(int n, Order order, std::uint64_t key) {
  std::vector<int> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  if (order == Order::Reverse) std::reverse(p.begin(), p.end());
  if (order == Order::Shuffle) {
    std::uint64_t x = key * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    for (int i = n - 1; i > 0; --i) {
      const std::uint64_t z = kernels::splitmix64(x);  // splitmix64's stream: x advances by its own gamma
      x += 0x9E3779B97F4A7C15ull;
      std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(z % static_cast<std::uint64_t>(i + 1))]);
    }
  }
  return p;
}

// Written byte by byte and without ASan's checks: the section also holds ASan's redzones between the
// variables, which may be overwritten (ASan checks its shadow memory, not the redzones' bytes).
__attribute__((no_sanitize_address)) void poison_shared_memory() {
  if (__start_dropnet_shared == nullptr || __stop_dropnet_shared == nullptr) return;
  for (volatile char* p = __start_dropnet_shared; p < __stop_dropnet_shared; ++p) *p = static_cast<char>(0xFF);
}

constexpr std::size_t kStackBytes = std::size_t{256} << 10;

enum class State { Unstarted, Ready, AtBlockBarrier, AtWarpBarrier, Done };

struct Worker;

struct Thread {
  ThreadContext ctx{};
  State state = State::Unstarted;
  unsigned warp_mask = 0;      // the lanes an AtWarpBarrier thread waits for
  const char* site_file = nullptr;  // the __syncthreads() an AtBlockBarrier thread waits at
  int site_line = 0;
  std::uint32_t block_epoch = 0;    // __syncthreads() passed (racecheck)
  std::uint32_t warp_epoch = 0;     // warp barriers passed
  Worker* worker = nullptr;    // the fiber running it, once started
};

// A fiber that runs threads. When its thread returns it goes straight on with the next thread in the
// block's order if that one has not started (no switch at all: a kernel without barriers runs a whole block
// on one fiber), else it goes back to the scheduler and waits for another thread. A thread that waits at a
// barrier keeps its worker until it returns. Workers and their stacks are reused by every block.
struct Worker {
  ucontext_t uc{};
  char* stack = nullptr;       // kStackBytes, a guard page below
  void* fake_stack = nullptr;  // ASan's
  Thread* thread = nullptr;    // what it runs now; null while free
  bool fresh = true;           // needs makecontext (new, or abandoned inside a faulted block)
};

struct Block {
  const char* kernel = nullptr;
  BlockContext ctx{};
  const std::function<void()>* body = nullptr;
  std::vector<Thread> threads;
  const std::vector<int>* order = nullptr;
  std::size_t cursor = 0;      // the position in `order` of the thread started last
  ucontext_t scheduler{};
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  std::size_t scheduler_stack_size = 0;
  std::string fault;           // set by a thread that found an error; the block is abandoned
};

thread_local Block* running_block = nullptr;
thread_local Worker* running_worker = nullptr;

// The workers of this host thread (blocks run on the thread that waits for the stream).
struct WorkerPool {
  std::vector<std::unique_ptr<Worker>> workers;
  Worker* free_worker() {
    for (auto& w : workers)
      if (w->thread == nullptr) return w.get();
    auto w = std::make_unique<Worker>();
    const long page = sysconf(_SC_PAGESIZE);
    void* m = mmap(nullptr, kStackBytes + static_cast<std::size_t>(page), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      std::perror("dropnet emulated device: mmap of a fiber stack");
      std::abort();
    }
    mprotect(m, static_cast<std::size_t>(page), PROT_NONE);  // an overflow faults instead of corrupting
    w->stack = static_cast<char*>(m) + page;
    workers.push_back(std::move(w));
    return workers.back().get();
  }
};

// ---- switching between the scheduler and a worker (with ASan's fiber annotations when it is on) ----

void switch_to_scheduler(Worker& w) {
  Block& b = *running_block;
#if defined(DROPNET_ASAN_FIBERS)
  __sanitizer_start_switch_fiber(&w.fake_stack, b.scheduler_stack_bottom, b.scheduler_stack_size);
#endif
  swapcontext(&w.uc, &b.scheduler);
#if defined(DROPNET_ASAN_FIBERS)
  __sanitizer_finish_switch_fiber(w.fake_stack, &running_block->scheduler_stack_bottom,
                                  &running_block->scheduler_stack_size);
#endif
}

void worker_main() {
  Worker& w = *running_worker;
#if defined(DROPNET_ASAN_FIBERS)
  __sanitizer_finish_switch_fiber(nullptr, &running_block->scheduler_stack_bottom,
                                  &running_block->scheduler_stack_size);
#endif
  for (;;) {
    Block& b = *running_block;
    Thread* t = w.thread;
    t->state = State::Ready;
    (*b.body)();
    t->state = State::Done;
    t->worker = nullptr;
    // Chain on to the next thread in order when it has not started: what the scheduler would run next.
    const std::size_t next = b.cursor + 1;
    if (b.fault.empty() && next < b.order->size()) {
      Thread& n = b.threads[static_cast<std::size_t>((*b.order)[next])];
      if (n.state == State::Unstarted && &n != t) {
        b.cursor = next;
        w.thread = &n;
        n.worker = &w;
        continue;
      }
    }
    w.thread = nullptr;
    switch_to_scheduler(w);  // free: resumed with a new thread to run
  }
}

void resume(Block& b, Worker& w) {
  running_worker = &w;
  if (w.fresh) {
    getcontext(&w.uc);
    w.uc.uc_stack.ss_sp = w.stack;
    w.uc.uc_stack.ss_size = kStackBytes;
    w.uc.uc_link = nullptr;
    makecontext(&w.uc, worker_main, 0);
    w.fresh = false;
  }
#if defined(DROPNET_ASAN_FIBERS)
  __sanitizer_start_switch_fiber(&b.scheduler_fake_stack, w.stack, kStackBytes);
#endif
  swapcontext(&b.scheduler, &w.uc);
#if defined(DROPNET_ASAN_FIBERS)
  __sanitizer_finish_switch_fiber(b.scheduler_fake_stack, nullptr, nullptr);
#endif
  running_worker = nullptr;
}

// Suspends the running thread at a barrier until the scheduler releases it.
void wait(State barrier, unsigned warp_mask = 0) {
  Worker& w = *running_worker;
  w.thread->state = barrier;
  w.thread->warp_mask = warp_mask;
  switch_to_scheduler(w);
}

std::string describe(const Block& b) {
  return std::string("kernel ") + b.kernel + ", block (" + std::to_string(b.ctx.block_idx.x) + ", " +
         std::to_string(b.ctx.block_idx.y) + ", " + std::to_string(b.ctx.block_idx.z) + ")";
}

std::string site(const Thread& t) {
  return std::string(t.site_file != nullptr ? t.site_file : "?") + ":" + std::to_string(t.site_line);
}

// Opens the block barrier when every live thread has arrived, all at one call site (else a fault).
bool release_block_barrier(Block& b) {
  std::size_t live = 0, at_block = 0;
  const Thread* first = nullptr;
  for (const Thread& t : b.threads) {
    live += t.state != State::Done;
    if (t.state != State::AtBlockBarrier) continue;
    ++at_block;
    if (first == nullptr) first = &t;
    else if (t.site_line != first->site_line ||
             std::strcmp(t.site_file ? t.site_file : "", first->site_file ? first->site_file : "") != 0) {
      b.fault = describe(b) + ": threads wait at different __syncthreads() (thread " +
                std::to_string(first->ctx.linear) + " at " + site(*first) + ", thread " + std::to_string(t.ctx.linear) +
                " at " + site(t) + "): a barrier in divergent code, which CUDA leaves undefined";
      return false;
    }
  }
  if (at_block == 0 || at_block != live) return false;
  for (Thread& t : b.threads)
    if (t.state == State::AtBlockBarrier) t.state = State::Ready;
  return true;
}

// Opens the warp barriers of `warp` whose lanes have all arrived. Returns whether any opened.
bool release_warp_barriers(Block& b, std::size_t warp) {
  bool released = false;
  const std::size_t n = b.threads.size();
  for (std::size_t lane = 0; lane < 32 && warp * 32 + lane < n; ++lane) {
    Thread& t = b.threads[warp * 32 + lane];
    if (t.state != State::AtWarpBarrier) continue;
    bool all = true;
    for (std::size_t other = 0; other < 32 && all; ++other) {
      if (((t.warp_mask >> other) & 1u) == 0) continue;
      const std::size_t i = warp * 32 + other;
      all = i < n && b.threads[i].state == State::AtWarpBarrier && b.threads[i].warp_mask == t.warp_mask;
    }
    if (!all) continue;
    for (std::size_t other = 0; other < 32; ++other)
      if ((t.warp_mask >> other) & 1u) b.threads[warp * 32 + other].state = State::Ready;
    released = true;
  }
  return released;
}

// Opens the barriers whose threads have all arrived. Returns whether any opened.
bool release_barriers(Block& b) {
  bool released = release_block_barrier(b);
  for (std::size_t warp = 0; warp * 32 < b.threads.size(); ++warp)
    released = release_warp_barriers(b, warp) || released;
  return released;
}

// Runs the warp of `t` ahead of the others: while its lanes open their warp barriers, they go on (in the
// block's order) to their next barrier, so a warp never waits for other warps at a __syncwarp or shuffle.
void run_warp_ahead(Block& b, const Thread& t) {
  const std::size_t warp = static_cast<std::size_t>(t.ctx.linear) / 32;
  const std::size_t saved_cursor = b.cursor;  // the outer pass goes on from where it was
  while (b.fault.empty() && release_warp_barriers(b, warp)) {
    for (int i : *b.order) {
      Thread& lane = b.threads[static_cast<std::size_t>(i)];
      if (static_cast<std::size_t>(lane.ctx.linear) / 32 != warp || lane.state != State::Ready) continue;
      resume(b, *lane.worker);
      if (!b.fault.empty()) break;
    }
  }
  b.cursor = saved_cursor;
}

bool run_block(Block& b, const std::vector<int>& order, WorkerPool& pool) {
  const dim3 dim = b.ctx.block_dim;
  const std::size_t n = static_cast<std::size_t>(dim.x) * dim.y * dim.z;
  b.threads.assign(n, Thread{});
  for (std::size_t i = 0; i < n; ++i) {
    const auto linear = static_cast<unsigned>(i);
    b.threads[i].ctx.thread_idx = uint3{linear % dim.x, linear / dim.x % dim.y, linear / (dim.x * dim.y)};
    b.threads[i].ctx.block = &b.ctx;
    b.threads[i].ctx.linear = static_cast<int>(i);
  }
  b.order = &order;
  poison_shared_memory();
  running_block = &b;
  for (;;) {
    bool ran = false;
    for (b.cursor = 0; b.cursor < n && b.fault.empty(); ++b.cursor) {
      Thread& t = b.threads[static_cast<std::size_t>(order[b.cursor])];
      if (t.state == State::Unstarted) {
        Worker* w = pool.free_worker();
        w->thread = &t;
        t.worker = w;
      } else if (t.state != State::Ready) {
        continue;
      }
      resume(b, *t.worker);  // may run the threads after it too, moving b.cursor on
      ran = true;
      if (t.state == State::AtWarpBarrier) run_warp_ahead(b, t);
    }
    if (!b.fault.empty()) break;
    if (std::all_of(b.threads.begin(), b.threads.end(), [](const Thread& t) { return t.state == State::Done; })) break;
    const bool released = release_barriers(b);
    if (!ran && !released) {
      std::size_t at_block = 0, at_warp = 0;
      for (const Thread& t : b.threads) {
        at_block += t.state == State::AtBlockBarrier;
        at_warp += t.state == State::AtWarpBarrier;
      }
      b.fault = describe(b) + ": a barrier can never open (" + std::to_string(at_block) +
                " thread(s) wait at __syncthreads, " + std::to_string(at_warp) +
                " at a warp shuffle or __syncwarp, the others are at another barrier or have returned)";
      break;
    }
  }
  running_block = nullptr;
  if (!b.fault.empty()) {
    // The workers still inside this block's threads are abandoned: each starts afresh next time.
    for (Thread& t : b.threads) {
      if (t.worker != nullptr) {
        t.worker->thread = nullptr;
        t.worker->fresh = true;
      }
    }
    device_fault(cudaErrorLaunchFailure, b.fault);
    return false;
  }
  return true;
}

}  // namespace

ThreadContext& current_thread() {
  if (running_worker == nullptr || running_worker->thread == nullptr) {
    std::fprintf(stderr, "dropnet emulated device: threadIdx, a barrier or a shuffle used outside a kernel\n");
    std::abort();
  }
  return running_worker->thread->ctx;
}

void sync_block(const char* file, int line) {
  current_thread();
  Thread& t = *running_worker->thread;
  t.site_file = file;
  t.site_line = line;
  wait(State::AtBlockBarrier);
  ++t.block_epoch;
}

void sync_warp(unsigned mask) {
  ThreadContext& t = current_thread();
  if (((mask >> (t.linear % 32)) & 1u) == 0) {
    running_block->fault = describe(*running_block) + ": thread " + std::to_string(t.linear) +
                           " called __syncwarp or a shuffle with a mask that leaves out its own lane";
    wait(State::AtWarpBarrier, mask);  // never released: the block is abandoned
    return;
  }
  const std::size_t warp_base = static_cast<std::size_t>(t.linear) / 32 * 32;
  for (std::size_t lane = 0; lane < 32; ++lane) {
    if (((mask >> lane) & 1u) == 0) continue;
    const std::size_t i = warp_base + lane;
    if (i >= running_block->threads.size() || running_block->threads[i].state == State::Done) {
      running_block->fault = describe(*running_block) + ": thread " + std::to_string(t.linear) +
                             " exchanges with lane " + std::to_string(lane) +
                             ", which does not exist or has returned (the mask must name live lanes only)";
      wait(State::AtWarpBarrier, mask);
      return;
    }
  }
  wait(State::AtWarpBarrier, mask);
  ++running_worker->thread->warp_epoch;
}

void warp_exchange(unsigned mask, const void* value, std::size_t bytes, int source_lane, void* out) {
  ThreadContext& t = current_thread();
  std::memcpy(&t.slot, value, bytes);
  sync_warp(mask);
  const std::size_t source = static_cast<std::size_t>(t.linear) / 32 * 32 + static_cast<std::size_t>(source_lane);
  const bool in_mask = source_lane >= 0 && source_lane < 32 && ((mask >> source_lane) & 1u) != 0;
  std::memcpy(out, in_mask ? &running_block->threads[source].ctx.slot : &t.slot, bytes);
  sync_warp(mask);
}

bool thread_position(ThreadPosition& out) {
  if (running_worker == nullptr || running_worker->thread == nullptr || running_block == nullptr) return false;
  const Thread& t = *running_worker->thread;
  const BlockContext& c = running_block->ctx;
  out.block = c.block_idx.x + c.block_idx.y * c.grid_dim.x + c.block_idx.z * c.grid_dim.x * c.grid_dim.y;
  out.thread = static_cast<std::uint32_t>(t.ctx.linear);
  out.block_epoch = t.block_epoch;
  out.warp_epoch = t.warp_epoch;
  return true;
}

void shared_memory_range(const char*& begin, const char*& end) {
  begin = __start_dropnet_shared;
  end = __stop_dropnet_shared;
}

void set_thread_order(const char* order) { chosen_order.store(order != nullptr ? parse_order(order) : env_order); }

bool run_grid(const char* name, dim3 grid, dim3 block, const std::function<void()>& thread_body) {
  static thread_local WorkerPool pool;
  const Order order = thread_order();
  const std::size_t blocks = static_cast<std::size_t>(grid.x) * grid.y * grid.z;
  const int threads = static_cast<int>(block.x * block.y * block.z);
  const std::vector<int> block_order = permutation(static_cast<int>(blocks), order, blocks);
  std::vector<int> thread_order_for_block = permutation(threads, order, 0);
  Block b;
  b.kernel = name;
  b.body = &thread_body;
  b.ctx.block_dim = block;
  b.ctx.grid_dim = grid;
  set_running_kernel(name);  // the launch memory_check's faults name, and racecheck's scope
  struct Done {
    ~Done() { set_running_kernel(nullptr); }
  } done;
  for (int linear_block : block_order) {
    const auto lb = static_cast<unsigned>(linear_block);
    b.ctx.block_idx = uint3{lb % grid.x, lb / grid.x % grid.y, lb / (grid.x * grid.y)};
    if (order == Order::Shuffle) thread_order_for_block = permutation(threads, order, lb + 1);
    b.fault.clear();
    if (!run_block(b, thread_order_for_block, pool)) return false;
  }
  return true;
}

}  // namespace dropnet::emulated
