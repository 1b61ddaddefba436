// The engine's memory report (kiln::MemoryReport), planned at build time: the
// weights' bytes on every backend, and on "cuda" the activation arena of each
// profile at its opt and max shapes (the runner's own plan, tactics and
// workspace limit included) and the largest workspace of one layer. Planning
// at the max shapes also fails the build, naming the layer, when a kernel's
// smallest workspace exceeds the limit.
#pragma once

#include <vector>

#include "engine/engine_file.h"
#include "ir/graph.h"
#include "kiln/builder.h"

namespace kiln {

// The bytes of every constant the top-level layers read or the graph outputs.
uint64_t weight_bytes(const Graph& graph);

Expected<MemoryReport> plan_memory(const Graph& graph, const BuildConfig& config,
                                   const std::vector<EngineProfile>& profiles);

}  // namespace kiln
