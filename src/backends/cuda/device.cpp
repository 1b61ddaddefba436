#include "backends/cuda/device.h"

#include <utility>

#include "backends/cuda/cuda_status.h"

namespace kiln::cuda {

std::string DeviceInfo::to_string() const {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  return fmt::format("{} (sm_{}{}, {} SMs, {:.1f} GiB, L2 {} MiB, driver {}.{}, runtime {}.{})", name, cc_major,
                     cc_minor, sm_count, static_cast<double>(total_memory) / kGiB, l2_cache_bytes >> 20,
                     driver_version / 1000, driver_version % 1000 / 10, runtime_version / 1000,
                     runtime_version % 1000 / 10);
}

int device_count() {
  int n = 0;
  // No driver, no device, or a driver older than the runtime all mean "no GPU
  // to use here"; clear the sticky error so later calls are not confused.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

Expected<DeviceInfo> device_info(int index) {
  int n = device_count();
  if (index < 0 || index >= n) return invalid_argument("CUDA device {} does not exist ({} visible)", index, n);
  cudaDeviceProp prop{};
  KILN_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, index));
  DeviceInfo info;
  info.index = index;
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.total_memory = prop.totalGlobalMem;
  info.l2_cache_bytes = prop.l2CacheSize;
  info.shared_memory_per_block_optin = prop.sharedMemPerBlockOptin;
  KILN_CUDA_RETURN_IF_ERROR(cudaDriverGetVersion(&info.driver_version));
  KILN_CUDA_RETURN_IF_ERROR(cudaRuntimeGetVersion(&info.runtime_version));
  return info;
}

// ---- DeviceBuffer

Expected<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) {
  DeviceBuffer b;
  if (bytes == 0) return b;
  KILN_CUDA_RETURN_IF_ERROR(cudaMalloc(&b.ptr_, bytes));
  b.bytes_ = bytes;
  return b;
}

DeviceBuffer::~DeviceBuffer() { reset(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (ptr_) (void)cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

Status DeviceBuffer::copy_from_host(const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes > bytes_) return invalid_argument("copy of {} bytes into a device buffer of {}", bytes, bytes_);
  if (bytes == 0) return Status::ok();
  KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(ptr_, src, bytes, cudaMemcpyHostToDevice, stream));
  return to_status(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

Status DeviceBuffer::copy_to_host(void* dst, size_t bytes, cudaStream_t stream) const {
  if (bytes > bytes_) return invalid_argument("copy of {} bytes out of a device buffer of {}", bytes, bytes_);
  if (bytes == 0) return Status::ok();
  KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, ptr_, bytes, cudaMemcpyDeviceToHost, stream));
  return to_status(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

// ---- Stream

Expected<Stream> Stream::create() {
  Stream s;
  KILN_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s.stream_, cudaStreamNonBlocking));
  return s;
}

Stream::~Stream() {
  if (stream_) (void)cudaStreamDestroy(stream_);
}

Stream::Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (stream_) (void)cudaStreamDestroy(stream_);
    stream_ = std::exchange(other.stream_, nullptr);
  }
  return *this;
}

Status Stream::synchronize() const { return to_status(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

// ---- Event

Expected<Event> Event::create(bool timing) {
  Event e;
  KILN_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e.event_, timing ? cudaEventDefault : cudaEventDisableTiming));
  return e;
}

Event::~Event() {
  if (event_) (void)cudaEventDestroy(event_);
}

Event::Event(Event&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (event_) (void)cudaEventDestroy(event_);
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}

Status Event::record(cudaStream_t stream) const {
  return to_status(cudaEventRecord(event_, stream), "cudaEventRecord");
}

Status Event::synchronize() const { return to_status(cudaEventSynchronize(event_), "cudaEventSynchronize"); }

Expected<float> Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  KILN_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

}  // namespace kiln::cuda
