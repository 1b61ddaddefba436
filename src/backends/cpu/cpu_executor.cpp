#include "backends/cpu/cpu_executor.h"

#include <fmt/format.h>

#include <chrono>

#include "backends/cpu/cpu_kernel.h"
#include "ops/op_schema.h"

namespace kiln {

const RunValue* RunScope::find(const Value* v) const {
  for (const RunScope* s = this; s; s = s->parent) {
    auto it = s->values.find(v);
    if (it != s->values.end()) return &it->second;
  }
  return nullptr;
}

Type type_of(const RunValue& v) {
  auto tensor_type = [](const Tensor& t) { return Type::tensor(t.dtype(), Shape::of(t.dims())); };
  switch (v.kind) {
    case Type::Kind::kTensor: return tensor_type(v.tensor);
    case Type::Kind::kSequence:
      return Type::sequence_of(v.sequence.empty() ? Type() : Type::tensor(v.sequence[0].dtype(), Shape()));
    case Type::Kind::kOptional:
      if (!v.present) return Type::optional_of(Type());
      if (v.holds_sequence)
        return Type::optional_of(
            Type::sequence_of(v.sequence.empty() ? Type() : Type::tensor(v.sequence[0].dtype(), Shape())));
      return Type::optional_of(tensor_type(v.tensor));
  }
  return Type();
}

namespace {

class NodeRun final : public CpuKernelContext {
 public:
  NodeRun(const Node& node, std::vector<const RunValue*> inputs, const std::vector<Type>& out_types, RunScope& scope)
      : node_(node),
        inputs_(std::move(inputs)),
        out_types_(out_types),
        scope_(scope),
        outputs_(node.outputs.size()),
        set_(node.outputs.size(), false) {}

  const Node& node() const override { return node_; }
  const RunValue& input_value(size_t i) const override {
    static const RunValue empty;
    return i < inputs_.size() && inputs_[i] ? *inputs_[i] : empty;
  }
  DType output_dtype(size_t i) const override {
    return i < out_types_.size() ? out_types_[i].dtype : DType::kUndefined;
  }
  std::optional<std::vector<int64_t>> inferred_dims(size_t i) const override {
    if (i >= out_types_.size() || !out_types_[i].is_tensor() || !out_types_[i].shape.is_fixed()) return std::nullopt;
    return out_types_[i].shape.fixed_dims();
  }
  Tensor& allocate_output(size_t i, std::vector<int64_t> dims) override {
    assert(i < outputs_.size());
    outputs_[i] = RunValue::of(Tensor(output_dtype(i), std::move(dims)));
    set_[i] = true;
    return outputs_[i].tensor;
  }
  void set_output(size_t i, RunValue value) override {
    assert(i < outputs_.size());
    outputs_[i] = std::move(value);
    set_[i] = true;
  }
  Expected<std::vector<RunValue>> run_subgraph(const Graph& body, std::vector<RunValue> inputs) override {
    return run_graph_on_cpu(body, std::move(inputs), &scope_);
  }

  bool is_set(size_t i) const { return set_[i]; }
  RunValue take_output(size_t i) { return std::move(outputs_[i]); }

