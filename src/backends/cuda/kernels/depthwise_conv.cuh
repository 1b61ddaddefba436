// kiln's own depthwise convolution for kiln::FusedConv's channels-last
// layers (tactics "kiln_dw" and "kiln_dw_strip"): one channel per group
// (multiplier 1), 2-D, no dilation, any kernel size, stride and pads, with
// the FusedConv epilogue (bias, residual, activation) in the same pass.
// Memory-bound, so it reads each input vector once per tap (the strip
// variant: about once per kernel row) and writes y once, 16 bytes at a time
// where the channels and pointers allow.
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
};

// Whether the kernel takes the geometry and dtype: the conditions above, and
// x and y small enough for 32-bit indexing.
bool depthwise_conv_fits(DType dtype, const WindowGeometry& g);

// Whether `strip` changes the kernel for g: 3x3 or 5x5 at W stride 1 or 2.
bool depthwise_conv_strip_applies(const WindowGeometry& g);

// Scratch bytes of the transposed weights (a multiple of 256).
size_t depthwise_conv_workspace(DType dtype, const WindowGeometry& g);

Status launch_depthwise_conv(const DepthwiseConvParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
