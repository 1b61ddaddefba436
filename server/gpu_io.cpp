#include "gpu_io.h"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace kiln::server {

#ifdef KILN_WITH_CUDA
namespace {

Status cuda_error(cudaError_t e, const char* what) {
  (void)cudaGetLastError();
  return Status(ErrorCode::kInternal, std::string(what) + ": " + cudaGetErrorString(e));
}

#define KILN_SERVER_CUDA(call)                                     \
  do {                                                             \
    cudaError_t kiln_e_ = (call);                                  \
    if (kiln_e_ != cudaSuccess) return cuda_error(kiln_e_, #call); \
  } while (0)

// Memory that grows to the largest size asked for and is kept: pinned host
// memory (kPinned) or device memory.
template <bool kPinned>
struct Buffer {
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* p = nullptr;
  size_t capacity = 0;
  ~Buffer() { release(); }
  void release() {
    if (p) (void)(kPinned ? cudaFreeHost(p) : cudaFree(p));
    p = nullptr;
    capacity = 0;
  }
  Status reserve(size_t bytes) {
    if (bytes <= capacity) return Status::ok();
    release();
    if constexpr (kPinned) {
      KILN_SERVER_CUDA(cudaMallocHost(&p, bytes));
    } else {
      KILN_SERVER_CUDA(cudaMalloc(&p, bytes));
    }
    capacity = bytes;
    return Status::ok();
  }
};
using Pinned = Buffer<true>;
using Device = Buffer<false>;

// Device memory for an output whose size is known only while running.
class DeviceAllocator final : public OutputAllocator {
 public:
  explicit DeviceAllocator(Device& buffer) : buffer_(buffer) {}
  void* reallocate_output(const std::string&, void*, size_t size, size_t) override {
    if (!buffer_.reserve(size > 0 ? size : 1).is_ok()) return nullptr;
    bytes = size;
    return buffer_.p;
  }
  void notify_shape(const std::string&, const std::vector<int64_t>& d) override { dims = d; }
  size_t bytes = 0;
  std::vector<int64_t> dims;

 private:
  Device& buffer_;
};

struct Output {
  Pinned host;
  Device device;
  size_t bytes = 0;
  std::unique_ptr<DeviceAllocator> allocator;  // set while the output is sized at run time
};

class CudaGpuIo final : public GpuIo {
 public:
  explicit CudaGpuIo(bool busy_wait) : busy_wait_(busy_wait) {}
  ~CudaGpuIo() override {
    for (cudaEvent_t e : events_)
      if (e) (void)cudaEventDestroy(e);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  Status init() {
    KILN_SERVER_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    for (cudaEvent_t& e : events_) {
      KILN_SERVER_CUDA(cudaEventCreate(&e));
    }
    return Status::ok();
  }

  Status begin() override {
    // A run that failed after queuing copies may still read the pinned
    // buffers this one is about to fill.
    KILN_SERVER_CUDA(cudaStreamSynchronize(stream_));
    copies_started_ = false;
    return Status::ok();
  }

  // The copies in start at the first upload, not at begin(): the host's
  // gathering between the two is the caller's to time, not the device's.
  Status start_copies() {
    if (copies_started_) return Status::ok();
    KILN_SERVER_CUDA(cudaEventRecord(events_[0], stream_));
    copies_started_ = true;
    return Status::ok();
  }

  Expected<void*> input_host(size_t k, size_t bytes) override {
    while (k >= inputs_.size()) inputs_.push_back(std::make_unique<Input>());
    Status st = inputs_[k]->host.reserve(bytes > 0 ? bytes : 1);
    if (!st.is_ok()) return st;
    return inputs_[k]->host.p;
  }

  Status upload_input(ExecutionContext& ctx, size_t k, const std::string& name, size_t bytes) override {
    if (k >= inputs_.size()) return Status(ErrorCode::kInternal, "upload_input: no host buffer for input " + name);
    Input& in = *inputs_[k];
    Status st = in.device.reserve(bytes > 0 ? bytes : 1);
    if (st.is_ok()) st = start_copies();
    if (!st.is_ok()) return st;
    if (bytes) {
      KILN_SERVER_CUDA(cudaMemcpyAsync(in.device.p, in.host.p, bytes, cudaMemcpyHostToDevice, stream_));
    }
    return ctx.set_input_tensor_address(name, in.device.p);
  }

  Status upload_input_pieces(ExecutionContext& ctx, size_t k, const std::string& name,
                             const std::vector<HostPiece>& pieces) override {
    while (k >= inputs_.size()) inputs_.push_back(std::make_unique<Input>());
    Input& in = *inputs_[k];
    size_t bytes = 0;
    for (const HostPiece& p : pieces) bytes += p.bytes;
    Status st = in.device.reserve(bytes > 0 ? bytes : 1);
    if (st.is_ok()) st = start_copies();
    if (!st.is_ok()) return st;
    auto* to = static_cast<uint8_t*>(in.device.p);
    for (const HostPiece& p : pieces) {
      KILN_SERVER_CUDA(cudaMemcpyAsync(to, p.from, p.bytes, cudaMemcpyHostToDevice, stream_));
      to += p.bytes;
    }
    return ctx.set_input_tensor_address(name, in.device.p);
  }

  Status bind_output(ExecutionContext& ctx, size_t k, const std::string& name, size_t bytes, bool dynamic) override {
    while (k >= outputs_.size()) outputs_.push_back(std::make_unique<Output>());
    Output& o = *outputs_[k];
    if (dynamic) {
      if (!o.allocator) o.allocator = std::make_unique<DeviceAllocator>(o.device);
      o.allocator->bytes = 0;
      o.allocator->dims.clear();
      return ctx.set_output_allocator(name, o.allocator.get());
    }
    o.allocator.reset();
    o.bytes = bytes;
    Status st = o.device.reserve(bytes > 0 ? bytes : 1);
    if (!st.is_ok()) return st;
    return ctx.set_tensor_address(name, o.device.p);
  }

  Status run(ExecutionContext& ctx, size_t outputs, float times_ms[3]) override {
    Status started = start_copies();  // a model without inputs
    if (!started.is_ok()) return started;
    KILN_SERVER_CUDA(cudaEventRecord(events_[1], stream_));
    Status st = ctx.enqueue(stream_);
    if (!st.is_ok()) {
      (void)cudaStreamSynchronize(stream_);
      return st;
    }
    KILN_SERVER_CUDA(cudaEventRecord(events_[2], stream_));
    for (size_t k = 0; k < outputs && k < outputs_.size(); ++k) {
      Output& o = *outputs_[k];
      if (o.allocator) o.bytes = o.allocator->bytes;
      st = o.host.reserve(o.bytes > 0 ? o.bytes : 1);
      if (!st.is_ok()) {
        (void)cudaStreamSynchronize(stream_);
        return st;
      }
      if (o.bytes) {
        KILN_SERVER_CUDA(cudaMemcpyAsync(o.host.p, o.device.p, o.bytes, cudaMemcpyDeviceToHost, stream_));
      }
    }
    KILN_SERVER_CUDA(cudaEventRecord(events_[3], stream_));
    if (busy_wait_) {
      cudaError_t polled;
      while ((polled = cudaEventQuery(events_[3])) == cudaErrorNotReady) {
      }
      if (polled != cudaSuccess) return cuda_error(polled, "cudaEventQuery(the run's last event)");
    } else {
      KILN_SERVER_CUDA(cudaEventSynchronize(events_[3]));
    }
    for (int i = 0; i < 3; ++i) {
      times_ms[i] = 0;
      KILN_SERVER_CUDA(cudaEventElapsedTime(&times_ms[i], events_[i], events_[i + 1]));
    }
    return Status::ok();
  }

  void settle() override { (void)cudaStreamSynchronize(stream_); }

  const void* output_host(size_t k) const override { return outputs_.at(k)->host.p; }
  size_t output_bytes(size_t k) const override { return outputs_.at(k)->bytes; }
  const std::vector<int64_t>& output_dims(size_t k) const override {
    static const std::vector<int64_t> none;
    const Output& o = *outputs_.at(k);
    return o.allocator ? o.allocator->dims : none;
  }

 private:
  struct Input {
    Pinned host;
    Device device;
  };
  cudaStream_t stream_ = nullptr;
  cudaEvent_t events_[4] = {nullptr, nullptr, nullptr, nullptr};
  // Held by pointer: allocators point into their output's device buffer.
  std::vector<std::unique_ptr<Input>> inputs_;
  std::vector<std::unique_ptr<Output>> outputs_;
  bool busy_wait_ = false;
  bool copies_started_ = false;  // events_[0] recorded for this run
};

}  // namespace

bool pin_host_memory(void* p, size_t bytes, bool read_only) {
  // Portable: every device's instances may copy from it.
  unsigned flags = cudaHostRegisterPortable | (read_only ? cudaHostRegisterReadOnly : 0u);
  if (cudaHostRegister(p, bytes, flags) == cudaSuccess) return true;
  (void)cudaGetLastError();
  return false;
}

void unpin_host_memory(void* p) {
  if (cudaHostUnregister(p) != cudaSuccess) (void)cudaGetLastError();
}

Expected<std::unique_ptr<GpuIo>> GpuIo::create(bool busy_wait) {
  auto io = std::make_unique<CudaGpuIo>(busy_wait);
  Status st = io->init();
  if (!st.is_ok()) return st;
  return std::unique_ptr<GpuIo>(std::move(io));
}
#else
bool pin_host_memory(void*, size_t, bool) { return false; }
void unpin_host_memory(void*) {}

Expected<std::unique_ptr<GpuIo>> GpuIo::create(bool) {
  return Status(ErrorCode::kUnsupported, "GPU instances: this kiln was built without the CUDA backend");
}
#endif

}  // namespace kiln::server
