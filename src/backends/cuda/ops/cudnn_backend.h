// cuDNN 9's backend (graph) API as kiln's convolution uses it directly: an
// owned descriptor and the create / set / finalize calls as Status values,
// each naming the call and the attribute that failed.
#pragma once

#include <cudnn.h>
#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <utility>

#include "backends/cuda/cuda_status.h"
#include "support/status.h"

namespace kiln::cuda::cudnn_backend {

// An owned backend descriptor.
class Descriptor {
 public:
  Descriptor() = default;
  explicit Descriptor(cudnnBackendDescriptor_t d) : d_(d) {}
  ~Descriptor() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Descriptor(Descriptor&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Descriptor& operator=(Descriptor&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

inline Expected<Descriptor> create(cudnnBackendDescriptorType_t type) {
  cudnnBackendDescriptor_t d = nullptr;
  KILN_CUDA_RETURN_IF_ERROR(cudnnBackendCreateDescriptor(type, &d));
  return Descriptor(d);
}

inline Status set(const Descriptor& d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                  int64_t count, const void* values) {
  const std::string call = fmt::format("cudnnBackendSetAttribute(attribute {})", static_cast<int>(name));
  return to_status(cudnnBackendSetAttribute(d.get(), name, type, count, values), call.c_str());
}

inline Status set_descriptor(const Descriptor& d, cudnnBackendAttributeName_t name, const Descriptor& value) {
  cudnnBackendDescriptor_t v = value.get();
  return set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v);
}

// Reads up to `capacity` values into `values`; `count` receives how many
// there are (which may exceed `capacity`).
inline Status get(const Descriptor& d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                  int64_t capacity, int64_t* count, void* values) {
  const std::string call = fmt::format("cudnnBackendGetAttribute(attribute {})", static_cast<int>(name));
  return to_status(cudnnBackendGetAttribute(d.get(), name, type, capacity, count, values), call.c_str());
}

inline Status finalize(const Descriptor& d) { return to_status(cudnnBackendFinalize(d.get()), "cudnnBackendFinalize"); }

}  // namespace kiln::cuda::cudnn_backend
