// Pools: MaxPool (with its Indices), AveragePool and LpPool (one thread per
// output element), the global pools (a warp per plane) and MaxUnpool (a
// scatter into a zeroed output). Windows skip the positions in padding;
// AveragePool's count_include_pad counts the explicit pads but not the room
// ceil_mode adds, as the CPU kernel does.
//
// channels_last (MaxPool without Indices, AveragePool, 2-D): x and y are
// [N, H, W, C] and a thread owns V adjacent channels of one output position,
// so a warp's loads of each window tap are consecutive in C (V = 8, one
// 16-byte load per tap, for 16-bit types with C % 8 == 0 and 16-byte aligned
// tensors; else V = 1; where one image's offsets fit in 32 bits, the 16-bit
// 8-channel case runs a kernel with a block row per output row and the
// window clipped before its loads). The channels-last global average and max
// pools read 16-byte packs of every dtype (V = 16 / element size where
// C % V == 0 and both tensors are 16-byte aligned; else V = 1), a block per
// batch and channel chunk, with fp32 sums (f64 for f64).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/conv.cuh"
#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class PoolKind { kMax, kAverage, kLp };

// MaxPool takes every float and integer dtype (f64 too); AveragePool and
// LpPool the float ones. `g` has in_channels == out_channels (the channels).
struct PoolParams {
  PoolKind kind = PoolKind::kMax;
  DType dtype = DType::kF32;
  WindowGeometry g;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t* indices = nullptr;  // MaxPool's optional flat argmax (-1: empty window)
  bool column_major = false;   // storage_order 1: indices number spatial dims column-major
  bool count_include_pad = false;
  int64_t p = 2;               // LpPool's p (>= 1)
  bool channels_last = false;  // kMax without indices and kAverage only
};
Status launch_pool(const PoolParams& p, cudaStream_t stream);

// The global pools over [planes, size] for f32, f16, bf16 and f64; with
// channels_last (kAverage and kMax), x is [planes / channels, size, channels].
struct GlobalPoolParams {
  PoolKind kind = PoolKind::kAverage;
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t planes = 0, size = 0;
  int64_t p = 2;
  bool channels_last = false;
  int64_t channels = 1;  // channels_last only
};
Status launch_global_pool(const GlobalPoolParams& p, cudaStream_t stream);

// MaxUnpool: y (out_dims) zeroed, then x[i] written where indices[i] points
// into the unpooled tensor of full_dims (rank <= 5; an output_shape larger
// than full_dims pads each dim at its end). Indices outside the unpooled
// tensor are skipped (the CPU kernel reports them; a kernel cannot).
struct MaxUnpoolParams {
  int element_bytes = 4;
  const void* x = nullptr;
  const int64_t* indices = nullptr;
  void* y = nullptr;
  int64_t n = 0;  // elements of x
  int rank = 0;
  int64_t full_dims[5] = {};
  int64_t out_dims[5] = {};
};
Status launch_max_unpool(const MaxUnpoolParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
