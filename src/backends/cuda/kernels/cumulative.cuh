// Numeric kernels of the data-movement family: CumSum/CumProd along an axis
// and Range. Arithmetic follows the CPU oracle: float for 16-bit floats, the
// dtype itself otherwise (integers wrap), in the CPU's order.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// One thread per 1-D slice along `axis` walks it in order (exactly the CPU's
// sums); threads of a block take neighbouring slices, so with inner dims
// the loads are coalesced.
struct CumulativeParams {
  DType dtype = DType::kF32;  // numeric
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> dims;
  int64_t axis = 0;  // in [0, rank)
  bool product = false;
  bool exclusive = false;
  bool reverse = false;
};
Status launch_cumulative(const CumulativeParams& p, cudaStream_t stream);

// Range: y[i] = start + i * delta computed in the dtype's arithmetic, without
// fused multiply-add (the CPU rounds the product first). start and delta are
// kernel arguments: floats in f_*, integers in i_* (u64 as its bits).
struct RangeParams {
  DType dtype = DType::kF32;  // numeric
  void* y = nullptr;
  int64_t n = 0;
  double f_start = 0, f_delta = 0;
  int64_t i_start = 0, i_delta = 0;
};
Status launch_range(const RangeParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
