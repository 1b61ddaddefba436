// kiln::FusedConv with its max pool fused (tactic "kiln_igemm_pool"): the
// implicit-GEMM stem of stem_conv.cuh followed by a 2-D max pool, in one
// pass that never writes the convolution's output (ResNet-50: the 4x4 conv
// over 16 space-to-depth channels to 64, Relu, then MaxPool 3x3/2 pad 1:
// 112x112x64 -> 56x56x64).
#pragma once

#include <cuda_runtime.h>

#include "backends/cuda/kernels/conv.cuh"
#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// x, w, bias and the activation as StemConvParams (z must be null: a
// pooled FusedConv has no residual); g is the convolution's geometry and
// `pool` the max pool's over the convolution's output (pool.in == g.out,
// channels g.out_channels): y [N, PH, PW, Cout] = maxpool(act(conv(x, w) +
// bias)), each convolution value rounded to T before the max, pool windows
// skipping positions outside the convolution's output (pool padding is
// -inf), as the CPU reference's conv then MaxPool.
struct StemConvPoolParams : FusedConvOperands {
  WindowGeometry pool;
};

// Whether the kernel takes the layer: what stem_conv_fits admits for g, and
// a pool of kernel 1 to 3, stride 1 or 2, pads below the kernel, no dilation,
// over g's output with floor-mode output dims.
bool stem_conv_pool_fits(DType dtype, const WindowGeometry& g, const WindowGeometry& pool);

// Needs no workspace; x and w 16-byte aligned. Fails (unsupported) where the
// device or its shared memory cannot run it: the caller's unfused route then
// runs.
Status launch_stem_conv_pool(const StemConvPoolParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
