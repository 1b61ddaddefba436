// Row normalizations: LayerNormalization, RMSNormalization,
// GroupNormalization and InstanceNormalization all normalize rows of `cols`
// contiguous elements (statistics in float, double for f64, two passes) and
// then scale and shift them by parameters whose element for (row, col) a
// ParamMap picks.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// Which parameter element applies to element (row, col) of the normalized rows.
struct ParamMap {
  enum class Kind {
    kCol,        // element col (a parameter of `cols` elements)
    kBroadcast,  // col unravelled over `dims` with `strides` (0 where broadcast)
    kChannel,    // (row % row_mod) * row_mul + col / col_div (Group/InstanceNormalization)
  };
  Kind kind = Kind::kCol;
  int rank = 0;
  int64_t dims[8] = {}, strides[8] = {};
  int64_t row_mod = 1, row_mul = 0, col_div = 1;
};

// A parameter right-aligned against the normalized dims (LayerNormalization).
ParamMap broadcast_param_map(const std::vector<int64_t>& param_dims, const std::vector<int64_t>& normalized_dims);

struct NormParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  const void* scale = nullptr;  // null: 1
  const void* bias = nullptr;   // null: 0
  void* y = nullptr;
  int64_t rows = 0;  // product of the dims before `axis`
  int64_t cols = 0;  // product of the dims from `axis` on
  float epsilon = 1e-5f;
  bool rms = false;  // y = x / sqrt(mean(x^2) + eps) * scale [+ bias]
  // Optional [rows] outputs (LayerNormalization's Mean and InvStdDev), of
  // `stat_dtype`.
  void* mean = nullptr;
  void* inv_std_dev = nullptr;
  DType stat_dtype = DType::kF32;
  // The parameters' dtypes (kUndefined: x's) and element maps.
  DType scale_dtype = DType::kUndefined, bias_dtype = DType::kUndefined;
  ParamMap scale_map, bias_map;
  // Scratch of normalization_workspace_bytes(): with it, a few long rows
  // (GroupNormalization's usual shape) are split over many blocks.
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
Status launch_normalization(const NormParams& p, cudaStream_t stream);
size_t normalization_workspace_bytes(DType dtype, int64_t rows, int64_t cols);

}  // namespace kiln::cuda
