// ExecutionContext::enqueue on the CUDA backend: binds the caller's device
// buffers to the engine's runner (backends/cuda/cuda_runner.h), which plans
// the run from the input shapes and queues it on the caller's stream.
#include <fmt/format.h>

#include <algorithm>

#include "runtime/engine_state.h"

#ifdef KILN_WITH_CUDA
#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/cuda_status.h"
#endif

namespace kiln {

#ifdef KILN_WITH_CUDA
namespace {

// The context's bindings, by graph input and output index.
class ContextBindings final : public cuda::RunBindings {
 public:
  ContextBindings(const EngineState& es, ContextState& cs) : es_(es), cs_(cs) {
    inputs_.resize(es.contents.graph->inputs.size());
    outputs_.resize(es.contents.graph->outputs.size());
    for (size_t i = 0; i < es.io.size(); ++i)
      (es.io[i].mode == TensorIOMode::kInput ? inputs_ : outputs_)[es.io[i].graph_index] = i;
  }
  size_t io_of_input(size_t graph_index) const { return inputs_[graph_index]; }

  const void* input(int io) override { return cs_.addresses[inputs_.at(static_cast<size_t>(io))]; }

  Expected<void*> output(int io, DType dtype, const std::vector<int64_t>& dims) override {
    const size_t i = outputs_.at(static_cast<size_t>(io));
    const IoTensor& t = es_.io[i];
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    const size_t bytes = dtype_storage_bytes(dtype, n);
    if (OutputAllocator* a = cs_.allocators[i]) {
      void* p = a->reallocate_output(t.name, const_cast<void*>(cs_.addresses[i]), bytes, 256);
      if (!p && bytes) return invalid_argument("the allocator of output '{}' returned no memory", t.name);
      cs_.addresses[i] = p;
      cs_.shapes[i] = dims;
      a->notify_shape(t.name, dims);
      return p;
    }
    // As on the CPU: an output whose dims inference could not fix (NonZero,
    // Unique ...) needs an allocator, called once its dims are known.
    if (!cs_.shapes[i] || std::find(cs_.shapes[i]->begin(), cs_.shapes[i]->end(), -1) != cs_.shapes[i]->end())
      return invalid_argument("output '{}' has a data-dependent shape (it came out {}); set an OutputAllocator for it",
                              t.name, Shape::of(dims).to_string());
    if (cs_.shapes[i] && *cs_.shapes[i] != dims)
      return internal_error("output '{}' came out {}, inference said {}", t.name, Shape::of(dims).to_string(),
                            Shape::of(*cs_.shapes[i]).to_string());
    if (!cs_.addresses[i] && bytes)
      return invalid_argument("output '{}' has no address (call set_tensor_address)", t.name);
    return const_cast<void*>(cs_.addresses[i]);
  }

 private:
  const EngineState& es_;
  ContextState& cs_;
  std::vector<size_t> inputs_, outputs_;  // graph index -> index into es.io
};

class ProfilerTimes final : public cuda::StepTimes {
 public:
  ProfilerTimes(const EngineState& es, Profiler& p) : es_(es), p_(p) {}
  void node_time(size_t node_index, float ms) override {
    if (node_index < es_.layer_names.size()) p_.report_layer_time(es_.layer_names[node_index], ms);
  }

 private:
  const EngineState& es_;
  Profiler& p_;
};

// The engine's weights on the device (once per engine) and the context's runner.
Status ensure_runner(const EngineState& es, ContextState& cs) {
  const Graph& graph = *es.contents.graph;
  {
    std::lock_guard<std::mutex> lock(es.device_mutex);
    if (!es.device_weights) {
      KILN_ASSIGN_OR_RETURN(es.device_weights, cuda::upload_weights(graph));
    }
  }
  if (!cs.runner) {
    cuda::RunnerOptions options;
    options.run.allow_tf32 = es.contents.settings.tf32;
    options.run.allow_cpu_fallback = es.contents.settings.allow_cpu_fallback;
    options.run.workspace_limit = es.contents.settings.workspace_limit_bytes;
    options.use_cuda_graph = cs.use_cuda_graph;
    cs.runner = std::make_shared<cuda::Runner>(graph, es.device_weights, options);
  }
  return Status::ok();
}

// The graph inputs' dims as the context holds them (every input has a shape).
std::vector<std::vector<int64_t>> input_dims(const EngineState& es, const ContextState& cs) {
  std::vector<std::vector<int64_t>> dims(es.contents.graph->inputs.size());
  for (size_t i = 0; i < es.io.size(); ++i)
    if (es.io[i].mode == TensorIOMode::kInput) dims[es.io[i].graph_index] = *cs.shapes[i];
  return dims;
}

Expected<std::shared_ptr<void>> allocate_arena(size_t bytes) {
  void* p = nullptr;
  if (bytes) {
    KILN_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes));
  }
  return std::shared_ptr<void>(p, [](void* q) {
    if (q) cudaFree(q);
  });
}

