// What a loaded Engine holds: the file's bytes, the decoded contents, and the
// I/O tensor table the public API answers from. Immutable once made, so any
// number of contexts may read it at once.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine_file.h"
#include "kiln/runtime.h"

namespace kiln {

namespace cuda {
struct DeviceWeights;
class Runner;
}  // namespace cuda

struct IoTensor {
  std::string name;
  TensorIOMode mode = TensorIOMode::kNone;
  DType dtype = DType::kUndefined;
  Shape shape;  // as declared, with symbols
  const Value* value = nullptr;
  size_t graph_index = 0;  // position among the graph's inputs or outputs
};

struct EngineState {
  FileBytes file;
  EngineContents contents;
  std::vector<IoTensor> io;  // inputs, then outputs
  // One per top-level node, unique: the node's name, or "Op_K" (K its index)
  // when it has none or repeats an earlier one.
  std::vector<std::string> layer_names;

  // Index into `io`, or -1.
  int find(const std::string& name) const;

  // cuda: the weights on the device, uploaded by the first context that runs
  // and shared by all of them.
  mutable std::mutex device_mutex;
  mutable std::shared_ptr<const cuda::DeviceWeights> device_weights;
};

// An ExecutionContext's state, per I/O tensor (indices as EngineState::io).
struct ContextState {
  int profile = 0;
  std::vector<std::optional<std::vector<int64_t>>> shapes;  // inputs: as set; outputs: inferred
  std::vector<const void*> addresses;
  std::vector<OutputAllocator*> allocators;
  bool inferred = false;  // output shapes follow the current input shapes
  // Output shapes inferred before, by profile and input dims (at most
  // kInferredShapesKept): a server's batches repeat a few shapes, and
  // inference clones and walks the whole graph.
  using ShapeKey = std::pair<int, std::vector<std::optional<std::vector<int64_t>>>>;
  static constexpr size_t kInferredShapesKept = 64;
  std::map<ShapeKey, std::vector<std::optional<std::vector<int64_t>>>> inferred_shapes;
  Profiler* profiler = nullptr;
  std::shared_ptr<cuda::Runner> runner;  // cuda: plans and launches runs
  bool use_cuda_graph = false;

  // cuda: the device memory runs use as their arena (see AllocationStrategy).
  AllocationStrategy strategy = AllocationStrategy::kStatic;
  std::shared_ptr<void> arena;  // kStatic, kOnProfileChange: owned (cudaFree'd)
  size_t arena_bytes = 0;
  int arena_profile = -1;                        // kOnProfileChange: the profile `arena` was sized for
  std::vector<std::vector<int64_t>> arena_dims;  // the input dims `arena` was last checked for
  Status arena_status = Status::ok();            // kStatic: why allocating at creation failed
  void* user_memory = nullptr;                   // kUserManaged: set_device_memory's
  size_t user_memory_bytes = 0;
};

// ExecutionContext::enqueue on the CUDA backend (context_run_cuda.cpp);
// execute() is enqueue on the default stream, synchronized.
Status enqueue_on_cuda(const EngineState& es, ContextState& cs, void* stream, bool synchronize);

// kStatic on "cuda": allocates the most any profile needs (at context creation).
void allocate_static_memory_on_cuda(const EngineState& es, ContextState& cs);

// The arena a cuda run with the context's input shapes needs.
Expected<size_t> device_memory_for_shapes_on_cuda(const EngineState& es, ContextState& cs);

// Reads and checks an engine (see read_engine), then checks what the runtime
// needs: tensor I/O of known rank, profiles that fit the inputs, and an op
// and CPU kernel for every node.
Expected<std::shared_ptr<const EngineState>> load_engine_state(FileBytes file);

// Checks profiles against a graph's inputs: known names, ranks, min <= opt <=
// max, fixed dims kept; every profile covers every input with a dynamic dim.
Status check_profiles(const Graph& graph, const std::vector<EngineProfile>& profiles);

// A deep copy of `graph` (constants shared, not copied), for inference that
// must not touch the engine's graph.
Expected<std::shared_ptr<Graph>> clone_graph(const std::shared_ptr<const Graph>& graph);

}  // namespace kiln
