// fit's replayable training step on the GPU (backend.hpp: the step state, gather_batch, advance_step, the
// counters of dropout and Adam, capture): each op against the CPU backend bit for bit, and CUDA graph
// recording and replay, including recordings that fail.
#include <cuda_runtime_api.h>

#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_test_support.hpp"
#include "dropnet/errors.hpp"
#include "kernels/adam_math.hpp"

using namespace dropnet;
using namespace dropnet::cuda_testing;

namespace {

// Raw device memory holding a copy of a host vector (the DatasetView, order and counters of fit live in
// plain device memory, not in float tensors). `offset` bytes of padding come first, for misaligned views.
class DeviceBytes {
 public:
  template <typename T>
  explicit DeviceBytes(const std::vector<T>& values, std::size_t offset = 0) : bytes_(values.size() * sizeof(T)) {
    REQUIRE(cudaMalloc(&base_, bytes_ + offset + 16) == cudaSuccess);
    ptr_ = static_cast<char*>(base_) + offset;
    if (bytes_ > 0) REQUIRE(cudaMemcpy(ptr_, values.data(), bytes_, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~DeviceBytes() { cudaFree(base_); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;

  template <typename T>
  T* as() const {
    return reinterpret_cast<T*>(ptr_);
  }
  template <typename T>
  std::vector<T> read() const {
    gpu().synchronize();
    std::vector<T> out(bytes_ / sizeof(T));
    REQUIRE(cudaMemcpy(out.data(), ptr_, bytes_, cudaMemcpyDeviceToHost) == cudaSuccess);
    return out;
  }

 private:
  void* base_ = nullptr;
  char* ptr_ = nullptr;
  std::size_t bytes_;
};

backend::StepHeader read_counters(const DeviceBytes& d) { return d.read<backend::StepHeader>().at(0); }

// A dataset of `rows` records on the host, in all four forms.
struct HostDataset {
  std::int64_t rows, x_row, classes;
  std::vector<std::uint8_t> x_bytes, y_class;
  std::vector<float> x_float, y_float;
};

HostDataset make_dataset(std::int64_t rows, std::int64_t x_row, std::int64_t classes) {
  HostDataset d{rows, x_row, classes, {}, {}, {}, {}};
  const auto nx = static_cast<std::size_t>(rows * x_row);
  d.x_bytes.resize(nx);
  for (std::size_t i = 0; i < nx; ++i) d.x_bytes[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
  d.x_float = testing::uniform<float>(nx, -2.0, 2.0, 17);
  d.y_class.resize(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) d.y_class[static_cast<std::size_t>(r)] = static_cast<std::uint8_t>((r * 7 + 2) % classes);
  d.y_float = testing::uniform<float>(static_cast<std::size_t>(rows * classes), 0.0, 1.0, 18);
  return d;
}

// order = a permutation of [0, rows): r -> (r * step + 3) % rows, step coprime with rows.
std::vector<std::int64_t> permutation(std::int64_t rows, std::int64_t step) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) order[static_cast<std::size_t>(r)] = (r * step + 3) % rows;
  return order;
}

// The dataset on the device, with views for both backends.
struct DeviceDataset {
  DeviceBytes x_bytes, x_float, y_class, y_float;
  DeviceDataset(const HostDataset& h, std::size_t byte_offset)
      : x_bytes(h.x_bytes, byte_offset), x_float(h.x_float), y_class(h.y_class, byte_offset), y_float(h.y_float) {}
};

backend::DatasetView view(const HostDataset& h, bool bytes, bool classes) {
  backend::DatasetView v;
  v.rows = h.rows;
  v.x_row = h.x_row;
  v.classes = h.classes;
  if (bytes) v.x_bytes = h.x_bytes.data();
  else v.x_float = h.x_float.data();
  if (classes) v.y_class = h.y_class.data();
  else v.y_float = h.y_float.data();
  return v;
}

backend::DatasetView view(const DeviceDataset& d, const HostDataset& h, bool bytes, bool classes) {
  backend::DatasetView v;
  v.rows = h.rows;
  v.x_row = h.x_row;
  v.classes = h.classes;
  if (bytes) v.x_bytes = d.x_bytes.as<std::uint8_t>();
  else v.x_float = d.x_float.as<float>();
  if (classes) v.y_class = d.y_class.as<std::uint8_t>();
  else v.y_float = d.y_float.as<float>();
  return v;
}

const char* variant_name(bool bytes, bool classes) {
  if (bytes) return classes ? "bytes, classes" : "bytes, float targets";
  return classes ? "floats, classes" : "floats, float targets";
}

// gather_batch of batch `batch` (batch_size rows per full batch, `rows` in this one) on both backends;
// `offset` > 0 gathers into views that start `offset` floats into their storage (the scalar kernels).
void check_gather(const HostDataset& h, std::int64_t batch_size, std::int64_t batch, std::int64_t rows,
                  std::size_t byte_offset, std::int64_t offset) {
  const std::vector<std::int64_t> order = permutation(h.rows, 17);
  const DeviceDataset d(h, byte_offset);
  const DeviceBytes order_d(order);
  const backend::StepHeader counters{1234, batch, 0, 0, 0, 0};
  const DeviceBytes counters_d(std::vector<backend::StepHeader>{counters});
  for (bool bytes : {true, false}) {
    for (bool classes : {true, false}) {
      const std::string what = std::string("gather_batch (") + variant_name(bytes, classes) + ", x_row " +
                               std::to_string(h.x_row) + ", batch " + std::to_string(batch) + " of " +
                               std::to_string(rows) + " rows" + (offset || byte_offset ? ", misaligned" : "") + ")";
      Tensor bx_ref({rows, h.x_row}), by_ref({rows, h.classes});
      cpu().gather_batch(view(h, bytes, classes), order.data(), &counters, batch_size, bx_ref, by_ref);

      Tensor bxs = device_sentinel({rows * h.x_row + offset}), bys = device_sentinel({rows * h.classes + offset});
      Tensor bx = bxs.rows(offset, offset + rows * h.x_row).reshaped({rows, h.x_row});
      Tensor by = bys.rows(offset, offset + rows * h.classes).reshaped({rows, h.classes});
      gpu().gather_batch(view(d, h, bytes, classes), order_d.as<std::int64_t>(),
                         counters_d.as<backend::StepHeader>(), batch_size, bx, by);
      expect_identical(host_values(bx), bx_ref.to_vector(), what + " images");
      expect_identical(host_values(by), by_ref.to_vector(), what + " targets");
    }
  }
}

}  // namespace

TEST_CASE("gather_batch is bit-identical to the CPU backend", "[cuda][step]") {
  SECTION("rows of a multiple of 4 values: the vectorized kernels") {
    const HostDataset h = make_dataset(37, 12, 5);
    check_gather(h, 8, 2, 8, 0, 0);
    check_gather(h, 8, 4, 5, 0, 0);  // the epoch's last batch: 32 + 5 = 37 rows
  }
  SECTION("rows of 7 values: the scalar kernels") {
    const HostDataset h = make_dataset(37, 7, 10);
    check_gather(h, 8, 3, 8, 0, 0);
  }
  SECTION("misaligned bytes and outputs take the scalar kernels and still match") {
    const HostDataset h = make_dataset(37, 12, 5);
    check_gather(h, 8, 1, 8, 1, 1);
  }
  SECTION("every byte value converts as float(b) / 255.0f, as the CPU loader's table") {
    HostDataset h = make_dataset(64, 4, 3);
    for (std::size_t i = 0; i < h.x_bytes.size(); ++i) h.x_bytes[i] = static_cast<std::uint8_t>(i);
    check_gather(h, 64, 0, 64, 0, 0);
    // And that expression, not byte * (1 / 255.0f), which differs for some bytes.
    Tensor bx_ref({64, 4}), by_ref({64, 3});
    std::vector<std::int64_t> identity(64);
    std::iota(identity.begin(), identity.end(), 0);
    const backend::StepHeader c{0, 0, 0, 0, 0, 0};
    cpu().gather_batch(view(h, true, true), identity.data(), &c, 64, bx_ref, by_ref);
    const std::vector<float> x = bx_ref.to_vector();
    for (int b = 0; b < 256; ++b) CHECK(x[static_cast<std::size_t>(b)] == static_cast<float>(b) / 255.0f);
  }
}

TEST_CASE("advance_step moves the step state on the device", "[cuda][step]") {
  const DeviceBytes counters(std::vector<backend::StepHeader>{{41, 2, 0.5, 1.0, 3, 2}});
  // Slot 0 follows a late-dropout schedule (0 until iteration 43, then 0.5); slot 1 a constant 0.
  const DeviceBytes slots(std::vector<backend::StepSlot>{{10, 1, 0.0f, {0.0f, 0.5f, 43, 43}},
                                                          {7, 0, 0.0f, kernels::constant_rate(0.0f)}});
  const DeviceBytes stats(std::vector<float>{1.25f, 2.0f});
  auto* c = counters.as<backend::StepHeader>();
  for (int i = 0; i < 3; ++i)
    gpu().advance_step(c, slots.as<backend::StepSlot>(), {.optimizer_step = true, .batch_stats = stats.as<float>(), .rows = 4});
  backend::StepHeader got = read_counters(counters);
  CHECK(got.iteration == 44);
  CHECK(got.batch == 5);
  CHECK(got.loss_sum == 0.5 + 3 * double(1.25f));
  CHECK(got.correct == 7.0);
  CHECK(got.seen == 15);
  const std::vector<backend::StepSlot> s = slots.read<backend::StepSlot>();
  CHECK(s[0].step == 13);
  CHECK(s[1].step == 7);
  CHECK(s[0].rate == 0.5f);  // the schedule at iteration 44
  CHECK(s[1].rate == 0.0f);

  const DeviceBytes wraps(std::vector<backend::StepHeader>{{std::numeric_limits<std::uint64_t>::max(), -1, 0, 0, 0, 0}});
  gpu().advance_step(wraps.as<backend::StepHeader>(), nullptr, {});
  got = read_counters(wraps);
  CHECK(got.iteration == 0);
  CHECK(got.batch == 0);
}

TEST_CASE("dropout reads its rate from the slot when it runs: a schedule's 0 and 1 and values between", "[cuda][step][dropout]") {
  const Shape shape{3, 5, 7, 2};
  const Tensor x = host_random(shape, 8);
  const Tensor xd = x.to(Device::CUDA);
  for (const float rate : {0.0f, 1.0f, 0.3f}) {
    const backend::StepSlot host_slot{5, 1, rate, kernels::constant_rate(rate)};
    const DeviceBytes slot(std::vector<backend::StepSlot>{host_slot});
    backend::DropoutCall cpu_call{21, 0, 0.5f, shape, shape};  // the call's own rate is wrong on purpose
    cpu_call.slot = &host_slot;
    backend::DropoutCall gpu_call = cpu_call;
    gpu_call.slot = slot.as<backend::StepSlot>();
    Tensor y_ref(shape), y = device_sentinel(shape);
    cpu().dropout_forward(x, y_ref, cpu_call);
    gpu().dropout_forward(xd, y, gpu_call);
    // host_values waits for gpu()'s stream: the copy alone would not (non-blocking streams, backend/memory.hpp).
    expect_identical(host_values(y), y_ref.to_vector(), "slot rate " + std::to_string(rate));
    if (rate == 0.0f) CHECK(y_ref.to_vector() == x.to_vector());
  }
}

TEST_CASE("dropout reading its step from a step-state slot matches the CPU backend bit for bit", "[cuda][step][dropout]") {
  const Shape shape{6, 11, 11, 4};
  const std::uint64_t big = std::numeric_limits<std::uint64_t>::max() - 1;
  for (const std::uint64_t slot_step : {std::uint64_t{44}, std::uint64_t{0}, big}) {
    for (const Shape& mask : {shape, Shape{6, 1, 1, 4}}) {
      const std::string what = "dropout with a slot at step " + std::to_string(slot_step) + ", mask " + to_string(mask);
      const backend::StepSlot host_slot{slot_step, 1, 0.4f, kernels::constant_rate(0.4f)};
      const DeviceBytes slot(std::vector<backend::StepSlot>{host_slot});
      // The call's own step is wrong on purpose: the slot's must be used.
      backend::DropoutCall cpu_call{99, 12345, 0.4f, shape, mask};
      cpu_call.slot = &host_slot;
      backend::DropoutCall gpu_call = cpu_call;
      gpu_call.slot = slot.as<backend::StepSlot>();

      const Tensor x = host_random(shape, 5), dy = host_random(shape, 6);
      Tensor y_ref(shape), dx_ref(shape);
      cpu().dropout_forward(x, y_ref, cpu_call);
      cpu().dropout_backward(dy, dx_ref, cpu_call);
      // The slot's step is the mask's step: the same as a plain call with that step.
      Tensor y_plain(shape);
      cpu().dropout_forward(x, y_plain, backend::DropoutCall{99, slot_step, 0.4f, shape, mask});
      expect_identical(y_plain.to_vector(), y_ref.to_vector(), what + " (CPU, plain step)");

      const Tensor xd = x.to(Device::CUDA), dyd = dy.to(Device::CUDA);
      Tensor y = device_sentinel(shape), dx = device_sentinel(shape);
      gpu().dropout_forward(xd, y, gpu_call);
      gpu().dropout_backward(dyd, dx, gpu_call);
      expect_identical(host_values(y), y_ref.to_vector(), what + " forward");
      expect_identical(host_values(dx), dx_ref.to_vector(), what + " backward");
    }
  }
}

TEST_CASE("Adam with an alpha table matches the CPU backend bit for bit", "[cuda][step][adam]") {
  const std::int64_t n = 4099;
  std::vector<float> alphas;
  for (long long t = 1; t <= 4; ++t) alphas.push_back(kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, t).alpha);
  // The call's own alpha is wrong on purpose: the table must override it.
  kernels::AdamStep step = kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, 1);
  step.alpha = 123.0f;
  for (std::int64_t offset : {0, 1}) {  // 1: misaligned pointers take the scalar kernel
    const std::string what = offset ? "adam with a table (misaligned)" : "adam with a table";
    const Tensor p = host_random({n}, 1), g = host_random({n}, 2), m = host_random({n}, 3, -0.1, 0.1),
                 v = host_random({n}, 4, 0.0, 0.01);
    Tensor p_ref = p.clone(), m_ref = m.clone(), v_ref = v.clone();
    auto dev = [&](const Tensor& h) { return device_copy_at(h, offset); };
    Tensor pd = dev(p), gd = dev(g), md = dev(m), vd = dev(v);
    const DeviceBytes table(alphas);
    for (std::int64_t batch = 0; batch < 3; ++batch) {
      const backend::StepHeader host_counters{static_cast<std::uint64_t>(batch), batch + 1, 0, 0, 0, 0};
      const DeviceBytes counters(std::vector<backend::StepHeader>{host_counters});
      cpu().adam_update(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), static_cast<std::size_t>(n),
                        backend::AdamCall(step, alphas.data(), &host_counters));
      gpu().adam_update(pd.data(), gd.data(), md.data(), vd.data(), static_cast<std::size_t>(n),
                        backend::AdamCall(step, table.as<float>(), counters.as<backend::StepHeader>()));
      gpu().synchronize();  // `counters` goes out of scope
    }
    expect_identical(host_values(pd), p_ref.to_vector(), what + " params");
    expect_identical(host_values(md), m_ref.to_vector(), what + " m");
    expect_identical(host_values(vd), v_ref.to_vector(), what + " v");

