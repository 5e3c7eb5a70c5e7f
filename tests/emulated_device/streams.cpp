// streams.cpp: streams, events, stream capture and graphs, and kernel launches of the emulated CUDA
// runtime (rules: runtime_state.hpp). Test-only.
#include <algorithm>
#include <cstdio>
#include <utility>

#include "emulated_device/block_scheduler.hpp"
#include "emulated_device/device_state.hpp"
#include "emulated_device/memory_check.hpp"
#include "emulated_device/runtime_state.hpp"

namespace dropnet::emulated {

Runtime& runtime() {
  static Runtime* r = new Runtime();  // never destroyed: destructors of static objects may still call in
  return *r;
}

cudaError_t& last_error() {
  thread_local cudaError_t error = cudaSuccess;
  return error;
}

cudaError_t fail(cudaError_t error) {
  if (error != cudaSuccess) last_error() = error;
  return error;
}

Stream* resolve(cudaStream_t handle, bool* ok) {
  *ok = true;
  if (handle == nullptr || handle == cudaStreamLegacy || handle == cudaStreamPerThread) return &runtime().legacy;
  auto found = runtime().streams.find(handle);
  if (found == runtime().streams.end()) {
    *ok = false;
    return nullptr;
  }
  return found->second.get();
}

namespace {

std::vector<Stream*> all_streams() {
  std::vector<Stream*> out{&runtime().legacy};
  for (auto& [handle, s] : runtime().streams) out.push_back(s.get());
  return out;
}

void abort_if_executing() {
  if (runtime().executing) {
    std::fprintf(stderr, "dropnet emulated device: a runtime call waited from inside queued work\n");
    std::abort();
  }
}

// A faulted device runs nothing more: the queued work is dropped. Returns the sticky error.
cudaError_t drop_queued_work() {
  Runtime& r = runtime();
  for (Stream* s : all_streams()) s->pending.clear();
  r.queued.clear();
  return r.sticky;
}

// Runs the op at the front of `s`, then checks every allocation's guard bytes.
void run_front(Stream* s) {
  Runtime& r = runtime();
  Op op = std::move(s->pending.front());
  s->pending.pop_front();
  r.queued.erase(op.seq);
  r.executing = true;
  op.work();
  r.executing = false;
  check_guards(op.what);
}

// Runs `s`'s ops with seq <= `until` in stream order, each after the ops it depends on (recursively: an op
// depends only on ops issued before it, so this ends, and each stream is entered at most once at a time).
// Nothing else runs: a stream that nothing here depends on keeps its work queued.
void run_stream(Stream* s, std::uint64_t until) {
  Runtime& r = runtime();
  while (r.sticky == cudaSuccess && !s->pending.empty() && s->pending.front().seq <= until) {
    const std::vector<std::uint64_t> after = s->pending.front().after;  // a copy: a fault clears the queue
    for (std::uint64_t seq : after) {
      auto waited = r.queued.find(seq);
      if (waited != r.queued.end()) run_stream(waited->second, seq);
      if (r.sticky != cudaSuccess) return;
    }
    run_front(s);
  }
}

// Runs all the work of `streams` (and what it depends on). The stream whose newest op is the newest goes
// first, not the order of issue: of two streams that nothing orders, the consumer usually issued its work
// last, and running it first shows a missing cudaStreamWaitEvent as a stale read.
cudaError_t run_all_of(const std::vector<Stream*>& streams) {
  Runtime& r = runtime();
  abort_if_executing();
  for (;;) {
    if (r.sticky != cudaSuccess) return drop_queued_work();
    Stream* next = nullptr;
    for (Stream* s : streams)
      if (!s->pending.empty() && (next == nullptr || s->pending.back().seq > next->pending.back().seq)) next = s;
    if (next == nullptr) return cudaSuccess;
    run_stream(next, UINT64_MAX);
  }
}

// The ops that a new op on `s` implicitly waits for (the legacy default stream's rules): on the legacy
// stream, the newest queued op of every blocking stream; on a blocking stream, the legacy stream's newest.
// (Ops that have run need no wait; stream order covers the older ones.)
std::vector<std::uint64_t> implicit_waits(Stream* s) {
  Runtime& r = runtime();
  std::vector<std::uint64_t> after;
  if (s == &r.legacy) {
    for (auto& [handle, other] : r.streams)
      if (other->blocking() && !other->pending.empty()) after.push_back(other->pending.back().seq);
  } else if (s->blocking() && !r.legacy.pending.empty()) {
    after.push_back(r.legacy.pending.back().seq);
  }
  return after;
}

// Queues `op` on `s` (not being captured) with the implicit waits and `extra` ones; returns its seq.
std::uint64_t queue(Stream* s, const char* what, std::function<void()> work, std::vector<std::uint64_t> extra = {}) {
  Runtime& r = runtime();
  Op op{r.next_seq++, what, std::move(work), implicit_waits(s)};
  op.after.insert(op.after.end(), extra.begin(), extra.end());
  r.queued.emplace(op.seq, s);
  s->pending.push_back(std::move(op));
  return r.next_seq - 1;
}

}  // namespace

void invalidate(Capture& c, cudaError_t error) {
  if (c.invalidated == cudaSuccess) c.invalidated = error;
}

cudaError_t run_until(Stream* stream, std::uint64_t seq) {
  Runtime& r = runtime();
  abort_if_executing();
  if (r.sticky == cudaSuccess) run_stream(stream, seq);
  return r.sticky != cudaSuccess ? drop_queued_work() : cudaSuccess;
}

cudaError_t run_legacy_and_blocking() {
  std::vector<Stream*> ordered;
  for (Stream* s : all_streams())
    if (s->blocking()) ordered.push_back(s);  // the legacy stream counts as blocking
  return run_all_of(ordered);
}

cudaError_t run_everything() { return run_all_of(all_streams()); }

cudaError_t forbidden_during_capture() {
  for (Stream* s : all_streams()) {
    Capture* c = s->capture.get();
    if (c == nullptr || c->mode == cudaStreamCaptureModeRelaxed) continue;
    if (c->mode == cudaStreamCaptureModeThreadLocal && c->thread != std::this_thread::get_id()) continue;
    invalidate(*c, cudaErrorStreamCaptureUnsupported);
    return cudaErrorStreamCaptureUnsupported;
  }
  return cudaSuccess;
}

cudaError_t implicit_legacy_dependency() {
  for (Stream* s : all_streams()) {
    if (s->capture && s->blocking()) {
      invalidate(*s->capture, cudaErrorStreamCaptureImplicit);
      return cudaErrorStreamCaptureImplicit;
    }
  }
  return cudaSuccess;
}

cudaError_t enqueue(cudaStream_t handle, const char* what, std::function<void()> work) {
  work = checked_work(what, std::move(work));  // memcheck and initcheck while it runs (memory_check.hpp)
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  if (r.sticky != cudaSuccess) return r.sticky;
  bool ok = false;
  Stream* s = resolve(handle, &ok);
  if (!ok) return cudaErrorInvalidResourceHandle;
  if (s->capture) {
    if (s->capture->invalidated != cudaSuccess) return cudaErrorStreamCaptureInvalidated;
    s->capture->nodes.push_back(Op{0, what, std::move(work), {}});
    return cudaSuccess;
  }
  if (s == &r.legacy) {
    if (const cudaError_t e = implicit_legacy_dependency(); e != cudaSuccess) return e;
  }
  queue(s, what, std::move(work));
  return cudaSuccess;
}

void device_fault(cudaError_t error, const std::string& message) {
  Runtime& r = runtime();
  if (r.sticky == cudaSuccess) r.sticky = error;
  std::fprintf(stderr, "dropnet emulated device: %s\n", message.c_str());
}


// ---- kernel launches ------------------------------------------------------------------------------

void submit_kernel(const char* name, dim3 grid, dim3 block, cudaStream_t stream, std::function<void()> thread_body) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  if (r.sticky != cudaSuccess) {
    fail(r.sticky);
    return;
  }
  // CUDA's limits (compute capability 9.0): every dimension at least 1, a block of at most 1024 threads.
  const unsigned long long threads = static_cast<unsigned long long>(block.x) * block.y * block.z;
  const bool valid = grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7FFFFFFFu && grid.y <= 65535 &&
                     grid.z <= 65535 && block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 &&
                     block.y <= 1024 && block.z <= 64 && threads <= 1024;
  if (!valid) {
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  const std::string what = std::string("kernel ") + name;
  fail(enqueue(stream, what.c_str(), [name, grid, block, body = std::move(thread_body)] {
    run_grid(name, grid, block, body);
  }));
}

// The event and the stream a call names: false for an unknown handle of either (CUDA's
// cudaErrorInvalidResourceHandle).
bool event_and_stream(cudaEvent_t event, cudaStream_t stream, EventData*& ev, Stream*& s) {
  Runtime& r = runtime();
  const auto found = r.events.find(event);
  if (found == r.events.end()) return false;
  bool ok = false;
  s = resolve(stream, &ok);
  ev = found->second.get();
  return ok;
}

}  // namespace dropnet::emulated

