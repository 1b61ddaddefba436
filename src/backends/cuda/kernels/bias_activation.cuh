// The epilogue of a matrix product that cuBLASLt does not fuse: the exact
// (erf) Gelu, and bias + activation after a plain product when cuBLASLt has
// no algorithm with the epilogue. In place over a row-major [rows, n] matrix;
// f32, f16 and bf16, computed in float.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class BiasActivation { kNone, kRelu, kGelu, kGeluTanh };

struct BiasActivationParams {
  DType dtype = DType::kF32;   // of y and bias
  void* y = nullptr;           // [rows, n], read and written
  const void* bias = nullptr;  // [n], added to every row; null for none
  int64_t rows = 0, n = 0;
  BiasActivation activation = BiasActivation::kNone;
};

// y[r, j] = act(y[r, j] + bias[j]).
Status launch_bias_activation(const BiasActivationParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
