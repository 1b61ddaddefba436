// kiln's own depthwise convolution for kiln::FusedConv's channels-last
// layers (tactics "kiln_dw" and "kiln_dw_strip"): one channel per group
// (multiplier 1), 2-D, no dilation, any kernel size, stride and pads, with
// the FusedConv epilogue (bias, residual, activation) in the same pass.
// Memory-bound, so it reads each input vector once per tap (the strip
// variant: about once per kernel row; the tile variant: once per block from
// global memory, then from shared memory) and writes y once, 16 bytes at a
// time where the channels and pointers allow.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "backends/cuda/kernels/conv.cuh"
#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// x [N, H, W, C] and w [C, KH, KW, 1] (FusedConv's channels-last weight) give
// y [N, OH, OW, C] = act(conv(x, w) + bias[c] + z), summed in float and
// rounded once. g is the convolution's geometry (NCHW order, 2-D: spatial dims
// 1 and 2; group == in_channels == out_channels, dilation 1). bias ([C]) and z
// (y's shape) may be null. `workspace` holds depthwise_conv_workspace(...)
// bytes: the weights transposed to [KH * KW, C], written on every launch so
// each tap reads consecutive channels.
struct DepthwiseConvParams : FusedConvOperands {
  void* workspace = nullptr;
  // Tactic "kiln_dw_strip": each thread computes R consecutive outputs along
  // W (R = 4 at W stride 1, 2 at stride 2) from one register window per
  // kernel row, for 3x3 and 5x5 kernels at W stride 1 or 2; any other
  // geometry runs the one-pixel kernel. Same results either way.
  bool strip = false;
  // Tactic "kiln_dw_tile": a block stages an output tile's input halo (and
  // the tile's weights) in shared memory once with cp.async, then each thread
  // computes R outputs along W from it as the strip kernel does, for what
  // depthwise_conv_tile_applies takes with x, y, bias, z and the workspace
  // 16-byte aligned; anything else runs the one-pixel kernel. Same results.
  bool tile = false;
};

// The tile kernel's blocking for a layer (depthwise_conv_tile_plan): a
// block covers th output rows x strips * r columns of g * 8 channels, with
// g * th * strips threads (one per strip of r outputs and 8 channels) and
// smem_bytes of shared memory (the halo and the weights).
struct DwTilePlan {
  int g = 0;       // 8-channel groups per block: the largest divisor of C / 8 up to 8
  int r = 0;       // outputs per thread along W: 4 at stride 1 (7x7: 2), 2 at stride 2
  int th = 0;      // output rows per tile
  int strips = 0;  // strips of r outputs per tile row
  int halo_rows = 0, halo_cols = 0;
  int pitch = 0;  // a halo row's stride in 16-byte units
  int threads = 0;
  size_t smem_bytes = 0;
  int64_t blocks = 0;
};

// Whether the kernel takes the geometry and dtype: the conditions above, and
// x and y small enough for 32-bit indexing.
bool depthwise_conv_fits(DType dtype, const WindowGeometry& g);

// Whether `strip` changes the kernel for g: 3x3 or 5x5 at W stride 1 or 2.
bool depthwise_conv_strip_applies(const WindowGeometry& g);

// Whether the tile kernel takes the layer (beyond depthwise_conv_fits):
// f16 or bf16, C % 8 == 0, a square 3x3, 5x5 or 7x7 kernel, equal strides
// of 1 or 2.
bool depthwise_conv_tile_applies(DType dtype, const WindowGeometry& g);

// The tile kernel's blocking (depthwise_conv_tile_applies' layers only):
// the tile that wastes least (halo loads plus idle output slots), among
// those with at most 256 threads and 48 KB of shared memory, that still
// gives at least two blocks per SM of an H100 (132 SMs) where any does.
DwTilePlan depthwise_conv_tile_plan(const WindowGeometry& g);

// Scratch bytes of the transposed weights (a multiple of 256).
size_t depthwise_conv_workspace(DType dtype, const WindowGeometry& g);

Status launch_depthwise_conv(const DepthwiseConvParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
