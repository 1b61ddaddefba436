// Pieces shared by the registrations of the sliding-window family (conv.cpp,
// pool.cpp, sampling.cpp): input dtypes as the graph declares them, the rank
// rule of the window plan, and the device geometry of a CPU window plan (the
// CPU backend's plan is the one source of every padding and rounding rule).
#pragma once

#include "backends/cpu/kernels/window_plan.h"
#include "backends/cuda/kernels/conv.cuh"
#include "ir/graph.h"
#include "ops/fused_activation.h"
#include "support/status.h"

namespace kiln::cuda {

inline DType input_dtype(const Node& node, size_t i) {
  const Value* v = node.input(i);
  return v ? v->type.dtype : DType::kUndefined;
}

inline bool is_float_dtype(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64;
}

// Window ops take [N, C, spatial...] with 1 to 3 spatial dims (as on the CPU).
inline Status supports_window_rank(const Node& node) {
  const Value* x = node.input(0);
  const int64_t rank = x ? x->type.shape.rank() : -1;
  if (rank >= 0 && (rank < 3 || rank > 5))
    return unsupported("{}: input of rank {} (1-D to 3-D spatial inputs only)", node.op_type, rank);
  return Status::ok();
}

inline WindowGeometry geometry_of(const WindowPlan& p) {
  WindowGeometry g;
  g.batch = p.batch;
  g.in_channels = g.out_channels = p.channels;
  for (int a = 0; a < 3; ++a) {
    g.in[a] = p.in[a], g.out[a] = p.out[a], g.kernel[a] = p.kernel[a], g.stride[a] = p.stride[a];
    g.dilation[a] = p.dilation[a], g.pad_begin[a] = p.pad_begin[a], g.pad_end[a] = p.pad_end[a];
  }
  return g;
}

// A FusedConv activation as the CUDA convolution kernels' epilogue constant
// (conv_activation.cuh; Clip's bounds travel beside it).
inline EpilogueActivation epilogue_activation(const FusedActivation& a) {
  switch (a.kind) {
    case FusedActivation::Kind::kRelu: return EpilogueActivation::kRelu;
    case FusedActivation::Kind::kClip: return EpilogueActivation::kClip;
    case FusedActivation::Kind::kSigmoid: return EpilogueActivation::kSigmoid;
    case FusedActivation::Kind::kSilu: return EpilogueActivation::kSilu;
    default: return EpilogueActivation::kNone;
  }
}

}  // namespace kiln::cuda
