// Runs a graph on the GPU: plans the run from the input shapes (shape
// inference per node, host-side evaluation of shape arithmetic, one arena for
// every activation placed by lifetime), then launches each node's kernel from
// the CUDA kernel table (cuda_kernel.h) on one stream.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "ir/run_value.h"
#include "support/status.h"

namespace kiln::cuda {

struct RunOptions {
  bool allow_tf32 = true;
  // Nodes without a GPU kernel run on the host (CPU backend) with copies
  // around them; without this they are an error naming the node.
  bool allow_cpu_fallback = false;
  // The engine's workspace limit in bytes (0: none): kernels choose within
  // it, and a node that cannot fails the run naming it.
  uint64_t workspace_limit = 0;
};

// Runs `graph` with host `inputs` (one per graph input) on the current GPU and
// returns host outputs; synchronous. For tests, conformance and the builder's
// checks of tactics against the CPU reference. Sequence and optional inputs
// are uploaded as lists of device tensors and such outputs downloaded
// (sequence_ops.h).
Expected<std::vector<RunValue>> run_graph_on_cuda(const Graph& graph, std::vector<RunValue> inputs,
                                                  const RunOptions& options = {});

}  // namespace kiln::cuda
