// kiln.SkipLayerNormalization: Y = LayerNormalization(X + Skip, Scale, B)
// over the last axis, and optionally Sum = X + Skip, in one pass over X and
// Skip. The sum is rounded to the dtype before it is normalized, as the CPU
// reference (and the unfused Add) computes it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct SkipNormParams {
  DType dtype = DType::kF32;  // of every tensor: X, Skip, Scale, B, Y, Sum
  const void* x = nullptr;
  const void* skip = nullptr;
  const void* scale = nullptr;  // [cols]
  const void* bias = nullptr;   // [cols]; null: 0
  void* y = nullptr;
  void* sum = nullptr;  // null: not written
  int64_t rows = 0;
  int64_t cols = 0;
  float epsilon = 1e-5f;
};
Status launch_skip_layer_norm(const SkipNormParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
