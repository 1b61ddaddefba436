#include "backends/cuda/cudnn_handle.h"

#include <utility>

#include "backends/cuda/cuda_status.h"

namespace kiln::cuda {

Expected<Cudnn> Cudnn::create() {
  Cudnn c;
  KILN_CUDA_RETURN_IF_ERROR(cudnnCreate(&c.handle_));
  return c;
}

Cudnn::~Cudnn() {
  if (handle_) cudnnDestroy(handle_);
}

Cudnn::Cudnn(Cudnn&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

Cudnn& Cudnn::operator=(Cudnn&& other) noexcept {
  if (this != &other) {
    if (handle_) cudnnDestroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

}  // namespace kiln::cuda
