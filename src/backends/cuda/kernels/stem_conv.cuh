// kiln's implicit-GEMM convolution on tensor cores for kiln::FusedConv's
// channels-last layers with few input channels (tactic "kiln_igemm"): the
// stems that space_to_depth_stem leaves (ResNet-50: 4x4 on 16 channels to
// 64; MobileNetV2, EfficientNet: 2x2 on 16 to 32), which cuDNN's engines fit
// poorly. 2-D, group 1, stride 1, dilation 1, any pads, with the FusedConv
// epilogue (bias, residual, activation) in the same pass.
#pragma once

#include <cuda_runtime.h>

#include "backends/cuda/kernels/conv.cuh"
#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// x [N, H, W, Cin] and w [Cout, KH, KW, Cin] (FusedConv's channels-last
// weight) give y [N, OH, OW, Cout] = act(conv(x, w) + bias[co] + z), summed in
// float on the tensor cores and rounded once. g is the convolution's geometry
// (NCHW order, 2-D: spatial dims 1 and 2). bias ([Cout]) and z (y's shape) may
// be null. x and w must be 16-byte aligned; y, bias and z are written and read
// 16 bytes at a time where they are, else one element at a time.
using StemConvParams = FusedConvOperands;  // f16 or bf16

// Whether the kernel takes the geometry and dtype: f16 or bf16, 2-D, group 1,
// stride 1, dilation 1, pads >= 0, Cin a multiple of 16 with
// Cin * KH * KW <= 1024, Cout a multiple of 16 up to 128, and x and y small
// enough for 32-bit pixel indexing.
bool stem_conv_fits(DType dtype, const WindowGeometry& g);

// Needs no workspace. Runs the persistent kernel (stem_conv.cu's header says
// how it works) where its weights and tiles fit in shared memory, else the
// simple one.
Status launch_stem_conv(const StemConvParams& p, cudaStream_t stream);

// For tests and kiln_cuda_bench only (process-wide, not thread-safe; the
// defaults restore normal launches): `max_blocks` > 0 caps the persistent
// kernel's grid, so each block loops over many tiles; `simple_only` makes
// every launch take the simple kernel.
struct StemConvTestHooks {
  int max_blocks = 0;
  bool simple_only = false;
};
void set_stem_conv_test_hooks(const StemConvTestHooks& hooks);

}  // namespace kiln::cuda