    // Without the table, the plain step on both backends: also the same bits (no FMA contraction in adam.cu).
    Tensor p2 = p.clone(), m2 = m.clone(), v2 = v.clone();
    const kernels::AdamStep plain = kernels::adam_step(1e-3, 0.9, 0.999, 1e-7, 7);
    cpu().adam_update(p2.data(), g.data(), m2.data(), v2.data(), static_cast<std::size_t>(n), plain);
    Tensor pd2 = dev(p), md2 = dev(m), vd2 = dev(v);
    gpu().adam_update(pd2.data(), gd.data(), md2.data(), vd2.data(), static_cast<std::size_t>(n), plain);
    expect_identical(host_values(pd2), p2.to_vector(), what + " params, plain step");
  }
}

TEST_CASE("a recorded step replays with fresh counters each time", "[cuda][step][graph]") {
  const HostDataset h = make_dataset(40, 12, 5);
  const std::vector<std::int64_t> order = permutation(h.rows, 7);
  const DeviceDataset d(h, 0);
  const DeviceBytes order_d(order);
  const DeviceBytes counters_d(std::vector<backend::StepHeader>{{100, 0, 0, 0, 0, 0}});
  auto* counters = counters_d.as<backend::StepHeader>();
  const std::int64_t batch_size = 8;
  Tensor bx({batch_size, h.x_row}, Device::CUDA), by({batch_size, h.classes}, Device::CUDA);
  Tensor copy({batch_size, h.x_row}, Device::CUDA);
  const backend::DatasetView data = view(d, h, true, true);
  auto step = [&] {
    gpu().fill(bx.data(), static_cast<std::size_t>(bx.size()), std::numeric_limits<float>::quiet_NaN());
    gpu().gather_batch(data, order_d.as<std::int64_t>(), counters, batch_size, bx, by);
    // A device-to-device copy through the backend (as Flatten's): recorded on the stream too.
    gpu().copy(copy.data(), bx.data(), static_cast<std::size_t>(bx.size()));
    gpu().advance_step(counters, nullptr, {});
  };
  step();  // the uncaptured first step, as fit does
  backend::StepHeader c = read_counters(counters_d);
  REQUIRE(c.iteration == 101);
  REQUIRE(c.batch == 1);

  std::unique_ptr<backend::Recording> recording = gpu().capture(step);
  REQUIRE(recording != nullptr);
  c = read_counters(counters_d);
  CHECK(c.iteration == 101);  // recording runs nothing
  CHECK(c.batch == 1);

  for (int i = 0; i < 3; ++i) recording->replay();
  c = read_counters(counters_d);
  CHECK(c.iteration == 104);
  CHECK(c.batch == 4);

  // The last replay gathered batch 3.
  const backend::StepHeader last{103, 3, 0, 0, 0, 0};
  Tensor bx_ref({batch_size, h.x_row}), by_ref({batch_size, h.classes});
  cpu().gather_batch(view(h, true, true), order.data(), &last, batch_size, bx_ref, by_ref);
  expect_identical(host_values(bx), bx_ref.to_vector(), "replayed gather images");
  expect_identical(host_values(by), by_ref.to_vector(), "replayed gather targets");
  expect_identical(host_values(copy), bx_ref.to_vector(), "replayed device-to-device copy");
}

