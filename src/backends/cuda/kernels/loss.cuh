// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (the NLL loss of the
// log-softmax over the class axis) on [n, c, d] scores and [n, d] classes,
// for the float types (in float, double for f64).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class LossReduction { kNone, kSum, kMean };

struct LossParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;       // [n, c, d]: log-probabilities, or scores when `softmax`
  const void* target = nullptr;  // [n, d] of int32 or int64
  bool target_i64 = true;
  const void* weight = nullptr;  // [c] of dtype, or null
  void* loss = nullptr;          // [n, d] for kNone, else a scalar
  int64_t n = 0, c = 0, d = 1;
  bool softmax = false;
  bool has_ignore_index = false;
  int64_t ignore_index = 0;
  LossReduction reduction = LossReduction::kMean;
  void* workspace = nullptr;  // loss_workspace_bytes()
  size_t workspace_bytes = 0;
};
// A class outside [0, c) (and not ignored) makes its loss NaN: the CPU kernel
// fails, and a kernel cannot.
Status launch_loss(const LossParams& p, cudaStream_t stream);
size_t loss_workspace_bytes(const LossParams& p);

}  // namespace kiln::cuda
