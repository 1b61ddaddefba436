// ExecutionContext::infer_shapes and execute: output shapes from input shapes,
// then a run on the CPU executor with the caller's buffers.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "backends/cpu/cpu_executor.h"
#include "ops/shape_inference.h"
#include "runtime/engine_state.h"

namespace kiln {

namespace {

using Symbols = std::map<std::string, int64_t>;

std::string dims_text(const std::vector<int64_t>& d) { return Shape::of(d).to_string(); }

// A dim's size given the inputs' symbol values: fixed, a bound symbol, or a
// product of them ("batch*seq", "4*seq"); -1 when it depends on data.
int64_t resolve(const Dim& d, const Symbols& sym) {
  if (d.is_fixed()) return d.value;
  if (!d.is_symbolic()) return -1;
  int64_t product = 1;
  size_t start = 0;
  while (start <= d.symbol.size()) {
    size_t star = d.symbol.find('*', start);
    std::string f = d.symbol.substr(start, star == std::string::npos ? std::string::npos : star - start);
    int64_t v = -1;
    if (auto it = sym.find(f); it != sym.end())
      v = it->second;
    else if (!f.empty() && f.size() <= 18 && f.find_first_not_of("0123456789") == std::string::npos)
      v = std::stoll(f);
    if (v < 0 || __builtin_mul_overflow(product, v, &product)) return -1;
    if (star == std::string::npos) break;
    start = star + 1;
  }
  return product;
}

// Binds each input's symbols to the sizes given, checking that inputs sharing
// a symbol agree.
Expected<Symbols> bind_symbols(const EngineState& es, const ContextState& cs) {
  Symbols sym;
  std::map<std::string, std::string> bound_by;
  std::string missing;
  for (size_t i = 0; i < es.io.size(); ++i) {
    const IoTensor& t = es.io[i];
    if (t.mode != TensorIOMode::kInput) continue;
    if (!cs.shapes[i]) {
      missing += fmt::format("{}'{}' {}", missing.empty() ? "" : ", ", t.name, t.shape.to_string());
      continue;
    }
    for (size_t d = 0; d < cs.shapes[i]->size(); ++d) {
      const Dim& dim = (*t.shape.dims)[d];
      if (!dim.is_symbolic()) continue;
      int64_t v = (*cs.shapes[i])[d];
      auto [it, fresh] = sym.emplace(dim.symbol, v);
      if (fresh) {
        bound_by[dim.symbol] = t.name;
      } else if (it->second != v) {
        return invalid_argument("input '{}' dim {} ({}) is {}, but input '{}' set {} to {}", t.name, d, dim.symbol, v,
                                bound_by[dim.symbol], dim.symbol, it->second);
      }
    }
  }
  if (!missing.empty()) return invalid_argument("no shape set for input {} (call set_input_shape)", missing);
  return sym;
}

// Forwards the executor's node times to the user's Profiler by layer name.
class ProfilerSink final : public NodeTimeSink {
 public:
  ProfilerSink(const EngineState& es, Profiler& profiler) : es_(es), profiler_(profiler) {}
  void node_time(size_t index, const Node&, double ms) override {
    profiler_.report_layer_time(es_.layer_names[index], static_cast<float>(ms));
  }

