// graph.cpp: CudaBackend::capture(): fit's training step recorded once as a CUDA graph, then replayed
// with one cudaGraphLaunch per step (a few microseconds of CPU instead of dozens of launches and library calls).
//
// WHAT MAKES THE STEP CAPTURABLE. Stream capture records the work queued on the backend's stream instead
// of running it; the graph replays it later with the same arguments. The step (Impl::issue_fit_step) may
// therefore only queue stream work, and everything it reads that changes from step to step must be read
// on the device when the work runs:
//   * Step-varying values live in the model's step state in device memory (kernels/step_state.hpp): each
//     dropout layer's mask step (its slot, read by the dropout kernels), Adam's alpha
//     (alpha_by_batch[StepHeader::batch], read by the Adam kernel), the batch rows (order[batch * B + r],
//     read by the gather_batch kernels); advance_step's kernel moves the state on as the step's last op.
//     Nothing of it is read on the host during the step.
//   * Every op is a kernel launch, a cudaMemcpyAsync device-to-device on the stream (Linear activations,
//     Backend::copy: Flatten, a Dropout of rate 0; fills are Backend::fill), or a cuDNN / cuBLAS call
//     on the handles bound to the stream. cuBLAS runs on a fixed workspace of ours (cublasSetWorkspace,
//     device_context.cpp), so it never allocates; alpha/beta are host scalars (captured by value).
//   * Nothing allocates, frees or synchronizes: the step recorded is the second of its shape, so the first
//     (uncaptured) one has chosen every cuDNN algorithm (cudnnFind*, cached per geometry in CudnnConv) and
//     grown every scratch slot (DeviceContext). During a capture, a cuDNN plan for a new shape, a scratch
//     slot or the ones vector that would grow, the pinned staging of host->device gathers (these check
//     cudaStreamIsCapturing), synchronize() on the capturing thread, and the memory layer's allocations,
//     copies and fills on the capturing thread (Tensor construction, to(), copy_from(), fill(): the layer
//     knows the thread from the CaptureRegistration below, cuda_memory.hpp) throw a DeviceError that says
//     what happened, which fails the capture cleanly; a tensor freed during a capture is freed after it,
//     and fails it when the capturing thread freed it (the graph may use that memory at every replay).
//   * Scratch addresses are baked into the graph: the recording pins the blocks it was recorded with
//     (DeviceContext::pin_scratch), so a slot that grows later (validation batches of another shape) gets
//     a new block and the graph keeps reading the old one, which is freed with the recording.
// WHAT WOULD BREAK IT (each makes capture() throw DeviceError; fit then runs the step op by op):
//   * a host<->device copy or any read of device memory on the host in the step (Tensor::to_vector: the
//     memory layer refuses it on the capturing thread), synchronize(), cudaMalloc/cudaFree (a Tensor made
//     or dropped inside the step), gather_rows (its indices go through pinned staging);
//   * a step whose shapes differ from the uncaptured step before it (new cuDNN plan or larger scratch);
// and, silently: a value the step reads on the host and passes by value to a kernel (it is frozen at its
// recorded value), or a tensor the graph uses being freed or reallocated while the Recording lives.
// OTHER THREADS (other models, each with its backend, on their own host threads) go on during a capture:
// the capture mode is cudaStreamCaptureModeThreadLocal, so only this thread's unsafe calls (cudaMalloc,
// synchronizations...) break it, and the stream is a non-blocking one (make_stream), so their work on the
// legacy default stream (the memory layer's copies and fills) does not depend on the capturing stream
// either (with a blocking stream it would, and that invalidates the capture: cudaErrorStreamCaptureImplicit).
// They may allocate, copy, fill, run and record their own streams. What would still break the capture is
// a call that synchronizes the whole device, from any thread (cublasDestroy, a free...): those are
// DeviceWideCalls (cuda_memory.hpp), which the CaptureRegistration below keeps apart from the capture
// (frees are deferred to its end, a backend made or dropped meanwhile waits for it).
#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/cuda_memory.hpp"
#include "backend/cuda/device_context.hpp"
#include "dropnet/errors.hpp"

