// The CUDA executor's pieces the runtime uses: an engine's weights on the
// device (shared by its contexts) and a Runner per execution context that
// plans runs (run_plan.h), keeps the plan while the input dims stay the same,
// and launches it on the caller's stream, optionally as a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "backends/cuda/cublaslt_matmul.h"
#include "backends/cuda/cuda_executor.h"
#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/device.h"
#include "backends/cuda/run_plan.h"

namespace kiln::cuda {

// Every numeric constant the graph's nodes read (their bodies' nodes too),
// in one device buffer.
struct DeviceWeights {
  DeviceBuffer buffer;
  std::map<const Value*, size_t> offsets;
  size_t bytes = 0;
};
Expected<std::shared_ptr<const DeviceWeights>> upload_weights(const Graph& graph);

// Where a run's graph inputs are and where its outputs go (device memory).
class RunBindings {
 public:
  virtual ~RunBindings() = default;
  virtual const void* input(int io) = 0;
  // The buffer for graph output `io` with these dims (called once per run,
  // before the first step that writes it).
  virtual Expected<void*> output(int io, DType dtype, const std::vector<int64_t>& dims) = 0;
  // Graph output `io` is a sequence or optional (a subgraph's: If, Loop):
  // `list`'s elements are valid on `stream` until the run's memory is freed
  // (stream-ordered, after this call's copies). Called once per run, at its end.
  virtual Status output_list(int io, const DeviceList& list, cudaStream_t stream) {
    (void)list, (void)stream;
    return unsupported("graph output {} is a sequence or optional; the CUDA backend gives tensor outputs only", io);
  }
};

// Bindings over buffers of their own: inputs uploaded from host tensors, and
// each output in a buffer kept (grown when needed) across runs, with the
// dtype and dims of the last run. For run_graph_on_cuda, the builder's tactic
// timing and tests.
class DeviceBindings final : public RunBindings {
 public:
  explicit DeviceBindings(size_t num_outputs) : outputs(num_outputs), shapes(num_outputs), lists(num_outputs) {}
  // Uploads `host` as the next input (synchronous on `stream`).
  Status add_input(const Tensor& host, cudaStream_t stream = nullptr);
  const void* input(int io) override;
  Expected<void*> output(int io, DType dtype, const std::vector<int64_t>& dims) override;
  // Downloads the list into `lists` (synchronizes `stream`).
  Status output_list(int io, const DeviceList& list, cudaStream_t stream) override;
  // The first `dims` elements' worth of output `io` (by default the last
  // run's dims), copied to the host; synchronous on `stream`.
  Expected<Tensor> download_output(size_t io, cudaStream_t stream = nullptr,
                                   const std::vector<int64_t>* dims = nullptr) const;

  std::vector<DeviceBuffer> inputs;
  std::vector<DeviceBuffer> outputs;
  std::vector<std::pair<DType, std::vector<int64_t>>> shapes;  // per output, of the last run
  std::vector<std::shared_ptr<RunValue>> lists;                // per output: a sequence or optional, else null
};

// Receives each node's GPU time (CUDA events) of a profiled run.
class StepTimes {
 public:
  virtual ~StepTimes() = default;
  virtual void node_time(size_t node_index, float ms) = 0;
};

// A value of the graphs around a subgraph (an If/Loop/Scan body) that the
// subgraph reads, bound for a run of it (control_flow.h); also how a
// control-flow node sees its inputs and gives its outputs.
struct OuterValue {
  const Value* value = nullptr;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;
  const void* data = nullptr;              // on the device; null when only the host has it
  std::shared_ptr<const RunValue> host;    // its contents when the host has them
  bool shape_like = false;                 // a constant or computed from shapes only
  std::shared_ptr<const DeviceList> list;  // a sequence or optional on the device (dtype kUndefined, data null)
};

// What a run of a subgraph binds besides its inputs' dims: their dtypes (a
// body input may declare none) and the outer values it reads.
struct SubgraphValues {
  std::vector<DType> input_dtypes;
  // Per input, when it is a sequence or optional (If/Loop carrying one):
  // its list (its dims are then empty and it has no binding); else null.
  std::vector<std::shared_ptr<const DeviceList>> input_lists;
  std::vector<OuterValue> outer;
};

struct RunnerOptions {
  RunOptions run;
  bool use_cuda_graph = false;
};

class Runner {
 public:
  Runner(const Graph& graph, std::shared_ptr<const DeviceWeights> weights, RunnerOptions options);
  ~Runner();

  // Runs with the inputs' dims (and host copies where the caller has them,
  // else null) on `stream`. Returns once the work is queued, unless planning
  // needed device values on the host (shape inputs computed on the GPU, CPU
  // fallback, control flow), which synchronizes the stream at that point.
  // For a subgraph, `sub` gives its inputs' dtypes and binds the values of
  // the graphs around it that it reads: one with device data is
  // bindings.input(graph inputs + its index). A plan is reused while the
  // input dims and dtypes, the outer values' dims and the outer host values
  // that are not constants stay the same.
  Status run(const std::vector<std::vector<int64_t>>& input_dims, const std::vector<const RunValue*>& input_host,
             RunBindings& bindings, cudaStream_t stream, StepTimes* times = nullptr,
             const SubgraphValues* sub = nullptr);

  // Activation arena and workspace bytes of the plan run last (0 before a run).
  size_t arena_bytes() const;

  // Runs use [data, data + bytes) as their arena instead of memory the runner
  // allocates (and grows) itself; a run whose plan needs more fails with both
  // sizes named. Null gives the runner its own arena back. A plan with breaks
  // (shape inputs computed on the GPU, CPU fallback) still takes its memory
  // from the stream (cudaMallocAsync) while it runs.
  void set_arena(void* data, size_t bytes);
  // The arena a run with these input dims needs: planned, not run (the first
  // segment's, when planning must stop for device values).
  Expected<size_t> plan_arena_bytes(const std::vector<std::vector<int64_t>>& input_dims);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::cuda
