// Kernels that move elements without arithmetic: Transpose, Concat, Slice,
// Gather. They work on element sizes (1, 2, 4 or 8 bytes), so every dtype of
// those widths is supported.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct TransposeParams {
  int elem_size = 4;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> dims;  // of x
  std::vector<int64_t> perm;  // y dim i is x dim perm[i]
};
Status launch_transpose(const TransposeParams& p, cudaStream_t stream);

struct ConcatParams {
  int elem_size = 4;
  std::vector<const void*> inputs;
  std::vector<std::vector<int64_t>> dims;  // one per input, equal but for `axis`
  int64_t axis = 0;                        // may be negative
  void* y = nullptr;
};
Status launch_concat(const ConcatParams& p, cudaStream_t stream);

// Slice with normalized per-dim parameters: y[i...] = x[start + i * step ...].
// The caller clamps ONNX's starts/ends/steps into start, step and out_dims.
struct SliceParams {
  int elem_size = 4;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> dims;      // of x
  std::vector<int64_t> starts;    // per dim, in [0, dims[d])
  std::vector<int64_t> steps;     // per dim, nonzero
  std::vector<int64_t> out_dims;  // per dim
};
Status launch_slice(const SliceParams& p, cudaStream_t stream);

struct GatherParams {
  int elem_size = 4;
  const void* data = nullptr;
  std::vector<int64_t> dims;  // of data
  int64_t axis = 0;           // may be negative
  const void* indices = nullptr;
  DType index_dtype = DType::kI64;  // kI32 or kI64; negative indices count from the end
  int64_t num_indices = 0;
  void* y = nullptr;  // [dims before axis, indices..., dims after axis]
  // Device int set to 1 when an index is out of range (that output is zero);
  // null to skip the check's report. The caller reads it after the launch.
  int* out_of_range = nullptr;
};
Status launch_gather(const GatherParams& p, cudaStream_t stream);

// How an E8M0 encoding rounds the mantissa bits away (Cast's round_mode).
enum class E8M0Round : uint8_t { kUp, kDown, kNearest };

// Cast between any two of the float (f32, f16, bf16, f64), integer (2 to 64
// bits, signed and unsigned, 4- and 2-bit ones packed), bool and small float
// (f8 kinds, f8e8m0, f4e2m1) dtypes, as the CPU backend does: float to
// integer truncates toward zero through int64 (NaN -> 0), integers wrap, to
// bool is "!= 0", small floats round to nearest even with the `saturate` rule
// (e8m0 per `e8m0_round`); see cast.cu.
struct CastParams {
  DType from = DType::kF32;
  DType to = DType::kF16;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t n = 0;
  bool saturate = true;
  E8M0Round e8m0_round = E8M0Round::kUp;
};
Status launch_cast(const CastParams& p, cudaStream_t stream);
// Whether launch_cast takes dtype t (as source or destination).
bool cast_supported(DType t);

}  // namespace kiln::cuda