TEST_CASE("a recording keeps the scratch memory it was recorded with", "[cuda][step][graph]") {
  // Max-norm keeps its sums in the Norms scratch slot; a much larger kernel after the recording replaces
  // the slot's block, and the recording must go on using (and keeping alive) the old one.
  const Shape shape{3, 3, 5, 7};
  const backend::MaxNormCall call{shape, {0, 1, 2}, 1.5f};
  const Tensor w = host_random(shape, 31);
  Tensor w_ref = w.clone();
  cpu().maxnorm(w_ref.data(), call);

  const Tensor original = w.to(Device::CUDA);
  Tensor wd(shape, Device::CUDA);
  auto step = [&] {
    gpu().copy(wd.data(), original.data(), static_cast<std::size_t>(wd.size()));
    gpu().maxnorm(wd.data(), call);
  };
  step();
  std::unique_ptr<backend::Recording> recording = gpu().capture(step);
  REQUIRE(recording != nullptr);
  {
    // 64K groups: far more sums than the recorded max-norm's 7, so the slot gets a new block.
    const Shape big{2, std::int64_t{1} << 16};
    Tensor wb(big, Device::CUDA);
    gpu().maxnorm(wb.data(), backend::MaxNormCall{big, {0}, 1.0f});
    gpu().synchronize();
  }
  gpu().fill(wd.data(), static_cast<std::size_t>(wd.size()), 0.0f);
  recording->replay();
  expect_close(host_values(wd), w_ref.to_vector(), "replayed max-norm after its scratch slot grew");
  // The old block was held by the recording alone (and counted in the scratch bytes); it goes with it.
  const std::size_t held = gpu().memory_stats().scratch_bytes;
  recording.reset();
  CHECK(gpu().memory_stats().scratch_bytes < held);
  step();
  expect_close(host_values(wd), w_ref.to_vector(), "max-norm after the recording was destroyed");
}

