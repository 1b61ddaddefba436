// cuDNN engine configs by identity. A config is an engine, by its global
// index among the operation graph's CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT,
// and its knob choices. Written "12" (the engine's default knobs) or
// "12_k3=1_k5=2" (knob type = value, by type; cuDNN's own plan tags read
// "eng12_k3=1_k5=2"), it names the same kernel for the same graph in every
// process of the same cuDNN version, so a tactic holding it is resolvable
// from its name alone, unlike a position in a heuristic's list (which moves
// with the workspace limit and with what the heuristic ranks).
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/cuda/ops/cudnn_backend.h"
#include "support/status.h"

namespace kiln::cuda {

struct CudnnEngineConfigId {
  int64_t engine = 0;
  std::vector<std::pair<int64_t, int64_t>> knobs;  // (cudnnBackendKnobType_t, value), sorted by type

  std::string to_string() const;
  bool operator==(const CudnnEngineConfigId&) const = default;
};

// The id `text` writes (to_string's form, knobs in any order), or nullopt for
// anything else: a negative or missing engine, a knob written twice, stray text.
std::optional<CudnnEngineConfigId> parse_cudnn_engine_config(std::string_view text);

// Where a config of the search came from (kiln_cuda_bench prints it).
enum class CudnnEngineSource { kHeuristicA, kFallback, kHeuristicB, kGlobalIndex };
const char* cudnn_engine_source_name(CudnnEngineSource source);

// What cuDNN says about a config's engine: its id (engine -1 where cuDNN
// would not say) and its numerical and behaviour notes.
struct CudnnEngineTraits {
  CudnnEngineConfigId id;
  std::vector<cudnnBackendNumericalNote_t> numerical;
  std::vector<cudnnBackendBehaviorNote_t> behavior;
};
Expected<CudnnEngineTraits> cudnn_engine_traits(const cudnn_backend::Descriptor& config);

// Whether an engine runs on the operands as kiln passes them: engines that
// want the filter or bias reordered for int8x32 first do not.
bool cudnn_engine_runs_as_is(const CudnnEngineTraits& traits);

// The configs cuDNN's heuristic in `mode` ranks for the finalized operation
// graph, best first (each finalized by cuDNN).
Expected<std::vector<cudnn_backend::Descriptor>> cudnn_heuristic_configs(const cudnn_backend::Descriptor& graph,
                                                                         cudnnBackendHeurMode_t mode);

// How many engines cuDNN has for the finalized graph (global indices 0 .. n-1,
// most of which decline any one graph).
Expected<int64_t> cudnn_engine_global_count(const cudnn_backend::Descriptor& graph);

// The finalized config `id` names for the graph, with the descriptors it
// refers to (the engine, the knob choices), which must outlive it. An error
// where the engine index is out of range, a knob is not the engine's, or the
// engine declines the graph.
struct CudnnOwnedConfig {
  cudnn_backend::Descriptor config;
  std::vector<cudnn_backend::Descriptor> parts;
};
Expected<CudnnOwnedConfig> cudnn_engine_config(const cudnn_backend::Descriptor& graph, const CudnnEngineConfigId& id);

}  // namespace kiln::cuda
