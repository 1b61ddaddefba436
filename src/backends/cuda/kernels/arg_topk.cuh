// ArgMax / ArgMin and TopK along one axis of a [outer, n, inner] view, for the
// float types and the integer types.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// y[outer, inner] (int64) = index along the axis of the max (min): NaN wins
// (the first, or the last with select_last_index), ties go to the first (last).
struct ArgReduceParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  int64_t* y = nullptr;
  int64_t outer = 1, n = 1, inner = 1;
  bool is_max = true;
  bool select_last_index = false;
};
Status launch_arg_reduce(const ArgReduceParams& p, cudaStream_t stream);

// values/indices[outer, k, inner]: the k largest (smallest) along the axis in
// order, equal values by increasing index (a stable sort, as the CPU kernel).
struct TopKParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* values = nullptr;
  int64_t* indices = nullptr;
  int64_t outer = 1, n = 1, inner = 1, k = 1;
  bool largest = true;
  void* workspace = nullptr;  // topk_workspace_bytes()
  size_t workspace_bytes = 0;
};
Status launch_topk(const TopKParams& p, cudaStream_t stream);
size_t topk_workspace_bytes(const TopKParams& p);

}  // namespace kiln::cuda