TEST_CASE("a failed recording throws DeviceError and leaves the backend usable", "[cuda][step][graph]") {
  const HostDataset h = make_dataset(16, 4, 3);
  const std::vector<std::int64_t> order = permutation(h.rows, 5);
  const DeviceDataset d(h, 0);
  const DeviceBytes order_d(order);
  const DeviceBytes counters_d(std::vector<backend::StepHeader>{{0, 1, 0, 0, 0, 0}});
  auto* counters = counters_d.as<backend::StepHeader>();
  Tensor bx({4, h.x_row}, Device::CUDA), by({4, h.classes}, Device::CUDA);
  const backend::DatasetView data = view(d, h, false, false);

  // After each failure: the stream is no longer capturing and ordinary ops run and give the CPU's result.
  auto still_usable = [&](const std::string& after) {
    INFO("after " << after);
    CHECK_FALSE(gpu().recording());
    gpu().fill(bx.data(), static_cast<std::size_t>(bx.size()), -1.0f);
    gpu().gather_batch(data, order_d.as<std::int64_t>(), counters, 4, bx, by);
    const backend::StepHeader c{0, 1, 0, 0, 0, 0};
    Tensor bx_ref({4, h.x_row}), by_ref({4, h.classes});
    cpu().gather_batch(view(h, false, false), order.data(), &c, 4, bx_ref, by_ref);
    expect_identical(host_values(bx), bx_ref.to_vector(), "gather after " + after);
    CHECK(cudaGetLastError() == cudaSuccess);
    // A good recording still works.
    auto rec = gpu().capture([&] { gpu().fill(bx.data(), static_cast<std::size_t>(bx.size()), 2.0f); });
    REQUIRE(rec != nullptr);
    rec->replay();
    CHECK(host_values(bx) == std::vector<float>(static_cast<std::size_t>(bx.size()), 2.0f));
  };

  SECTION("the step throws") {
    CHECK_THROWS_AS(gpu().capture([&] {
      gpu().fill(bx.data(), static_cast<std::size_t>(bx.size()), 0.0f);
      throw std::runtime_error("the step failed on purpose");
    }),
                    DeviceError);
    still_usable("a throwing step");
  }
  SECTION("the step synchronizes") {
    CHECK_THROWS_AS(gpu().capture([&] {
      gpu().fill(bx.data(), static_cast<std::size_t>(bx.size()), 0.0f);
      gpu().synchronize();
    }),
                    DeviceError);
    still_usable("a synchronizing step");
  }
  SECTION("the step reads a tensor on the host") {
    CHECK_THROWS_AS(gpu().capture([&] { (void)bx.to_vector(); }), DeviceError);
    still_usable("a device-to-host copy");
  }
  SECTION("the step copies or fills through the memory layer instead of its backend") {
    // Tensor::copy_from and Tensor::fill run on the legacy default stream, outside the recorded stream.
    Tensor other({4, h.x_row}, Device::CUDA);
    try {
      (void)gpu().capture([&] { other.copy_from(bx); });
      FAIL("capture() did not throw");
    } catch (const DeviceError& e) {
      CHECK_THAT(e.what(), Catch::Contains("Backend::copy"));
    }
    still_usable("a Tensor::copy_from step");
    try {
      (void)gpu().capture([&] { other.fill(1.0f); });
      FAIL("capture() did not throw");
    } catch (const DeviceError& e) {
      CHECK_THAT(e.what(), Catch::Contains("Backend::fill"));
    }
    still_usable("a Tensor::fill step");
  }
  SECTION("the step allocates a tensor") {
    try {
      (void)gpu().capture([&] { Tensor t({100}, Device::CUDA); });
      FAIL("capture() did not throw");
    } catch (const DeviceError& e) {
      CHECK_THAT(e.what(), Catch::Contains("allocated"));
    }
    still_usable("an allocating step");
  }
  SECTION("the step frees a tensor made before it") {
    auto doomed = std::make_unique<Tensor>(Shape{64}, Device::CUDA);
    try {
      (void)gpu().capture([&] {
        gpu().fill(doomed->data(), 64, 1.0f);
        doomed.reset();
      });
      FAIL("capture() did not throw");
    } catch (const DeviceError& e) {
      CHECK_THAT(e.what(), Catch::Contains("freed"));
    }
    still_usable("a freeing step");
  }
  SECTION("the step needs a cuDNN plan for a new shape") {
    const backend::ConvGeometry g{3, 11, 9, 5, 3, 2, 7, 1, 1, 0, 0, 9, 8};
    Tensor x({3, 11, 9, 5}, Device::CUDA), w({3, 2, 5, 7}, Device::CUDA), y({3, 9, 8, 7}, Device::CUDA);
    try {
      (void)gpu().capture([&] { gpu().conv2d_forward(x, w, nullptr, y, g); });
      FAIL("capture() did not throw");
    } catch (const DeviceError& e) {
      CHECK_THAT(e.what(), Catch::Contains("cuDNN"));
    }
    still_usable("a step that needs a new cuDNN plan");
    // Once the plan exists (an ordinary call), the same call records.
    gpu().conv2d_forward(x, w, nullptr, y, g);
    auto rec = gpu().capture([&] { gpu().conv2d_forward(x, w, nullptr, y, g); });
    REQUIRE(rec != nullptr);
    rec->replay();
    gpu().synchronize();
  }
  SECTION("the step needs a larger scratch buffer") {
    // 8M max-norm groups: more sums than any other test needs, so the Norms slot would have to grow.
    const Shape big{2, std::int64_t{1} << 23};
    Tensor wb(big, Device::CUDA);
    try {
      (void)gpu().capture([&] { gpu().maxnorm(wb.data(), backend::MaxNormCall{big, {0}, 1.0f}); });
      FAIL("capture() did not throw");
    } catch (const DeviceError& e) {
      CHECK_THAT(e.what(), Catch::Contains("grow"));
    }
    still_usable("a step that needs more scratch");
  }
}