 private:
  const EngineState& es_;
  Profiler& profiler_;
};

}  // namespace

void ExecutionContext::set_profiler(Profiler* profiler) { state_->profiler = profiler; }
Profiler* ExecutionContext::profiler() const { return state_->profiler; }

Status ExecutionContext::infer_shapes() {
  const EngineState& es = engine_->state();
  ContextState::ShapeKey key{state_->profile, {}};
  for (size_t i = 0; i < es.io.size(); ++i)
    if (es.io[i].mode == TensorIOMode::kInput) key.second.push_back(state_->shapes[i]);
  if (auto hit = state_->inferred_shapes.find(key); hit != state_->inferred_shapes.end()) {
    for (size_t i = 0, o = 0; i < es.io.size(); ++i)
      if (es.io[i].mode == TensorIOMode::kOutput) state_->shapes[i] = hit->second[o++];
    state_->inferred = true;
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(Symbols sym, bind_symbols(es, *state_));
  // Inference runs on a copy: the engine's graph is shared by every context.
  KILN_ASSIGN_OR_RETURN(auto g, clone_graph(es.contents.graph));
  for (size_t i = 0; i < es.io.size(); ++i)
    if (es.io[i].mode == TensorIOMode::kInput)
      g->inputs[es.io[i].graph_index]->type.shape = Shape::of(*state_->shapes[i]);
  std::vector<Diagnostic> diags;
  kiln::infer_shapes(*g, diags);
  if (!diags.empty()) return invalid_argument("with the input shapes given: {}", format_diagnostic(diags.front()));
  for (size_t i = 0; i < es.io.size(); ++i) {
    if (es.io[i].mode != TensorIOMode::kOutput) continue;
    const Shape& s = g->outputs[es.io[i].graph_index]->type.shape;
    if (!s.has_rank()) {
      state_->shapes[i].reset();
      continue;
    }
    std::vector<int64_t> dims;
    for (const Dim& d : *s.dims) dims.push_back(resolve(d, sym));
    state_->shapes[i] = std::move(dims);
  }
  state_->inferred = true;
  if (state_->inferred_shapes.size() >= ContextState::kInferredShapesKept) state_->inferred_shapes.clear();
  auto& outputs = state_->inferred_shapes[std::move(key)];
  for (size_t i = 0; i < es.io.size(); ++i)
    if (es.io[i].mode == TensorIOMode::kOutput) outputs.push_back(state_->shapes[i]);
  return Status::ok();
}

Status ExecutionContext::enqueue(void* stream) {
  const EngineState& es = engine_->state();
  if (es.contents.backend != "cuda") return execute();
  if (!state_->inferred) KILN_RETURN_IF_ERROR(infer_shapes());
  return enqueue_on_cuda(es, *state_, stream, false);
}

void ExecutionContext::set_use_cuda_graph(bool on) {
  state_->use_cuda_graph = on;
  state_->runner.reset();  // the next run plans again with the new setting
}

// A kString output's elements into the caller's array (or its allocator's).
static Status copy_string_output(const IoTensor& t, const Tensor& out, ContextState& st, size_t i) {
  auto* dst = static_cast<std::string*>(const_cast<void*>(st.addresses[i]));
  auto count = static_cast<size_t>(out.numel());
  if (OutputAllocator* a = st.allocators[i]) {
    dst = a->reallocate_string_output(t.name, count);
    if (!dst && count)
      return invalid_argument("the allocator of string output '{}' returned no strings (reallocate_string_output)",
                              t.name);
    st.addresses[i] = dst;
    st.shapes[i] = out.dims();
  } else if (out.dims() != *st.shapes[i]) {
    return internal_error("output '{}' came out {}, inference said {}", t.name, dims_text(out.dims()),
                          dims_text(*st.shapes[i]));
  }
  std::copy(out.strings().begin(), out.strings().begin() + static_cast<ptrdiff_t>(count), dst);
  if (OutputAllocator* a = st.allocators[i]) a->notify_shape(t.name, out.dims());
  return Status::ok();
}

Status ExecutionContext::execute() {
  const EngineState& es = engine_->state();
  if (!state_->inferred) KILN_RETURN_IF_ERROR(infer_shapes());
  if (es.contents.backend == "cuda") return enqueue_on_cuda(es, *state_, nullptr, true);
  std::vector<RunValue> inputs(es.contents.graph->inputs.size());
  for (size_t i = 0; i < es.io.size(); ++i) {
    const IoTensor& t = es.io[i];
    const auto& dims = state_->shapes[i];
    if (t.mode == TensorIOMode::kInput && t.dtype == DType::kString) {
      Tensor strings(DType::kString, *dims);
      if (!state_->addresses[i] && strings.numel())
        return invalid_argument("input '{}' has no address (call set_tensor_address)", t.name);
      const auto* src = static_cast<const std::string*>(state_->addresses[i]);
      std::copy(src, src + strings.numel(), strings.strings().begin());
      inputs[t.graph_index] = RunValue::of(std::move(strings));
      continue;
    }
    if (t.mode == TensorIOMode::kInput) {
      size_t bytes = dtype_storage_bytes(t.dtype, checked_numel(*dims));
      if (!state_->addresses[i] && bytes)
        return invalid_argument("input '{}' has no address (call set_tensor_address)", t.name);
      inputs[t.graph_index] = RunValue::of(Tensor::view(t.dtype, *dims, state_->addresses[i], bytes, nullptr));
      continue;
    }
    if (state_->allocators[i]) continue;
    bool known = dims && std::find(dims->begin(), dims->end(), -1) == dims->end();
    if (!known)
      return invalid_argument("output '{}' has a data-dependent shape {}; set an OutputAllocator for it", t.name,
                              dims ? dims_text(*dims) : "[*]");
    int64_t count = checked_numel(*dims);
    if (!state_->addresses[i] && (t.dtype == DType::kString ? count > 0 : dtype_storage_bytes(t.dtype, count) > 0))
      return invalid_argument("output '{}' has no address (call set_tensor_address)", t.name);
  }
  std::optional<ProfilerSink> sink;
  if (state_->profiler) sink.emplace(es, *state_->profiler);
  auto outputs = run_graph_on_cpu(*es.contents.graph, std::move(inputs), nullptr, sink ? &*sink : nullptr);
  if (!outputs) return outputs.status();
  for (size_t i = 0; i < es.io.size(); ++i) {
    const IoTensor& t = es.io[i];
    if (t.mode != TensorIOMode::kOutput) continue;
    const RunValue& rv = (*outputs)[t.graph_index];
    if (!rv.is_tensor() || rv.tensor.dtype() != t.dtype)
      return internal_error("output '{}' came out as {}, the engine declares {}", t.name, type_of(rv).to_string(),
                            dtype_name(t.dtype));
    const Tensor& out = rv.tensor;
    if (t.dtype == DType::kString) {
      KILN_RETURN_IF_ERROR(copy_string_output(t, out, *state_, i));
      continue;
    }
    void* dst = const_cast<void*>(state_->addresses[i]);
    if (OutputAllocator* a = state_->allocators[i]) {
      dst = a->reallocate_output(t.name, dst, out.nbytes(), 64);
      if (!dst && out.nbytes()) return invalid_argument("the allocator of output '{}' returned no memory", t.name);
      state_->addresses[i] = dst;
      state_->shapes[i] = out.dims();
    } else if (out.dims() != *state_->shapes[i]) {
      return internal_error("output '{}' came out {}, inference said {}", t.name, dims_text(out.dims()),
                            dims_text(*state_->shapes[i]));
    }
    if (out.nbytes()) std::memcpy(dst, out.raw(), out.nbytes());
    if (OutputAllocator* a = state_->allocators[i]) a->notify_shape(t.name, out.dims());
  }
  return Status::ok();
}

}  // namespace kiln
