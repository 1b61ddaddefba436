// Conv and ConvTranspose through cuDNN 9's graph (backend) API: one
// convolution operation (forward, or backward-data for ConvTranspose) in an
// operation graph, or (kiln::FusedConv) a forward convolution followed by
// pointwise ops for its bias, residual and activation, whose intermediates are
// virtual float tensors, so a runtime fusion engine writes Y once. Engines from heuristics (mode A, then the fallback
// list), the first that finalizes within the workspace limit and whose numerical notes the precision rules allow. Plans
// are cached process-wide by their full signature and device, so the plan built at plan time (to size the workspace) is
// the one a kernel's first run finds. (cuDNN 9.5's dynamic-shape graphs with kernel caches were tried and dropped: on
// the H100 their engines ran ResNet-50 b1 2.7x slower and got f16/bf16 convolutions wrong.)
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <memory>
#include <string>

#include "backends/cuda/kernels/conv.cuh"
#include "support/status.h"

namespace kiln::cuda {

// One convolution as cuDNN sees it. Pads must be symmetric (pad_begin ==
// pad_end; the caller pads asymmetric inputs itself). `spatial` is 1 to 3;
// 1-D convolutions run as 2-D with a height of 1.
struct CudnnConvSpec {
  DType dtype = DType::kF32;  // f32, f16 or bf16 (computed in float)
  bool transpose = false;     // ConvTranspose: backward data of the forward conv
  bool allow_tf32 = false;    // f32 may use TF32 tensor cores
  bool accumulate = false;    // y = conv + y (beta 1: y holds the bias), else y = conv
  int spatial = 2;
  WindowGeometry g;
  size_t workspace_limit = 0;
  int engine_index = 0;  // the n-th usable engine config, in the heuristics' order (a tactic)
  // The fused epilogue (forward only, `accumulate` false): y = act(conv +
  // bias[c] + z). cuDNN's RELU_FWD clips to [0, clip_hi]: kClip needs lo == 0.
  bool fused = false;
  bool fused_bias = false;
  bool fused_residual = false;
  EpilogueActivation activation = EpilogueActivation::kNone;
  float clip_hi = 0;
  // X, W, Y (and Z) are laid out [N, spatial..., C] (W: [K, spatial..., C/group]).
  bool channels_last = false;

  std::string key() const;
};

// How many usable engine configs cuDNN offers for `spec` (at most `limit`);
// each is built (and cached) on the way, in one pass over cuDNN's engine lists.
int cudnn_conv_engine_count(CudnnConvSpec spec, int limit);

// The engine index a "cudnn:<i>" tactic names; 0 (the heuristic's first
// usable engine) for "" and anything else.
int cudnn_tactic_index(const std::string& tactic);

class CudnnConvPlan;

// The plan for `spec` on the current device, built on first use with a
// process-wide handle of that device and cached: plans are shared by every
// node and runner of the same signature, and any handle of the device runs
// them (the handle of a run supplies the stream). Null when cuDNN has no
// engine for the spec or fails building one: the caller then runs the direct
// kernel, which takes every case.
std::shared_ptr<const CudnnConvPlan> cudnn_conv_plan(const CudnnConvSpec& spec);

size_t workspace_size(const CudnnConvPlan& plan);

// Runs the plan on `stream`: y = conv(x, w) (ConvTranspose: y = conv^T(x, w));
// a fused plan also reads `bias` and `z` (given exactly when its spec has them).
Status execute_cudnn_conv(cudnnHandle_t handle, cudaStream_t stream, const CudnnConvPlan& plan, const void* x,
                          const void* w, void* y, void* workspace, const void* bias = nullptr, const void* z = nullptr);

}  // namespace kiln::cuda
