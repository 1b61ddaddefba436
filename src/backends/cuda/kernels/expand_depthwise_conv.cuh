// kiln's fused 1x1 expansion + depthwise convolution for
// kiln.ExpandDepthwiseConv (tactic "kiln_expand_dw"): the expanded tensor
// never reaches global memory; each block computes a slice of it over an
// output tile's halo in shared memory on the tensor cores and runs the
// depthwise over that slice (expand_depthwise_conv.cu's header says how).
// f16/bf16, square 3/5/7 kernels at stride 1 or 2: expand_depthwise_plan.h
// decides which layers and how they are tiled.
#pragma once

#include <cuda_runtime.h>

#include "backends/cuda/kernels/conv.cuh"
#include "backends/cuda/kernels/expand_depthwise_plan.h"
#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// x [N, H, W, C], w1 [E, 1, 1, C], w2 [E, K, K, 1] (FusedConv's channels-last
// weights), b1 and b2 [E] (either may be null), y [N, OH, OW, E]:
//   e = round(act1(x . w1 + b1))                 (float sums, rounded to T as the unfused pair stores it)
//   y = round(act2(depthwise(e, w2) + b2))       (float sums over the taps in kiln_dw's order)
// with e = 0 outside the image (the depthwise pads the expanded tensor).
struct ExpandDepthwiseParams {
  DType dtype = DType::kF16;
  ExpandDwLayer layer;  // f16_or_bf16 is set from dtype
  const void* x = nullptr;
  const void* w1 = nullptr;
  const void* b1 = nullptr;
  const void* w2 = nullptr;
  const void* b2 = nullptr;
  void* y = nullptr;
  EpilogueActivation act1 = EpilogueActivation::kNone, act2 = EpilogueActivation::kNone;
  float lo1 = 0, hi1 = 0, lo2 = 0, hi2 = 0;  // kClip's bounds
};

// Whether launch_expand_depthwise_conv runs p: the plan takes the layer and
// x, w1 and y are 16-byte aligned (cp.async and 16-byte stores; w2 and the
// biases are read an element at a time).
bool expand_depthwise_conv_runs(const ExpandDepthwiseParams& p);

// Needs no workspace; an error where expand_depthwise_conv_runs is false or
// the device is older than sm_80.
Status launch_expand_depthwise_conv(const ExpandDepthwiseParams& p, cudaStream_t stream);

// For tests and kiln_cuda_bench only (process-wide, not thread-safe; the
// default restores normal launches): `max_blocks` > 0 caps the persistent
// grid, so each block loops over many work units.
struct ExpandDepthwiseTestHooks {
  int max_blocks = 0;
};
void set_expand_depthwise_test_hooks(const ExpandDepthwiseTestHooks& hooks);

}  // namespace kiln::cuda
