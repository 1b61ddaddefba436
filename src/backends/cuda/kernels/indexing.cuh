// Index-driven kernels: GatherElements, GatherND, OneHot, ScatterElements
// (and Scatter), ScatterND and TensorScatter. Indices are int32 or int64 on
// the device; negative ones count from the end. An index still out of range
// (which the CPU kernel reports as an error) never reads or writes out of
// bounds here: a gather reads 0 for it, a scatter skips that update.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backends/cuda/kernels/layout.cuh"
#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct GatherElementsParams {
  int elem_size = 4;
  const void* data = nullptr;
  std::vector<int64_t> data_dims;
  const void* indices = nullptr;
  bool idx64 = true;
  std::vector<int64_t> idx_dims;  // data's rank, each <= data's dim but on the axis
  int64_t axis = 0;               // in [0, rank)
  void* y = nullptr;              // idx_dims
};
Status launch_gather_elements(const GatherElementsParams& p, cudaStream_t stream);

struct GatherNDParams {
  int elem_size = 4;
  const void* data = nullptr;
  std::vector<int64_t> data_dims;
  const void* indices = nullptr;
  bool idx64 = true;
  std::vector<int64_t> idx_dims;  // [batch dims..., tuple dims..., m]
  int64_t batch_dims = 0;
  void* y = nullptr;
};
Status launch_gather_nd(const GatherNDParams& p, cudaStream_t stream);

// OneHot: y has indices' dims with `depth` inserted at `axis`; element
// (o, d, i) is `on` where index (o, i) (any numeric dtype, truncated to an
// integer, negative counting from the end) equals d, else `off`.
struct OneHotParams {
  int elem_size = 4;
  const void* indices = nullptr;
  DType index_dtype = DType::kI64;
  std::vector<int64_t> idx_dims;
  int64_t axis = 0;  // in [0, idx rank]
  int64_t depth = 0;
  ElemBits off, on;
  void* y = nullptr;
};
Status launch_one_hot(const OneHotParams& p, cudaStream_t stream);

enum class ScatterReduction { kNone, kAdd, kMul, kMax, kMin };

// ScatterElements: y (a copy of data, made here) with updates[j...] written
// at data position j... with the axis coordinate replaced by indices[j...].
// One thread per line along the axis applies that line's updates in order,
// so repeated indices reduce in the CPU's order (and "none" keeps the last).
struct ScatterElementsParams {
  DType dtype = DType::kF32;  // "none": any dtype of elem_size bytes; reductions: numeric or bool
  int elem_size = 4;
  const void* data = nullptr;
  std::vector<int64_t> data_dims;
  const void* indices = nullptr;
  bool idx64 = true;
  std::vector<int64_t> idx_dims;  // also the updates' dims
  const void* updates = nullptr;
  int64_t axis = 0;  // in [0, rank)
  ScatterReduction reduction = ScatterReduction::kNone;
  void* y = nullptr;
};
Status launch_scatter_elements(const ScatterElementsParams& p, cudaStream_t stream);

// ScatterND: y (a copy of data) with each update slice written at its index
// tuple. "none" writes every slice in parallel (repeated tuples, undefined
// in ONNX, race); the reductions walk the tuples in order (one thread per
// element of a slice), which is exact but serial over tuples.
struct ScatterNDParams {
  DType dtype = DType::kF32;  // as ScatterElementsParams
  int elem_size = 4;
  const void* data = nullptr;
  std::vector<int64_t> data_dims;
  const void* indices = nullptr;
  bool idx64 = true;
  std::vector<int64_t> idx_dims;  // [tuple dims..., k]
  const void* updates = nullptr;
  ScatterReduction reduction = ScatterReduction::kNone;
  void* y = nullptr;
};
Status launch_scatter_nd(const ScatterNDParams& p, cudaStream_t stream);

// TensorScatter: y (a copy of the cache) with update's positions along
// `axis` written from write_indices[batch] on (wrapping when circular).
struct TensorScatterParams {
  int elem_size = 4;
  const void* cache = nullptr;
  std::vector<int64_t> cache_dims;
  const void* update = nullptr;
  std::vector<int64_t> update_dims;
  const void* write_indices = nullptr;  // null: all 0
  bool idx64 = true;
  int64_t axis = 1;  // in [1, rank)
  bool circular = false;
  void* y = nullptr;
};
Status launch_tensor_scatter(const TensorScatterParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