namespace dropnet::backend::cuda {
namespace {

std::string cuda_error_text(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

[[noreturn]] void capture_failed(const std::string& what) {
  throw DeviceError("CUDA graph capture failed: " + what);
}

// Marks the calling thread as the one inside capture() until end() or the end of the scope.
class CaptureThread {
 public:
  explicit CaptureThread(std::atomic<std::thread::id>& id) : id_(&id) { id.store(std::this_thread::get_id()); }
  ~CaptureThread() { end(); }
  CaptureThread(const CaptureThread&) = delete;
  CaptureThread& operator=(const CaptureThread&) = delete;
  void end() noexcept {
    if (id_ != nullptr) id_->store(std::thread::id{});
    id_ = nullptr;
  }

 private:
  std::atomic<std::thread::id>* id_;
};

class CudaRecording final : public Recording {
 public:
  CudaRecording(GraphExec exec, cudaStream_t stream, PinnedScratch scratch, std::weak_ptr<const void> backend_alive)
      : scratch_(std::move(scratch)), exec_(std::move(exec)), stream_(stream), alive_(std::move(backend_alive)) {}

  ~CudaRecording() override {
    exec_.reset();  // a launch still in flight completes first (CUDA frees the graph after it)
    // The pinned blocks nobody else holds are freed next: let the replays that read them finish first (on
    // the recording backend's stream, unless that backend, whose destructor waited for it, is gone).
    if (alive_.expired()) return;
    for (const auto& block : scratch_) {
      if (block.use_count() == 1) {
        CUDA_CHECK_LOG(cudaStreamSynchronize(stream_));
        break;
      }
    }
  }
  CudaRecording(const CudaRecording&) = delete;
  CudaRecording& operator=(const CudaRecording&) = delete;

  void replay() override { CUDA_CHECK(cudaGraphLaunch(exec_.get(), stream_)); }

 private:
  PinnedScratch scratch_;  // declared first: released after the graph
  GraphExec exec_;
  cudaStream_t stream_;
  std::weak_ptr<const void> alive_;  // expires with the backend that recorded it
};

}  // namespace

std::unique_ptr<Recording> CudaBackend::capture(const std::function<void()>& enqueue) {
  const cudaStream_t stream = ctx_->stream();
  if (ctx_->capturing() || capture_thread_.load() != std::thread::id{})
    capture_failed("the backend's stream is already being recorded");
  // From here until the capture has ended, synchronize() refuses this thread, the memory layer refuses to
  // allocate, copy or fill on it, and frees (from any thread) are deferred.
  CaptureThread capture_thread(capture_thread_);
  CaptureRegistration registration;
  // Ends those, then frees what was deferred; returns how many of those the step itself freed.
  auto end_deferral = [&] {
    capture_thread.end();
    return registration.end();
  };

  // ThreadLocal: only this thread's unsafe calls (cudaMalloc, synchronizations...) break the capture, so
  // other threads of the program may go on using CUDA ("other threads" above).
  const cudaError_t begun = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (begun != cudaSuccess) {
    (void)cudaGetLastError();
    end_deferral();
    capture_failed("cudaStreamBeginCapture failed: " + cuda_error_text(begun));
  }

  bool threw = false;
  std::string failure;
  try {
    enqueue();
  } catch (const std::exception& e) {
    threw = true;
    failure = e.what();
  } catch (...) {
    threw = true;
    failure = "the step threw an exception that is not a std::exception";
  }

  // Always end the capture, whatever happened: the stream then runs ops again.
  cudaGraph_t raw = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &raw);
  Graph graph(raw);
  (void)cudaGetLastError();  // capture errors are not sticky: clear them so the next launch check is clean

  // The capture is over: frees go through again, and the deferred ones happen now.
  const std::size_t freed_by_step = end_deferral();

  if (threw) capture_failed(failure);
  if (ended != cudaSuccess)
    capture_failed("cudaStreamEndCapture failed: " + cuda_error_text(ended) +
                   " (the step issued something that cannot be recorded, such as a synchronous copy or a wait)");
  if (freed_by_step > 0)
    capture_failed(std::to_string(freed_by_step) + " device tensor(s) were freed during the step, whose memory "
                   "the recorded ops may use at every replay");
  if (!graph) capture_failed("cudaStreamEndCapture returned no graph");

  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph.get(), 0);
  GraphExec owned(exec);
  if (instantiated != cudaSuccess) {
    (void)cudaGetLastError();
    capture_failed("cudaGraphInstantiate failed: " + cuda_error_text(instantiated));
  }
  return std::make_unique<CudaRecording>(std::move(owned), stream, ctx_->pin_scratch(), alive_);
}

}  // namespace dropnet::backend::cuda
