// Softmax, LogSoftmax and Hardmax along one axis of a [rows, cols, inner]
// view, for f32, f16, bf16 (computed in float) and f64 (in double).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class SoftmaxKind { kSoftmax, kLogSoftmax, kHardmax };

struct SoftmaxParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t rows = 0;   // product of the dims before the axis
  int64_t cols = 0;   // the axis' length
  bool log = false;   // LogSoftmax (when kind is kSoftmax)
  int64_t inner = 1;  // product of the dims after the axis (the stride along it)
  SoftmaxKind kind = SoftmaxKind::kSoftmax;
};
Status launch_softmax(const SoftmaxParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
