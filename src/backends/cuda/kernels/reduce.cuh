// The Reduce* ops over any set of axes, for the float types (f32, f16, bf16
// accumulated in float; f64 in double) and the integer types (sums and
// products wrap in 64 bits, Mean/L2/LogSum/LogSumExp go through double and
// truncate, as the CPU kernel), bool for Max/Min. The output holds the kept
// dims in order (keepdims only changes its shape, not its layout).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class ReduceOp { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

struct ReduceParams {
  ReduceOp op = ReduceOp::kSum;
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> dims;
  std::vector<int64_t> axes;  // may be negative; empty reduces every axis (unless noop_with_empty_axes)
  bool noop_with_empty_axes = false;
  // Scratch of reduce_workspace_bytes(): partial results when a long column
  // reduction is split over blocks, LogSumExp's maxima. Without it a column
  // reduction runs unsplit (slower) and float LogSumExp is refused.
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
Status launch_reduce(const ReduceParams& p, cudaStream_t stream);
size_t reduce_workspace_bytes(const ReduceParams& p);

// The reduction seen as [outer, reduce, inner] when the reduced axes, after
// dropping size-1 dims and merging neighbours, form one run; `contiguous` is
// false otherwise (e.g. axes {0, 2} of a [2, 3, 4]).
struct ReduceView {
  bool contiguous = true;
  int64_t outer = 1, reduce = 1, inner = 1;
};
Expected<ReduceView> reduce_view(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes);

// Per-output mean and variance (biased) of x over `axes`, in float (double for
// f64 x), for MeanVarianceNormalization: mean[o], var[o] of output o's
// elements; scratch is mean_var_workspace_bytes().
struct MeanVarParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  std::vector<int64_t> dims, axes;
  void* mean = nullptr;  // [kept elements] of float (double for f64)
  void* var = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
Status launch_mean_var(const MeanVarParams& p, cudaStream_t stream);
size_t mean_var_workspace_bytes(const MeanVarParams& p);

}  // namespace kiln::cuda