using namespace dropnet::emulated;

// ---- streams ---------------------------------------------------------------------------------------

extern "C" {

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  std::lock_guard lock(runtime().mutex);
  if (stream == nullptr || (flags & ~cudaStreamNonBlocking) != 0) return fail(cudaErrorInvalidValue);
  auto s = std::make_unique<Stream>();
  s->flags = flags;
  // The handle is the object's address: unique while the stream lives.
  *stream = reinterpret_cast<cudaStream_t>(s.get());
  runtime().streams.emplace(*stream, std::move(s));
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamGetFlags(cudaStream_t stream, unsigned int* flags) {
  std::lock_guard lock(runtime().mutex);
  if (flags == nullptr) return fail(cudaErrorInvalidValue);
  bool ok = false;
  const Stream* s = resolve(stream, &ok);
  if (!ok) return fail(cudaErrorInvalidResourceHandle);
  *flags = s->flags;  // the legacy stream's are 0 (cudaStreamDefault)
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  auto found = r.streams.find(stream);
  if (found == r.streams.end()) return fail(cudaErrorInvalidResourceHandle);
  if (found->second->capture) return fail(cudaErrorStreamCaptureUnsupported);
  // CUDA lets queued work finish after the call; here nothing would run it later.
  const cudaError_t e = run_until(found->second.get(), UINT64_MAX);
  r.streams.erase(found);
  return e == cudaSuccess ? cudaSuccess : fail(e);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  bool ok = false;
  Stream* s = resolve(stream, &ok);
  if (!ok) return fail(cudaErrorInvalidResourceHandle);
  if (s->capture) {
    invalidate(*s->capture, cudaErrorStreamCaptureUnsupported);
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  if (s == &r.legacy) {
    if (const cudaError_t e = implicit_legacy_dependency(); e != cudaSuccess) return fail(e);
    return fail(run_legacy_and_blocking());
  }
  return fail(run_until(s, UINT64_MAX));
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  std::lock_guard lock(runtime().mutex);
  bool ok = false;
  Stream* s = resolve(stream, &ok);
  if (!ok) return fail(cudaErrorInvalidResourceHandle);
  if (runtime().sticky != cudaSuccess) return runtime().sticky;
  return s->pending.empty() ? cudaSuccess : cudaErrorNotReady;
}

// A wait for the whole device conflicts with every capture in progress on it, whatever its mode and
// thread (on a GPU the capture is invalidated and the call fails with cudaErrorStreamCaptureUnsupported,
// unlike the calls cudaStreamCaptureModeThreadLocal allows other threads to make).
cudaError_t cudaDeviceSynchronize(void) {
  std::lock_guard lock(runtime().mutex);
  cudaError_t refused = cudaSuccess;
  for (Stream* s : all_streams()) {
    if (s->capture && s->capture->mode != cudaStreamCaptureModeRelaxed) {
      invalidate(*s->capture, cudaErrorStreamCaptureUnsupported);
      refused = cudaErrorStreamCaptureUnsupported;
    }
  }
  if (refused != cudaSuccess) return fail(refused);
  return fail(run_everything());
}

// ---- events ----------------------------------------------------------------------------------------

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  std::lock_guard lock(runtime().mutex);
  if (event == nullptr || (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess)) != 0)
    return fail(cudaErrorInvalidValue);
  auto e = std::make_unique<EventData>();
  *event = reinterpret_cast<cudaEvent_t>(e.get());
  runtime().events.emplace(*event, std::move(e));
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::lock_guard lock(runtime().mutex);
  return runtime().events.erase(event) == 1 ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  EventData* ev = nullptr;
  Stream* s = nullptr;
  if (!event_and_stream(event, stream, ev, s)) return fail(cudaErrorInvalidResourceHandle);
  if (const cudaError_t e = enqueue(stream, "cudaEventRecord", [] {}); e != cudaSuccess) return fail(e);
  // Recorded into a graph, the event marks no point of any stream's queue.
  ev->seq = s->capture ? 0 : r.next_seq - 1;
  ev->capture = s->capture ? s->capture->id : 0;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  auto found = r.events.find(event);
  if (found == r.events.end()) return fail(cudaErrorInvalidResourceHandle);
  if (const cudaError_t e = forbidden_during_capture(); e != cudaSuccess) return fail(e);
  if (found->second->seq == 0) return cudaSuccess;  // never recorded: complete
  auto queued = r.queued.find(found->second->seq);
  if (queued == r.queued.end()) return fail(r.sticky);  // it ran (or the device faulted)
  return fail(run_until(queued->second, found->second->seq));
}

