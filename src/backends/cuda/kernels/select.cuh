// NonZero and Compress: outputs whose size depends on the data. Each marks
// the elements (or slices) it keeps, an inclusive prefix sum (CUB) gives
// their output positions, and a scatter writes them packed; the count lands
// in the dims the executor reads back (KernelDef::max_output_dims).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct NonZeroParams {
  DType dtype = DType::kF32;  // any numeric dtype or bool
  const void* x = nullptr;
  int64_t n = 0;                // elements of x
  int rank = 1;                 // of the output's first dim (a scalar counts as rank 1)
  int64_t dims[8] = {};         // x's dims (rank of them)
  int64_t* y = nullptr;         // [rank, count], room for [rank, n]
  int64_t* out_dims = nullptr;  // receives {rank, count}
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
size_t nonzero_workspace_bytes(int64_t n);
Status launch_nonzero(const NonZeroParams& p, cudaStream_t stream);

struct CompressParams {
  int elem_size = 4;  // bytes per element of x and y
  const void* x = nullptr;
  const uint8_t* condition = nullptr;  // bool
  int64_t conditions = 0;              // entries of the condition used (at most the axis, or the elements)
  // x as [outer, axis, inner] (no axis: [1, elements, 1]).
  int64_t outer = 1, axis = 0, inner = 1;
  void* y = nullptr;            // [outer, kept, inner], room for [outer, conditions, inner]
  int64_t* out_dims = nullptr;  // receives y's dims: `rank` of them, `axis_dim` the kept count
  int rank = 1, axis_dim = 0;
  int64_t y_dims[8] = {};  // y's dims but for axis_dim
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
size_t compress_workspace_bytes(int64_t conditions);
Status launch_compress(const CompressParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
