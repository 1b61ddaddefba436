// kiln::FusedConv's activation on the device, in the accumulator type A (float
// for the 16-bit types): shared by the epilogue pass (conv_epilogue.cu) and
// kiln's own depthwise kernel (depthwise_conv.cu), so both round the same.
#pragma once

#include <cmath>

#include "backends/cuda/kernels/conv.cuh"

namespace kiln::cuda {

template <typename A>
__device__ __forceinline__ A conv_activate(A v, EpilogueActivation act, float lo, float hi) {
  switch (act) {
    case EpilogueActivation::kRelu: return v > A(0) ? v : A(0);
    case EpilogueActivation::kClip: {  // min(max(v, lo), hi), as the CPU: hi wins when lo > hi
      const A m = v < A(lo) ? A(lo) : v;
      return m > A(hi) ? A(hi) : m;
    }
    case EpilogueActivation::kSigmoid: return A(1) / (A(1) + exp(-v));
    case EpilogueActivation::kSilu: return v / (A(1) + exp(-v));
    default: return v;
  }
}

}  // namespace kiln::cuda
