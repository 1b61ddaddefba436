// fold_constants: runs nodes whose inputs are all known on the CPU backend at
// build time and replaces their outputs with constants. Integer values whose
// symbolic contents are fully known (a Shape of a fixed-shape tensor, and the
// shape arithmetic after it) become constants too.
//
//   %w: f32[2] = const f32[2]{1,2}                %w: f32[2] = const f32[2]{1,2}
//   %s: i64[2] = Shape(%x)       # x: f32[2,3]    %s: i64[2] = const i64[2]{2,3}
//   %y: f32[2] = Neg(%w)                    ->    %y: f32[2] = const f32[2]{-1,-2}
//
// Nodes with no inputs (random generators), with subgraphs, or whose result
// would exceed PassContext::max_folded_bytes are left to run time. The nodes
// themselves become dead and eliminate_dead_nodes removes them.
#include <set>

#include "backends/cpu/cpu_executor.h"
#include "passes/pass.h"

namespace kiln {
namespace {

bool has_subgraph(const Node& n) {
  for (const auto& [key, a] : n.attrs)
    if (a.g || !a.graphs.empty()) return true;
  return false;
}

// Materializes a fully fixed shape_value as a constant of the value's int type.
void fold_shape_value(Value& v) {
  if (v.constant || !v.shape_value || !v.type.is_tensor() || !v.type.shape.has_rank()) return;
  for (const Dim& d : *v.shape_value)
    if (!d.is_fixed()) return;
  if (v.type.dtype != DType::kI64 && v.type.dtype != DType::kI32) return;
  std::vector<int64_t> dims = v.type.shape.rank() == 0
                                  ? std::vector<int64_t>{}
                                  : std::vector<int64_t>{static_cast<int64_t>(v.shape_value->size())};
  if (v.type.shape.rank() > 1 || (v.type.shape.rank() == 0 && v.shape_value->size() != 1)) return;
  Tensor t(v.type.dtype, dims);
  for (size_t i = 0; i < v.shape_value->size(); ++i) {
    int64_t x = (*v.shape_value)[i].value;
    if (v.type.dtype == DType::kI64)
      t.mutable_data<int64_t>()[i] = x;
    else
      t.mutable_data<int32_t>()[i] = static_cast<int32_t>(x);
  }
  v.constant = std::make_shared<const Tensor>(std::move(t));
}

bool too_big(const Node& n, size_t limit) {
  for (const Value* out : n.outputs) {
    if (!out || !out->type.is_tensor()) continue;
    auto count = out->type.shape.numel();
    if (count && dtype_storage_bytes(out->type.dtype, *count) > limit) return true;
  }
  return false;
}

}  // namespace

Status fold_constants(Graph& graph, PassContext& ctx) {
  for (const auto& node_ptr : graph.nodes()) {
    Node& n = *node_ptr;
    for (Value* out : n.outputs)
      if (out) fold_shape_value(*out);
    bool all_outputs_known = true;
    for (Value* out : n.outputs) all_outputs_known &= !out || out->constant != nullptr;
    if (all_outputs_known) continue;
    bool any_input = false, inputs_known = true;
    for (Value* in : n.inputs) {
      if (!in) continue;
      any_input = true;
      inputs_known &= in->constant != nullptr;
    }
    if (!any_input || !inputs_known || has_subgraph(n) || too_big(n, ctx.max_folded_bytes)) continue;
    std::vector<RunValue> values;
    values.reserve(n.inputs.size());
    std::vector<const RunValue*> inputs;
    for (Value* in : n.inputs) {
      if (!in) {
        inputs.push_back(nullptr);
        continue;
      }
      values.push_back(RunValue::of(*in->constant));
      inputs.push_back(&values.back());
    }
    auto outputs = run_node_on_cpu(n, inputs);
    if (!outputs) continue;  // the same error will surface at run time, with the inputs given then
    bool fits = true;
    for (const RunValue& o : *outputs) fits &= o.is_tensor() && o.tensor.nbytes() <= ctx.max_folded_bytes;
    if (!fits) continue;
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      Value* out = n.outputs[i];
      if (!out) continue;
      Tensor& t = (*outputs)[i].tensor;
      out->type = Type::tensor(t.dtype(), Shape::of(t.dims()));
      out->constant = std::make_shared<const Tensor>(std::move(t));
    }
  }
  // A node all of whose outputs are now constants has nothing left to do.
  std::set<const Node*> done;
  for (const auto& n : graph.nodes()) {
    bool all_known = true;
    for (const Value* out : n->outputs) all_known &= !out || out->constant != nullptr;
    if (!all_known) continue;
    done.insert(n.get());
    for (Value* out : n->outputs)
      if (out) out->producer = nullptr;
  }
  graph.erase_nodes_if([&](const Node& n) { return done.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
