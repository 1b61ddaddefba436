// Conv and ConvTranspose through cuDNN 9's graph (backend) API: one
// convolution operation (forward, or backward-data for ConvTranspose) in an
// operation graph, or (kiln::FusedConv) a forward convolution followed by
// pointwise ops for its bias, residual and activation, whose intermediates are
// virtual float tensors, so a runtime fusion engine writes Y once. Engines from heuristics (mode A, then the fallback
// list), the first that finalizes within the workspace limit and whose numerical notes the precision rules allow; a
// tactic may name another of that list, or (--builderOptimizationLevel 5's exhaustive search) any engine config by
// its identity (cudnn_engine_config.h). Plans
// are cached process-wide by their full signature and device, so the plan built at plan time (to size the workspace) is
// the one a kernel's first run finds. (cuDNN 9.5's dynamic-shape graphs with kernel caches were tried and dropped: on
// the H100 their engines ran ResNet-50 b1 2.7x slower and got f16/bf16 convolutions wrong.)
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cuda/kernels/conv.cuh"
#include "backends/cuda/ops/cudnn_engine_config.h"
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
  // Where set, this engine config instead of the engine_index-th (a
  // "cudnn_all:<id>" or "cudnn_fused_all:<id>" tactic).
  std::optional<CudnnEngineConfigId> config;
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

// What a spec runs: the index-th usable config of the heuristic list, or
// where set, the config with that id.
struct CudnnEngineChoice {
  int index = 0;
  std::optional<CudnnEngineConfigId> config;
};
// Sets spec.engine_index and spec.config to `choice`.
void use_cudnn_engine(const CudnnEngineChoice& choice, CudnnConvSpec& spec);

// One usable engine config of a search: its id (engine -1 where cuDNN would
// not say), where it came from, and its workspace; `heuristic_index` is its
// place in the heuristic list (the i of "cudnn:<i>"), -1 for the others.
struct CudnnEngineCandidate {
  CudnnEngineConfigId id;
  CudnnEngineSource source = CudnnEngineSource::kHeuristicA;
  size_t workspace = 0;
  int heuristic_index = -1;

  // Its place in the heuristic list where it has one, else its id.
  CudnnEngineChoice choice() const {
    if (heuristic_index >= 0) return {heuristic_index, std::nullopt};
    return {0, id};
  }
};

// The usable engine configs for `spec` (its engine_index and config are
// ignored): the first `heuristic_limit` of the heuristic list (mode A's, then
// the fallback's, as cudnn_conv_engine_count counts them), then with
// `exhaustive` every usable config not among those, once each: the rest of
// those lists, mode B's, then every engine by global index with its default
// knobs. Usable: the precision rules allow its numerical notes, it needs no
// operand reordering (behaviour notes), its plan finalizes and its workspace
// fits spec.workspace_limit. Every plan is cached on the way (under
// engine_index i, or under its config), so running one builds nothing.
std::vector<CudnnEngineCandidate> cudnn_conv_engine_candidates(CudnnConvSpec spec, size_t heuristic_limit,
                                                               bool exhaustive);

// How many usable engine configs of the heuristic list cuDNN offers for
// `spec` (at most `limit`); each is built (and cached) on the way.
int cudnn_conv_engine_count(CudnnConvSpec spec, int limit);

// The engine a cuDNN tactic of `family` ("cudnn" or "cudnn_fused") selects:
// "<family>:<i>" the i-th usable config of the heuristic list,
// "<family>_all:<id>" the config with that id. Nullopt for any other name
// (an unreadable id included): the caller's default.
std::optional<CudnnEngineChoice> parse_cudnn_tactic(std::string_view tactic, std::string_view family);
// "<family>_all:<id>", the tactic parse_cudnn_tactic reads back as `id`.
std::string cudnn_config_tactic(std::string_view family, const CudnnEngineConfigId& id);
// The tactic of `family` that selects candidate `c`: "<family>:<i>" for the
// heuristic list's i-th, else "<family>_all:<id>".
std::string cudnn_candidate_tactic(std::string_view family, const CudnnEngineCandidate& c);
// Sets spec.engine_index and spec.config to what `tactic` selects (the
// heuristic's first for names of other families).
void select_cudnn_engine(std::string_view tactic, std::string_view family, CudnnConvSpec& spec);

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
