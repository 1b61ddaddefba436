// Unique: the distinct elements (no axis) or slices along an axis, sorted or
// in order of first appearance, with the first-occurrence indices, the
// inverse indices and the counts. Slices compare lexicographically in double
// (as the CPU kernel compares them); a stable merge sort (CUB) orders the
// slice indices, a prefix sum over "differs from the previous" numbers the
// groups, and for sorted=0 a second prefix sum over first occurrences gives
// each group its place in order of appearance.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct UniqueParams {
  DType dtype = DType::kF32;  // numeric or bool
  const void* x = nullptr;
  // x as [outer, slices, inner] (no axis: [1, elements, 1]).
  int64_t outer = 1, slices = 0, inner = 1;
  bool sorted = true;
  // Outputs with room for `slices` unique slices; null when omitted.
  void* y = nullptr;  // [outer, u, inner]
  int64_t* indices = nullptr;
  int64_t* inverse = nullptr;
  int64_t* counts = nullptr;
  // Receives y's dims (y_rank of them, y_dims but u at axis_dim), then u,
  // slices, u: as many as the node has outputs (1 to 4).
  int64_t* out_dims = nullptr;
  int outputs = 4;
  int y_rank = 1, axis_dim = 0;
  int64_t y_dims[8] = {};
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
size_t unique_workspace_bytes(const UniqueParams& p);
Status launch_unique(const UniqueParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
