// kiln::FusedConv's activation on the device, in the accumulator type A (float
// for the 16-bit types): shared by the epilogue pass (conv_epilogue.cu) and
// kiln's own depthwise kernel (depthwise_conv.cu), so both round the same.
#pragma once

#include <cmath>
#include <type_traits>

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

// Runs f(std::integral_constant<EpilogueActivation, A>) with A = act, so the
// epilogue f inlines conv_activate's one case: a kernel's epilogue is then
// compiled once per activation and chosen once, where a switch per element
// cost more instructions than the convolution's own loop (kiln_igemm).
template <typename F>
__device__ __forceinline__ void with_activation(EpilogueActivation act, F&& f) {
  using A = EpilogueActivation;
  switch (act) {
    case A::kRelu: f(std::integral_constant<A, A::kRelu>{}); break;
    case A::kClip: f(std::integral_constant<A, A::kClip>{}); break;
    case A::kSigmoid: f(std::integral_constant<A, A::kSigmoid>{}); break;
    case A::kSilu: f(std::integral_constant<A, A::kSilu>{}); break;
    default: f(std::integral_constant<A, A::kNone>{}); break;
  }
}

}  // namespace kiln::cuda