// Replaces the context's own arena with one of `bytes` (freed first: the old
// and the new need not both fit).
Status reallocate_arena(ContextState& cs, size_t bytes) {
  cs.arena.reset();
  cs.arena_bytes = 0;
  cs.arena_dims.clear();
  KILN_ASSIGN_OR_RETURN(cs.arena, allocate_arena(bytes));
  cs.arena_bytes = bytes;
  return Status::ok();
}

// Points the runner at the arena the context's strategy gives for these dims.
Status bind_arena(const EngineState& es, ContextState& cs, const std::vector<std::vector<int64_t>>& dims) {
  const MemoryReport& planned = es.contents.memory;
  switch (cs.strategy) {
    case AllocationStrategy::kUserManaged:
      if (!cs.user_memory) {
        KILN_ASSIGN_OR_RETURN(size_t needed, cs.runner->plan_arena_bytes(dims));
        return invalid_argument(
            "the context's device memory is user-managed and none was given: call set_device_memory with at least "
            "{} bytes for these input shapes (Engine::device_memory_size gives a profile's most)",
            needed);
      }
      cs.runner->set_arena(cs.user_memory, cs.user_memory_bytes);
      return Status::ok();
    case AllocationStrategy::kOnProfileChange:
      if (cs.arena_profile != cs.profile) {
        const size_t p = static_cast<size_t>(cs.profile);
        const size_t bytes =
            planned.activations_planned && p < planned.profiles.size() ? planned.profiles[p].activation_bytes_max : 0;
        KILN_RETURN_IF_ERROR(reallocate_arena(cs, bytes));
        cs.arena_profile = cs.profile;
      }
      break;
    case AllocationStrategy::kStatic: {
      KILN_RETURN_IF_ERROR(cs.arena_status);
      break;
    }
  }
  // An arena the context owns grows where the plan was unknown at build time
  // (dynamic dims without a profile); checked when the dims change.
  if (dims != cs.arena_dims) {
    KILN_ASSIGN_OR_RETURN(size_t needed, cs.runner->plan_arena_bytes(dims));
    if (needed > cs.arena_bytes) {
      KILN_RETURN_IF_ERROR(reallocate_arena(cs, needed));
    }
    cs.arena_dims = dims;
  }
  cs.runner->set_arena(cs.arena.get(), cs.arena_bytes);
  return Status::ok();
}

}  // namespace

void allocate_static_memory_on_cuda(const EngineState& es, ContextState& cs) {
  const MemoryReport& planned = es.contents.memory;
  if (!planned.activations_planned) return;  // sized by the first run's shapes
  uint64_t bytes = 0;
  for (const ProfileMemory& p : planned.profiles) bytes = std::max(bytes, p.activation_bytes_max);
  cs.arena_status = reallocate_arena(cs, static_cast<size_t>(bytes))
                        .with_context("allocating the context's device memory (AllocationStrategy::kStatic)");
}

Expected<size_t> device_memory_for_shapes_on_cuda(const EngineState& es, ContextState& cs) {
  KILN_RETURN_IF_ERROR(ensure_runner(es, cs));
  return cs.runner->plan_arena_bytes(input_dims(es, cs));
}

Status enqueue_on_cuda(const EngineState& es, ContextState& cs, void* stream, bool synchronize) {
  const Graph& graph = *es.contents.graph;
  KILN_RETURN_IF_ERROR(ensure_runner(es, cs));
  ContextBindings bindings(es, cs);
  std::vector<std::vector<int64_t>> dims = input_dims(es, cs);
  for (size_t g = 0; g < graph.inputs.size(); ++g) {
    const size_t i = bindings.io_of_input(g);
    if (!cs.addresses[i] && dtype_storage_bytes(es.io[i].dtype, checked_numel(dims[g])))
      return invalid_argument("input '{}' has no address (call set_tensor_address)", es.io[i].name);
  }
  KILN_RETURN_IF_ERROR(bind_arena(es, cs, dims));
  std::optional<ProfilerTimes> times;
  if (cs.profiler) times.emplace(es, *cs.profiler);
  auto s = static_cast<cudaStream_t>(stream);
  KILN_RETURN_IF_ERROR(cs.runner->run(dims, std::vector<const RunValue*>(graph.inputs.size(), nullptr), bindings, s,
                                      times ? &*times : nullptr));
  if (synchronize) KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s));
  return Status::ok();
}

#else

Status enqueue_on_cuda(const EngineState&, ContextState&, void*, bool) {
  return unsupported("this kiln was built without the CUDA backend");
}

void allocate_static_memory_on_cuda(const EngineState&, ContextState& cs) {
  cs.arena_status = unsupported("this kiln was built without the CUDA backend");
}

Expected<size_t> device_memory_for_shapes_on_cuda(const EngineState&, ContextState&) {
  return unsupported("this kiln was built without the CUDA backend");
}

#endif

}  // namespace kiln
