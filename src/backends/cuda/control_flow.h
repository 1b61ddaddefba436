// If, Loop and Scan on the CUDA backend. Planning ends a segment before such
// a node (run_plan.h); the executor then runs it here, between segments:
//   - If reads its cond on the host and runs the branch taken;
//   - Loop reads its trip count M and cond on the host, then runs the body
//     once per iteration; with a cond input it reads the body's cond output
//     after each iteration (a copy to the host and a stream synchronization
//     per iteration, inherent to a data-dependent loop);
//   - Scan runs the body once per slice of its scan inputs (slices along
//     axis 0 are views; others are gathered with one 2-D copy).
// Each body runs through its own Runner (cuda_runner.h): planned like a graph,
// with its own arena, its plan kept while its input dims stay the same, and
// the values of the graphs around it bound as inputs (their device memory).
// Its nodes run as CUDA kernels; loop-carried values stay on the device, and
// scan outputs are stacked on the device. A run holding a control-flow node
// is never captured as a CUDA graph (it has breaks).
#pragma once

#include <vector>

#include "backends/cuda/cuda_runner.h"

namespace kiln::cuda {

// What a control-flow node sees of the run around it.
class ControlFlowRun {
 public:
  virtual ~ControlFlowRun() = default;
  // A value the node reads (an input, or a value its bodies read from the
  // graphs around them): dims, device data (a numeric tensor always has it)
  // and host contents when known.
  virtual Expected<OuterValue> value(const Value* v) = 0;
  // Keeps `p` (cudaMallocAsync'ed on stream()) until the run ends.
  virtual void hold(void* p) = 0;
  virtual cudaStream_t stream() const = 0;
  // The runner of `body`, kept across runs (plans are reused).
  virtual Runner& body_runner(const Graph& body) = 0;
};

// Runs an If, Loop or Scan node (is_device_control_flow) on the device and
// returns its outputs in order (one per node output; omitted ones too): in
// memory given to run.hold, or the memory of a value read (a Loop with no
// iteration gives back its initial values). Errors name the node.
Expected<std::vector<OuterValue>> run_control_flow(const Node& node, ControlFlowRun& run);

}  // namespace kiln::cuda
