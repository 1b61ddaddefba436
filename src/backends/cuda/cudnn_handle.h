// An owned cuDNN handle (the graph API's entry point). Move-only.
#pragma once

#include <cudnn.h>

#include "support/status.h"

namespace kiln::cuda {

class Cudnn {
 public:
  Cudnn() = default;
  static Expected<Cudnn> create();
  ~Cudnn();
  Cudnn(Cudnn&& other) noexcept;
  Cudnn& operator=(Cudnn&& other) noexcept;
  Cudnn(const Cudnn&) = delete;
  Cudnn& operator=(const Cudnn&) = delete;
  cudnnHandle_t get() const { return handle_; }

 private:
  cudnnHandle_t handle_ = nullptr;
};

}  // namespace kiln::cuda
