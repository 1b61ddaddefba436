// kiln's own depthwise convolution for kiln::FusedConv's channels-last
// layers (tactic "kiln_dw"): one channel per group (multiplier 1), 2-D, no
// dilation, any kernel size, stride and pads, with the FusedConv epilogue
// (bias, residual, activation) in the same pass. Memory-bound, so it reads
// each input vector once per tap and writes y once, 16 bytes at a time where
// the channels and pointers allow.
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
};

// Whether the kernel takes the geometry and dtype: the conditions above, and
// x and y small enough for 32-bit indexing.
bool depthwise_conv_fits(DType dtype, const WindowGeometry& g);

// Scratch bytes of the transposed weights (a multiple of 256).
size_t depthwise_conv_workspace(DType dtype, const WindowGeometry& g);

Status launch_depthwise_conv(const DepthwiseConvParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
