// Softmax and LogSoftmax over the last axis of a [rows, cols] view, for f32,
// f16 and bf16 (max-subtracted, accumulated in float).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct SoftmaxParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t rows = 0;  // product of all dims but the last
  int64_t cols = 0;  // the last dim
  bool log = false;  // LogSoftmax
};
Status launch_softmax(const SoftmaxParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