// The ops queued on `stream` after this call run after the op the event was last recorded as (and so after
// everything before it on its stream). Waiting within one capture for an event recorded earlier in it is
// stream order already; a capture joined across streams (a fork or join through an event) is not emulated.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  EventData* ev = nullptr;
  Stream* s = nullptr;
  if (!event_and_stream(event, stream, ev, s)) return fail(cudaErrorInvalidResourceHandle);
  if (flags != cudaEventWaitDefault) return fail(cudaErrorInvalidValue);  // cudaEventWaitExternal: capture only
  if (r.sticky != cudaSuccess) return fail(r.sticky);
  const EventData& e = *ev;
  if (s->capture && e.capture == s->capture->id) return cudaSuccess;
  if (s->capture || e.capture != 0) {
    std::fprintf(stderr, "dropnet emulated device: cudaStreamWaitEvent across a capture boundary is not emulated\n");
    for (Stream* capturing : all_streams())  // the capture waiting, and the one the event was recorded in
      if (capturing->capture && (capturing == s || capturing->capture->id == e.capture))
        invalidate(*capturing->capture, cudaErrorNotSupported);
    return fail(cudaErrorNotSupported);
  }
  if (s == &r.legacy) {
    if (const cudaError_t err = implicit_legacy_dependency(); err != cudaSuccess) return fail(err);
  }
  std::vector<std::uint64_t> after;
  if (e.seq != 0) after.push_back(e.seq);  // never recorded: nothing to wait for
  queue(s, "cudaStreamWaitEvent", [] {}, std::move(after));
  return cudaSuccess;
}

