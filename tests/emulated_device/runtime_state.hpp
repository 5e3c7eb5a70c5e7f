// runtime_state.hpp: the emulated CUDA runtime's own state, shared by its files (streams.cpp, memory.cpp,
// device.cpp). Test-only. The rules it keeps, and why, are in docs/design.md ("Testing the CUDA path
// without a GPU"); the short version:
//   - Streams are asynchronous: queued work runs only when the host waits for it. A read of device memory
//     without the wait it needs sees what was there before, and a test fails.
//   - Streams are independent queues. Waiting for one runs only its own work and what that work depends
//     on: stream order, cudaStreamWaitEvent (an op after the wait runs after the event's recorded point),
//     and the legacy default stream's implicit rules (an op on stream 0 waits for all prior work on
//     blocking streams; an op on a blocking stream, cudaStreamCreate, waits for prior stream-0 work;
//     non-blocking streams, cudaStreamNonBlocking, neither). Work nothing waited for does not run, so a
//     consumer stream that lacks its cudaStreamWaitEvent reads its input before the producer wrote it.
//     Where everything must run (cudaDeviceSynchronize, cudaFree), the stream with the newest work runs
//     first, with what it depends on: again a missing dependency shows as a stale read.
//   - A stream being captured records its work, arguments by value, instead of queueing it; a replay runs
//     the recorded work again. Calls CUDA forbids during capture fail with CUDA's error and invalidate it.
//   - Errors: a launch's configuration error is the "last error" (cleared by cudaGetLastError); a fault
//     found while running (an out-of-bounds write, a barrier deadlock) is sticky: every later call
//     returns it, as after a real device fault, and the queued work is dropped.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace dropnet::emulated {

struct Op {
  std::uint64_t seq = 0;        // global issue order
  std::string what;             // for fault messages
  std::function<void()> work;
  // The ops (by seq, on other streams) that must have run before this one: the event point of a
  // cudaStreamWaitEvent, the legacy stream's implicit waits. Empty in a capture's nodes.
  std::vector<std::uint64_t> after;
};

struct Capture {
  std::uint64_t id = 0;         // unique, for the events recorded in it
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;       // the thread that began it
  std::vector<Op> nodes;        // in stream order
  cudaError_t invalidated = cudaSuccess;  // the error that invalidated it, if any
};

struct Stream {
  unsigned flags = 0;           // cudaStreamDefault (blocking) or cudaStreamNonBlocking
  std::deque<Op> pending;       // not yet run, in stream order (rising seq)
  std::unique_ptr<Capture> capture;
  bool blocking() const { return (flags & cudaStreamNonBlocking) == 0; }
};

struct Allocation {
  std::size_t bytes = 0;        // what cudaMalloc was asked for
  std::size_t guarded = 0;      // bytes after the allocation that must keep their fill (slack + redzone)
  bool pinned = false;          // cudaMallocHost (host memory the copies may read when they run)
  std::size_t front = 0;        // guard bytes before the start (a redzone holding the same fill)
  std::uint64_t id = 0;         // 1, 2, ... in allocation order, for fault messages
  std::vector<unsigned char> written;  // initcheck: 1 per byte written since cudaMalloc (empty: not checked)
};

struct GraphData {
  std::vector<Op> nodes;
};

struct EventData {
  std::uint64_t seq = 0;        // the op it was last recorded as (0: never, or recorded during a capture)
  std::uint64_t capture = 0;    // the capture it was last recorded in (0: none)
};

struct Runtime {
  std::recursive_mutex mutex;
  std::uint64_t next_seq = 1;
  std::uint64_t next_capture = 1;
  Stream legacy;                               // stream 0
  std::map<cudaStream_t, std::unique_ptr<Stream>> streams;
  std::unordered_map<std::uint64_t, Stream*> queued;  // every op not yet run, by seq: where it waits
  std::map<cudaEvent_t, std::unique_ptr<EventData>> events;
  std::map<cudaGraph_t, std::unique_ptr<GraphData>> graphs;
  std::map<cudaGraphExec_t, std::unique_ptr<GraphData>> execs;
  std::map<std::uintptr_t, Allocation> allocations;  // by start address: device and pinned host memory
  cudaError_t sticky = cudaSuccess;
  bool executing = false;                      // inside queued work (no runtime call may wait there)
};

Runtime& runtime();
// The device's memory: 16 GiB, or DROPNET_EMULATION_MEMORY_MIB MiB when set (a test's small GPU).
std::size_t total_device_memory();
cudaError_t& last_error();  // per host thread, as CUDA's

// Records `error` as the last error and returns it (the usual way for an API call to fail).
cudaError_t fail(cudaError_t error);

// nullptr for stream 0 (and the legacy/per-thread handles); the stream, or nullptr with *ok = false for
// an unknown handle.
Stream* resolve(cudaStream_t handle, bool* ok);

// Marks a capture invalidated by `error` (the first error stays: cudaStreamEndCapture reports the capture
// as invalidated whatever came after).
void invalidate(Capture& c, cudaError_t error);

// Whether a call that must not happen during capture is made by a thread that the capture rules forbid
// (cudaStreamCaptureModeGlobal: any capture in progress; ThreadLocal: one this thread began). If so, the
// capture is invalidated and the error to return is given.
cudaError_t forbidden_during_capture();
// cudaErrorStreamCaptureImplicit when some blocking stream is being captured (a legacy-stream operation
// would depend on it); that capture is invalidated.
cudaError_t implicit_legacy_dependency();

// Runs the work queued on `stream` up to and including op `seq`, each op after what it depends on (see
// the header comment), and nothing else. Returns the sticky error if running it faulted.
cudaError_t run_until(Stream* stream, std::uint64_t seq);
// What a synchronous call on the legacy stream waits for (cudaMemcpy, cudaStreamSynchronize(0)): all work
// queued on it and on every blocking stream, and what that depends on.
cudaError_t run_legacy_and_blocking();
// All queued work (cudaDeviceSynchronize, cudaFree).
cudaError_t run_everything();

// After an op ran: every allocation's guard bytes (before and after it) still hold their fill, else a sticky
// fault naming `what`. (Under ASan the guard zones are poisoned instead, and faults come at the instruction.)
void check_guards(const std::string& what);
// The allocation holding [p, p + bytes), or nullptr.
const Allocation* find_allocation(const void* p, std::size_t bytes, std::uintptr_t* start = nullptr);

}  // namespace dropnet::emulated
