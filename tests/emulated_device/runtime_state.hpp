// runtime_state.hpp: the emulated CUDA runtime's own state, shared by its files (streams.cpp, memory.cpp,
// device.cpp). Test-only. The rules it keeps, and why, are in docs/design.md ("Testing the CUDA path
// without a GPU"); the short version:
//   - Streams are asynchronous: queued work runs only when the host waits for it. A read of device memory
//     without the wait it needs sees what was there before, and a test fails.
//   - The legacy default stream (0) is ordered with every blocking stream (cudaStreamCreate), not with
//     non-blocking ones (cudaStreamNonBlocking); waiting for one of them runs what it depends on.
//   - A stream being captured records its work, arguments by value, instead of queueing it; a replay runs
//     the recorded work again. Calls CUDA forbids during capture fail with CUDA's error and invalidate it.
//   - Errors: a launch's configuration error is the "last error" (cleared by cudaGetLastError); a fault
//     found while running (an out-of-bounds write, a barrier deadlock) is sticky: every later call
//     returns it, as after a real device fault.
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
#include <vector>

namespace dropnet::emulated {

struct Op {
  std::uint64_t seq = 0;        // global issue order
  std::string what;             // for fault messages
  std::function<void()> work;
};

struct Capture {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;       // the thread that began it
  std::vector<Op> nodes;        // in stream order
  cudaError_t invalidated = cudaSuccess;  // the error that invalidated it, if any
};

struct Stream {
  unsigned flags = 0;           // cudaStreamDefault (blocking) or cudaStreamNonBlocking
  std::deque<Op> pending;
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
  Stream* stream = nullptr;     // where it was last recorded (null: never, or recorded during capture)
  std::uint64_t seq = 0;
};

struct Runtime {
  std::recursive_mutex mutex;
  std::uint64_t next_seq = 1;
  Stream legacy;                               // stream 0
  std::map<cudaStream_t, std::unique_ptr<Stream>> streams;
  std::map<cudaEvent_t, std::unique_ptr<EventData>> events;
  std::map<cudaGraph_t, std::unique_ptr<GraphData>> graphs;
  std::map<cudaGraphExec_t, std::unique_ptr<GraphData>> execs;
  std::map<std::uintptr_t, Allocation> allocations;  // by start address: device and pinned host memory
  cudaError_t sticky = cudaSuccess;
  bool executing = false;                      // inside queued work (no runtime call may wait there)
};

Runtime& runtime();
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

// Runs queued work until `seq` on `stream` has run (and what it depends on; see the header comment).
// Returns the sticky error if running it faulted.
cudaError_t run_until(Stream* stream, std::uint64_t seq);
cudaError_t run_everything();

// After an op ran: every allocation's guard bytes (before and after it) still hold their fill, else a sticky
// fault naming `what`. (Under ASan the guard zones are poisoned instead, and faults come at the instruction.)
void check_guards(const std::string& what);
// The allocation holding [p, p + bytes), or nullptr.
const Allocation* find_allocation(const void* p, std::size_t bytes, std::uintptr_t* start = nullptr);

}  // namespace dropnet::emulated