// ---- capture and graphs ----------------------------------------------------------------------------

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard lock(runtime().mutex);
  bool ok = false;
  Stream* s = resolve(stream, &ok);
  if (!ok) return fail(cudaErrorInvalidResourceHandle);
  if (s == &runtime().legacy) return fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot
  if (s->capture) return fail(cudaErrorIllegalState);
  s->capture = std::make_unique<Capture>();
  s->capture->id = runtime().next_capture++;
  s->capture->mode = mode;
  s->capture->thread = std::this_thread::get_id();
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  bool ok = false;
  Stream* s = resolve(stream, &ok);
  if (!ok) return fail(cudaErrorInvalidResourceHandle);
  if (graph == nullptr) return fail(cudaErrorInvalidValue);
  if (!s->capture) return fail(cudaErrorIllegalState);
  if (s->capture->mode != cudaStreamCaptureModeRelaxed && s->capture->thread != std::this_thread::get_id())
    return fail(cudaErrorStreamCaptureWrongThread);
  std::unique_ptr<Capture> c = std::move(s->capture);
  *graph = nullptr;
  if (c->invalidated != cudaSuccess) return fail(cudaErrorStreamCaptureInvalidated);
  auto g = std::make_unique<GraphData>();
  g->nodes = std::move(c->nodes);
  *graph = reinterpret_cast<cudaGraph_t>(g.get());
  r.graphs.emplace(*graph, std::move(g));
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard lock(runtime().mutex);
  bool ok = false;
  Stream* s = resolve(stream, &ok);
  if (!ok) return fail(cudaErrorInvalidResourceHandle);
  if (status == nullptr) return fail(cudaErrorInvalidValue);
  if (s == &runtime().legacy) {
    if (const cudaError_t e = implicit_legacy_dependency(); e != cudaSuccess) return fail(e);
  }
  *status = !s->capture                              ? cudaStreamCaptureStatusNone
            : s->capture->invalidated != cudaSuccess ? cudaStreamCaptureStatusInvalidated
                                                     : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  auto found = r.graphs.find(graph);
  if (exec == nullptr || found == r.graphs.end() || flags != 0) return fail(cudaErrorInvalidValue);
  auto e = std::make_unique<GraphData>(*found->second);  // a copy: the exec outlives its graph
  *exec = reinterpret_cast<cudaGraphExec_t>(e.get());
  r.execs.emplace(*exec, std::move(e));
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  auto found = r.execs.find(exec);
  if (found == r.execs.end()) return fail(cudaErrorInvalidValue);
  const GraphData* g = found->second.get();
  // The nodes run with the values they were recorded with; a node that faults stops the rest.
  return fail(enqueue(stream, "cudaGraphLaunch", [g] {
    for (const Op& node : g->nodes) {
      node.work();
      if (runtime().sticky != cudaSuccess) return;
      check_guards(node.what + " (replayed from a graph)");
    }
  }));
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  std::lock_guard lock(runtime().mutex);
  return runtime().graphs.erase(graph) == 1 ? cudaSuccess : fail(cudaErrorInvalidValue);
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  Runtime& r = runtime();
  std::lock_guard lock(r.mutex);
  auto found = r.execs.find(exec);
  if (found == r.execs.end()) return fail(cudaErrorInvalidValue);
  // CUDA lets a launch in flight finish first; here it must run before its nodes go.
  (void)run_everything();
  r.execs.erase(found);
  return cudaSuccess;
}

}  // extern "C"
