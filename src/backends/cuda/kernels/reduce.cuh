// ReduceSum / ReduceMean / ReduceMax / ReduceMin over any set of axes, for
// f32, f16 and bf16 (accumulated in float). The output holds the kept dims in
// order (keepdims only changes its shape, not its layout).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class ReduceOp { kSum, kMean, kMax, kMin };

struct ReduceParams {
  ReduceOp op = ReduceOp::kSum;
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> dims;
  std::vector<int64_t> axes;  // may be negative; empty reduces every axis
};
Status launch_reduce(const ReduceParams& p, cudaStream_t stream);

// The reduction seen as [outer, reduce, inner] when the reduced axes, after
// dropping size-1 dims and merging neighbours, form one run; `contiguous` is
// false otherwise (e.g. axes {0, 2} of a [2, 3, 4]).
struct ReduceView {
  bool contiguous = true;
  int64_t outer = 1, reduce = 1, inner = 1;
};
Expected<ReduceView> reduce_view(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes);

}  // namespace kiln::cuda
