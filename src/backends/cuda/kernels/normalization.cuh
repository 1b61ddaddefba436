// LayerNormalization and RMSNormalization over the trailing `cols` elements
// of each row, for f32, f16 and bf16 (statistics in float, two passes).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct NormParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  const void* scale = nullptr;  // [cols], same dtype as x
  const void* bias = nullptr;   // [cols] or null (RMSNormalization has none)
  void* y = nullptr;
  int64_t rows = 0;  // product of the dims before `axis`
  int64_t cols = 0;  // product of the dims from `axis` on
  float epsilon = 1e-5f;
  bool rms = false;  // y = x / sqrt(mean(x^2) + eps) * scale [+ bias]
  // Optional [rows] float outputs (LayerNormalization's Mean and InvStdDev).
  float* mean = nullptr;
  float* inv_std_dev = nullptr;
};
Status launch_normalization(const NormParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