 private:
  const Node& node_;
  std::vector<const RunValue*> inputs_;
  const std::vector<Type>& out_types_;
  RunScope& scope_;
  std::vector<RunValue> outputs_;
  std::vector<bool> set_;
};

std::string where(const Node& n) { return fmt::format("node '{}' ({})", n.name, n.op_type); }

}  // namespace

void collect_node_reads(const Node& n, std::vector<const Value*>& out) {
  for (const Value* v : n.inputs)
    if (v) out.push_back(v);
  for (const auto& [key, a] : n.attrs) {
    std::vector<const Graph*> bodies;
    if (a.g) bodies.push_back(a.g.get());
    for (const auto& g : a.graphs) bodies.push_back(g.get());
    for (const Graph* g : bodies) {
      for (const auto& inner : g->nodes()) collect_node_reads(*inner, out);
      out.insert(out.end(), g->outputs.begin(), g->outputs.end());
    }
  }
}

Status run_node_in_scope(const Node& node, RunScope& scope) {
  std::vector<const RunValue*> inputs;
  std::vector<Type> types;
  types.reserve(node.inputs.size());
  std::vector<RunValue> constants;  // wrappers for constant inputs
  constants.reserve(node.inputs.size());
  for (const Value* v : node.inputs) {
    if (!v) {
      inputs.push_back(nullptr);
      continue;
    }
    const RunValue* rv = scope.find(v);
    if (!rv && v->constant) {
      constants.push_back(RunValue::of(*v->constant));
      rv = &constants.back();
    }
    if (!rv) return internal_error("{}: input '{}' has no value at run time", where(node), v->name);
    inputs.push_back(rv);
  }
  std::vector<const Type*> type_ptrs;
  std::vector<const Tensor*> values;
  for (const RunValue* rv : inputs) types.push_back(rv ? type_of(*rv) : Type());
  for (size_t i = 0; i < inputs.size(); ++i) {
    type_ptrs.push_back(inputs[i] ? &types[i] : nullptr);
    values.push_back(inputs[i] && inputs[i]->is_tensor() ? &inputs[i]->tensor : nullptr);
  }
  const OpSchema* schema = OpRegistry::instance().find(node.domain, node.op_type);
  if (!schema) return unsupported("{}: kiln has no op '{}'", where(node), node.op_type);
  InferContext ictx(node, type_ptrs, values, {});
  Status st = infer_node(node, *schema, ictx);
  if (!st.is_ok()) return st.with_context(where(node));
  const CpuKernelFn* kernel = CpuKernelRegistry::instance().find(node.domain, node.op_type);
  if (!kernel) return unsupported("{}: the CPU backend has no kernel for {}", where(node), node.op_type);
  NodeRun run(node, std::move(inputs), ictx.output_types(), scope);
  st = (*kernel)(run);
  if (!st.is_ok()) return st.with_context(where(node));
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    if (!node.outputs[i]) continue;
    if (!run.is_set(i)) return internal_error("{}: the kernel did not produce output {}", where(node), i);
    RunValue out = run.take_output(i);
    DType want = ictx.output_types()[i].dtype;
    if (out.is_tensor() && want != DType::kUndefined && out.tensor.dtype() != want)
      return internal_error("{}: the kernel produced {} for output {}, inference says {}", where(node),
                            dtype_name(out.tensor.dtype()), i, dtype_name(want));
    scope.values[node.outputs[i]] = std::move(out);
  }
  return Status::ok();
}

Expected<std::vector<RunValue>> run_node_on_cpu(const Node& node, const std::vector<const RunValue*>& inputs) {
  RunScope scope;
  for (size_t i = 0; i < node.inputs.size() && i < inputs.size(); ++i)
    if (node.inputs[i] && inputs[i]) scope.values[node.inputs[i]] = *inputs[i];
  KILN_RETURN_IF_ERROR(run_node_in_scope(node, scope));
  std::vector<RunValue> outputs;
  for (const Value* v : node.outputs) {
    auto it = v ? scope.values.find(v) : scope.values.end();
    outputs.push_back(it == scope.values.end() ? RunValue() : std::move(it->second));
  }
  return outputs;
}

Expected<std::vector<RunValue>> run_graph_on_cpu(const Graph& graph, std::vector<RunValue> inputs,
                                                 const RunScope* outer, NodeTimeSink* timer) {
  if (inputs.size() != graph.inputs.size())
    return internal_error("graph '{}' takes {} inputs, got {}", graph.name, graph.inputs.size(), inputs.size());
  RunScope scope;
  scope.parent = outer;
  for (size_t i = 0; i < inputs.size(); ++i) scope.values[graph.inputs[i]] = std::move(inputs[i]);

  // The last node reading each value (directly or from its subgraphs), to free it early.
  const auto& nodes = graph.nodes();
  std::vector<std::vector<const Value*>> dies_after(nodes.size());
  {
    std::map<const Value*, size_t> last_use;
    for (size_t k = 0; k < nodes.size(); ++k) {
      std::vector<const Value*> reads;
      collect_node_reads(*nodes[k], reads);
      for (const Value* v : reads)
        if (v->owner == &graph) last_use[v] = k;
    }
    for (const Value* v : graph.outputs) last_use.erase(v);
    for (const auto& [v, k] : last_use) dies_after[k].push_back(v);
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (timer) {
      auto start = std::chrono::steady_clock::now();
      KILN_RETURN_IF_ERROR(run_node_in_scope(*nodes[k], scope));
      for (const Value* v : dies_after[k]) scope.values.erase(v);
      timer->node_time(k, *nodes[k],
                       std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      continue;
    }
    KILN_RETURN_IF_ERROR(run_node_in_scope(*nodes[k], scope));
    for (const Value* v : dies_after[k]) scope.values.erase(v);
  }
  std::vector<RunValue> outputs;
  for (const Value* v : graph.outputs) {
    const RunValue* rv = scope.find(v);
    if (rv) {
      outputs.push_back(*rv);
    } else if (v->constant) {
      outputs.push_back(RunValue::of(*v->constant));
    } else {
      return internal_error("graph output '{}' has no value", v->name);
    }
  }
  return outputs;
}

}  // namespace kiln
