// Tactic selection on the target GPU. For each layer whose CUDA kernel offers
// several implementations (KernelDef::tactics: cuBLASLt algorithms, cuDNN
// engine configs, kiln's own variants), the builder runs the layer alone at
// the profile's opt shapes on random inputs, drops every candidate whose
// result differs from the CPU reference, times the rest (warm-up, L2 flushed
// before each run, median of several runs, CUDA events) and records the
// fastest in the node (metadata "kiln.tactic"). The timing cache
// (engine/timing_cache.h) remembers each choice per device and layer
// signature, so a rebuild with a warm cache times nothing, lists no
// candidates (no cuDNN plan is built for them) and writes a byte-identical
// engine. Optimization level 0 times nothing (the libraries'
// heuristics); levels 1..5 try 2, 4, 8, 16, 64 candidates, and level 5 also
// every further one the kernels know (tuning_level.h). Candidates whose
// workspace exceeds BuildConfig::workspace_limit_bytes are not timed (the
// libraries are asked only for those that fit; any other is dropped here).
#pragma once

#include <string>
#include <vector>

#include "engine/engine_file.h"
#include "ir/graph.h"
#include "kiln/builder.h"

namespace kiln {

struct AutotuneStats {
  size_t layers = 0;    // layers with more than one candidate
  size_t timed = 0;     // of those, timed now
  size_t cached = 0;    // taken from the timing cache
  size_t rejected = 0;  // candidates that failed or disagreed with the CPU
  // Candidates whose workspace exceeds the build's limit, never timed:
  // "layer 'conv1' (Conv): cudnn:3 needs 300.0 MiB of workspace, over the limit of 16.0 MiB".
  std::vector<std::string> over_workspace;
  std::string skipped;  // why tuning did not run, when it did not
};

Expected<AutotuneStats> autotune(Graph& graph, const BuildConfig& config, const std::vector<EngineProfile>& profiles);

}  // namespace kiln
