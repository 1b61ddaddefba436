// Kernels that rearrange or generate elements without arithmetic: Expand and
// Tile, Pad and CenterCropPad, DepthToSpace and SpaceToDepth, Trilu,
// ReverseSequence, EyeLike, ConstantOfShape, and the host-known int64 values
// of Shape and Size. They work on element sizes (1, 2, 4, 8 or 16 bytes), so
// every dtype of those widths is supported. Ranks up to 8.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// The bytes of one element (a fill value), little-endian, up to 16 bytes.
struct ElemBits {
  uint64_t lo = 0, hi = 0;
};

// Expand and Tile: y[c...] = x[c_k % in_dims[k] ...]. in_dims has y's rank
// (Expand's input left-padded with 1s); each is 1, equal to out_dims[k]
// (broadcast) or divides it (tile).
struct TileParams {
  int elem_size = 4;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> in_dims;
  std::vector<int64_t> out_dims;
};
Status launch_tile(const TileParams& p, cudaStream_t stream);

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// Pad: output coordinate c reads input coordinate c - before[k] (negative
// before crops), mapped back into the input by the mode; constant-mode
// positions outside the input take `fill`. Non-constant modes need nonempty
// input dims wherever the output is nonempty.
struct PadParams {
  int elem_size = 4;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> in_dims;
  std::vector<int64_t> out_dims;
  std::vector<int64_t> before;
  PadMode mode = PadMode::kConstant;
  ElemBits fill;
};
Status launch_pad(const PadParams& p, cudaStream_t stream);

// DepthToSpace (to_space) and SpaceToDepth on NCHW, DCR or CRD channel order.
struct DepthSpaceParams {
  int elem_size = 4;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> in_dims;  // 4-D
  int64_t blocksize = 1;
  bool crd = false;
  bool to_space = true;
};
Status launch_depth_space(const DepthSpaceParams& p, cudaStream_t stream);

// Trilu: keeps c - r >= k (upper) or c - r <= k (lower) of every matrix of
// the last two dims; the rest is zero.
struct TriluParams {
  int elem_size = 4;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> dims;  // rank >= 2
  int64_t k = 0;
  bool upper = true;
};
Status launch_trilu(const TriluParams& p, cudaStream_t stream);

// ReverseSequence: batch_axis and time_axis are 0 and 1 in some order; lens
// (int32 or int64, on the device) has one entry per batch. A length outside
// [0, steps] (an error on the CPU) zeroes that batch's output.
struct ReverseSequenceParams {
  int elem_size = 4;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> dims;  // rank >= 2
  const void* lens = nullptr;
  bool lens64 = true;
  int batch_axis = 1;
  int time_axis = 0;
};
Status launch_reverse_sequence(const ReverseSequenceParams& p, cudaStream_t stream);

// EyeLike: `one` on the diagonal r + k, zero elsewhere, of a rows x cols matrix.
struct EyeLikeParams {
  int elem_size = 4;
  void* y = nullptr;
  int64_t rows = 0, cols = 0, k = 0;
  ElemBits one;
};
Status launch_eye_like(const EyeLikeParams& p, cudaStream_t stream);

// Every element of y set to `value` (ConstantOfShape).
Status launch_fill(int elem_size, void* y, int64_t n, ElemBits value, cudaStream_t stream);

// y[i] = values[i]: host-known int64 values (Shape, Size) written by kernels
// that take them by value (8 per launch), so no host memory is read during
// the run and the launches can be captured in a CUDA graph.
Status launch_write_i64(int64_t* y, const std::vector<int64_t>& values, cudaStream_t stream);

}  // namespace kiln::cuda
