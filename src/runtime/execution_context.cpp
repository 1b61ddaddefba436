// ExecutionContext: per-run shapes, bindings and profile selection over an
// immutable engine. Shape errors name the input, the dim and what is allowed.
#include <fmt/format.h>

#include <cstring>
#include <map>
#include <optional>

#include "backends/cpu/cpu_executor.h"
#include "ops/shape_inference.h"
#include "runtime/engine_state.h"

namespace kiln {

namespace {

std::string dims_text(const std::vector<int64_t>& d) { return Shape::of(d).to_string(); }

// Dim d of an I/O tensor as "dim 0 (batch)" for messages.
std::string dim_label(const IoTensor& t, size_t d) {
  const Dim& dim = (*t.shape.dims)[d];
  return dim.is_symbolic() ? fmt::format("dim {} ({})", d, dim.symbol) : fmt::format("dim {}", d);
}

std::optional<std::vector<int64_t>> static_dims(const IoTensor& t) {
  if (!t.shape.is_fixed()) return std::nullopt;
  return t.shape.fixed_dims();
}

}  // namespace

ExecutionContext::ExecutionContext(std::shared_ptr<Engine> engine, AllocationStrategy strategy)
    : engine_(std::move(engine)), state_(std::make_unique<ContextState>()) {
  state_->strategy = strategy;
  size_t n = engine_->state().io.size();
  state_->shapes.resize(n);
  state_->addresses.resize(n, nullptr);
  state_->allocators.resize(n, nullptr);
  for (size_t i = 0; i < n; ++i)
    if (engine_->state().io[i].mode == TensorIOMode::kInput) state_->shapes[i] = static_dims(engine_->state().io[i]);
  if (strategy == AllocationStrategy::kStatic && engine_->backend() == "cuda")
    allocate_static_memory_on_cuda(engine_->state(), *state_);
}

ExecutionContext::~ExecutionContext() = default;

int ExecutionContext::optimization_profile() const { return state_->profile; }

Status ExecutionContext::set_optimization_profile(int index) {
  int n = engine_->num_optimization_profiles();
  if (index < 0 || (n == 0 ? index != 0 : index >= n))
    return make_error(ErrorCode::kOutOfRange, "optimization profile {} does not exist (the engine has {})", index, n);
  state_->profile = index;
  const EngineState& es = engine_->state();
  // Shapes set for the old profile must fit the new one.
  for (size_t i = 0; i < es.io.size(); ++i)
    if (es.io[i].mode == TensorIOMode::kInput && state_->shapes[i] && !es.io[i].shape.is_fixed()) {
      std::vector<int64_t> dims = *state_->shapes[i];
      state_->shapes[i].reset();
      KILN_RETURN_IF_ERROR(set_input_shape(es.io[i].name, dims));
    }
  return Status::ok();
}

Status ExecutionContext::set_input_shape(const std::string& name, const std::vector<int64_t>& dims) {
  const EngineState& es = engine_->state();
  int i = es.find(name);
  if (i < 0) return engine_->tensor_shape(name).status();
  const IoTensor& t = es.io[static_cast<size_t>(i)];
  if (t.mode != TensorIOMode::kInput) return invalid_argument("'{}' is an output; only inputs take a shape", name);
  size_t rank = static_cast<size_t>(t.shape.rank());
  if (dims.size() != rank)
    return invalid_argument("input '{}': shape {} has rank {}, the engine expects rank {} {}", name, dims_text(dims),
                            dims.size(), rank, t.shape.to_string());
  const ShapeRange* range = nullptr;
  if (!es.contents.profiles.empty()) range = es.contents.profiles[static_cast<size_t>(state_->profile)].find(name);
  for (size_t d = 0; d < rank; ++d) {
    const Dim& dim = (*t.shape.dims)[d];
    if (dims[d] < 0) return invalid_argument("input '{}' {} is {}; dims must be >= 0", name, dim_label(t, d), dims[d]);
    if (dim.is_fixed() && dims[d] != dim.value)
      return invalid_argument("input '{}' {} is {}, the engine fixes it to {} (shape {})", name, dim_label(t, d),
                              dims[d], dim.value, t.shape.to_string());
    if (range && (dims[d] < range->min[d] || dims[d] > range->max[d]))
      return make_error(ErrorCode::kOutOfRange, "input '{}' {} is {}, outside optimization profile {}'s range [{}, {}]",
                        name, dim_label(t, d), dims[d], state_->profile, range->min[d], range->max[d]);
  }
  auto& shape = state_->shapes[static_cast<size_t>(i)];
  if (shape && *shape == dims) return Status::ok();  // the outputs' shapes still hold
  shape = dims;
  state_->inferred = false;
  return Status::ok();
}

Expected<std::vector<int64_t>> ExecutionContext::tensor_shape(const std::string& name) const {
  const EngineState& es = engine_->state();
  int i = es.find(name);
  if (i < 0) return engine_->tensor_shape(name);
  const auto& known = state_->shapes[static_cast<size_t>(i)];
  bool is_output = es.io[static_cast<size_t>(i)].mode == TensorIOMode::kOutput;
  if (known && (!is_output || state_->inferred)) return *known;
  if (is_output && !state_->inferred) {
    Status st = const_cast<ExecutionContext*>(this)->infer_shapes();
    if (st.is_ok() && state_->shapes[static_cast<size_t>(i)]) return *state_->shapes[static_cast<size_t>(i)];
  }
  return engine_->tensor_shape(name);
}

Status ExecutionContext::set_tensor_address(const std::string& name, void* data) {
  const EngineState& es = engine_->state();
  int i = es.find(name);
  if (i < 0) return engine_->tensor_shape(name).status();
  state_->addresses[static_cast<size_t>(i)] = data;
  return Status::ok();
}

Status ExecutionContext::set_input_tensor_address(const std::string& name, const void* data) {
  const EngineState& es = engine_->state();
  int i = es.find(name);
  if (i < 0) return engine_->tensor_shape(name).status();
  if (es.io[static_cast<size_t>(i)].mode != TensorIOMode::kInput)
    return invalid_argument("'{}' is an output; it needs a writable address", name);
  state_->addresses[static_cast<size_t>(i)] = data;
  return Status::ok();
}

const void* ExecutionContext::tensor_address(const std::string& name) const {
  int i = engine_->state().find(name);
  return i < 0 ? nullptr : state_->addresses[static_cast<size_t>(i)];
}

Status ExecutionContext::set_output_allocator(const std::string& name, OutputAllocator* allocator) {
  const EngineState& es = engine_->state();
  int i = es.find(name);
  if (i < 0) return engine_->tensor_shape(name).status();
  if (es.io[static_cast<size_t>(i)].mode != TensorIOMode::kOutput)
    return invalid_argument("'{}' is an input; only outputs take an allocator", name);
  state_->allocators[static_cast<size_t>(i)] = allocator;
  return Status::ok();
}

}  // namespace kiln
