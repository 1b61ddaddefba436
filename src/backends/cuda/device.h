// The CUDA device layer: what the GPUs are, and RAII owners of device memory,
// streams and events. No exceptions; failures are Status values. Without a
// driver or a GPU, device_count() is 0 rather than an error, so callers can
// fall back to the CPU backend.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "support/status.h"

namespace kiln::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0;  // compute capability, e.g. 9.0 for H100
  int cc_minor = 0;
  int sm_count = 0;
  size_t total_memory = 0;  // bytes
  int l2_cache_bytes = 0;
  size_t shared_memory_per_block_optin = 0;  // bytes a kernel may ask for
  int driver_version = 0;                    // e.g. 13000 for CUDA 13.0
  int runtime_version = 0;

  // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB, L2 50 MiB, driver 13.0, runtime 13.0)"
  std::string to_string() const;
};

// GPUs visible to this process; 0 without a driver or a GPU (never an error).
int device_count();
Expected<DeviceInfo> device_info(int index);

// cudaMalloc'ed memory, freed on destruction. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static Expected<DeviceBuffer> allocate(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t size() const { return bytes_; }

  // Synchronous: return once the copy (queued on `stream`) has finished.
  Status copy_from_host(const void* src, size_t bytes, cudaStream_t stream = nullptr);
  Status copy_to_host(void* dst, size_t bytes, cudaStream_t stream = nullptr) const;

 private:
  void reset();
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A non-blocking stream, destroyed on destruction. Move-only.
class Stream {
 public:
  Stream() = default;
  static Expected<Stream> create();
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  Status synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

// An event for timing (or, with timing off, for ordering streams). Move-only.
class Event {
 public:
  Event() = default;
  static Expected<Event> create(bool timing = true);
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  cudaEvent_t get() const { return event_; }
  Status record(cudaStream_t stream) const;
  Status synchronize() const;
  // Milliseconds from `start` to this event; both must have completed.
  Expected<float> elapsed_ms_since(const Event& start) const;

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace kiln::cuda
