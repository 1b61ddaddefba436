// What an engine needs in memory (the builder's report) and how a context
// gets its device memory: TensorRT's allocation strategies (static, on
// profile change, user-managed) over the CUDA runner's arena.
#include <fmt/format.h>

#include <algorithm>

#include "runtime/engine_state.h"
#include "support/bytes.h"

namespace kiln {

std::string to_string(const MemoryReport& r) {
  std::string text = fmt::format("memory: weights {}", format_bytes(r.weight_bytes));
  if (!r.activations_planned || r.profiles.empty()) {
    text += ", activations not planned (allocated per layer while running, or the shapes are unbounded)";
  } else {
    uint64_t max_bytes = 0, workspace = 0;
    bool exact = true;
    for (const ProfileMemory& p : r.profiles) {
      max_bytes = std::max(max_bytes, p.activation_bytes_max);
      workspace = std::max(workspace, p.workspace_bytes);
      exact &= p.exact;
    }
    text += fmt::format(", activations {}{} at opt shapes / {} at max shapes (one arena per context)",
                        exact ? "" : "at least ", format_bytes(r.profiles[0].activation_bytes_opt),
                        format_bytes(max_bytes));
    text += fmt::format(", workspace {} (largest layer)", format_bytes(workspace));
  }
  if (r.workspace_limit_bytes) text += fmt::format(", workspace limit {}", format_bytes(r.workspace_limit_bytes));
  return text;
}

MemoryReport Engine::memory_report() const { return state_->contents.memory; }

Expected<size_t> Engine::device_memory_size(int profile) const {
  const int n = num_optimization_profiles();
  if (profile < 0 || profile >= std::max(n, 1))
    return make_error(ErrorCode::kOutOfRange, "optimization profile {} does not exist (the engine has {})", profile, n);
  if (backend() != "cuda") return size_t{0};
  const MemoryReport& m = state_->contents.memory;
  if (!m.activations_planned)
    return unsupported(
        "the engine's device memory depends on the input shapes (a dynamic dim has no profile bounding it): set "
        "the shapes and ask the context's update_device_memory_size_for_shapes");
  return static_cast<size_t>(m.profiles.at(static_cast<size_t>(profile)).activation_bytes_max);
}

AllocationStrategy ExecutionContext::allocation_strategy() const { return state_->strategy; }

Status ExecutionContext::set_device_memory(void* memory, size_t size) {
  if (engine_->backend() != "cuda")
    return invalid_argument("set_device_memory: the {} backend runs in host memory it allocates itself",
                            engine_->backend());
  if (state_->strategy != AllocationStrategy::kUserManaged)
    return invalid_argument(
        "set_device_memory: the context allocates its own device memory; create it with "
        "AllocationStrategy::kUserManaged to give it memory");
  if (!memory) return invalid_argument("set_device_memory: the memory is null");
  if (reinterpret_cast<uintptr_t>(memory) % 256 != 0)
    return invalid_argument("set_device_memory: the memory at {} is not 256-byte aligned", memory);
  state_->user_memory = memory;
  state_->user_memory_bytes = size;
  return Status::ok();
}

Expected<size_t> ExecutionContext::update_device_memory_size_for_shapes() {
  if (!state_->inferred) KILN_RETURN_IF_ERROR(infer_shapes());
  if (engine_->backend() != "cuda") return size_t{0};
  return device_memory_for_shapes_on_cuda(engine_->state(), *state_);
}

}  // namespace kiln
