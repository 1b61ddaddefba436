#include "ops/shape_inference.h"

#include <fmt/format.h>

#include "ops/op_schema.h"

namespace kiln {

static Dim merge_dim(const Dim& declared, const Dim& inferred) {
  if (inferred.is_fixed()) return inferred;
  if (declared.is_fixed()) return declared;
  if (inferred.is_symbolic()) return inferred;
  return declared;
}

Type merge_types(const Type& declared, const Type& inferred) {
  if (inferred.kind != declared.kind)
    return inferred.kind == Type::Kind::kTensor && inferred.dtype == DType::kUndefined ? declared : inferred;
  if (inferred.kind != Type::Kind::kTensor) {
    if (!inferred.elem) return declared;
    if (!declared.elem) return inferred;
    Type t = inferred;
    t.elem = std::make_shared<const Type>(merge_types(*declared.elem, *inferred.elem));
    return t;
  }
  Type t;
  t.dtype = inferred.dtype != DType::kUndefined ? inferred.dtype : declared.dtype;
  if (!inferred.shape.has_rank()) {
    t.shape = declared.shape;
  } else if (!declared.shape.has_rank() || declared.shape.rank() != inferred.shape.rank()) {
    t.shape = inferred.shape;
  } else {
    Dims d;
    for (size_t i = 0; i < inferred.shape.dims->size(); ++i)
      d.push_back(merge_dim((*declared.shape.dims)[i], (*inferred.shape.dims)[i]));
    t.shape = Shape(std::move(d));
  }
  return t;
}

// A Loop or Scan body input declared without a dtype (as functions expanded
// into a Loop declare theirs) takes the dtype its value has: the iteration
// number i64 and the cond bool (scalars), a loop-carried, state or scanned value its
// node input's. Only the dtype: a carried value's shape may change.
static void seed_body_input_dtypes(const Node& node) {
  if (!node.domain.empty() || (node.op_type != "Loop" && node.op_type != "Scan")) return;
  const Attribute* a = node.attr("body");
  if (!a || !a->g) return;
  Graph& body = *a->g;
  auto seed = [&](size_t i, DType t) {
    if (i >= body.inputs.size() || t == DType::kUndefined) return;
    Type& declared = body.inputs[i]->type;
    if (declared.is_tensor() && declared.dtype == DType::kUndefined) declared.dtype = t;
  };
  auto dtype_of = [&](size_t i) {
    const Value* v = node.input(i);
    return v && v->type.is_tensor() ? v->type.dtype : DType::kUndefined;
  };
  if (node.op_type == "Loop") {
    seed(0, DType::kI64);
    seed(1, DType::kBool);
    for (size_t i = 0; i < 2 && i < body.inputs.size(); ++i)  // both scalars
      if (!body.inputs[i]->type.shape.has_rank()) body.inputs[i]->type.shape = Shape(Dims{});
    for (size_t k = 2; k < node.inputs.size(); ++k) seed(k, dtype_of(k));
  } else {
    for (size_t k = 0; k < node.inputs.size(); ++k) seed(k, dtype_of(k));
  }
}

void infer_shapes(Graph& graph, std::vector<Diagnostic>& diagnostics, const std::string& path) {
  int64_t index = -1;
  for (const auto& node_ptr : graph.nodes()) {
    Node& node = *node_ptr;
    ++index;
    auto report = [&](Diagnostic::Reason reason, std::string message, std::string hint = {}) {
      Diagnostic d;
      d.reason = reason;
      d.node_name = node.name;
      d.node_index = index;
      d.op_type = node.op_type;
      d.domain = node.domain;
      d.opset = node.opset;
      d.graph = path;
      d.message = std::move(message);
      d.hint = std::move(hint);
      diagnostics.push_back(std::move(d));
    };
    // Bodies first: control-flow infer functions read their subgraphs' output types.
    // Subgraph paths name the node as the importer does: its name, else its op.
    const std::string& label = node.name.empty() ? node.op_type : node.name;
    seed_body_input_dtypes(node);
    for (auto& [key, attr] : node.attrs) {
      if (attr.g) infer_shapes(*attr.g, diagnostics, fmt::format("{}/{}.{}", path, label, key));
      for (size_t k = 0; k < attr.graphs.size(); ++k)
        infer_shapes(*attr.graphs[k], diagnostics, fmt::format("{}/{}.{}[{}]", path, label, key, k));
    }
    const OpSchema* schema = OpRegistry::instance().find(node.domain, node.op_type);
    if (!schema) {
      report(Diagnostic::Reason::kUnsupportedOp,
             fmt::format("kiln has no op '{}' in domain '{}'", node.op_type,
                         node.domain.empty() ? "ai.onnx" : node.domain),
             node.domain.empty() || node.domain == "ai.onnx"
                 ? "kiln does not implement this op; docs/ops.md lists the supported ops"
                 : "kiln has no kernels for this custom domain; export the model without the custom op");
      continue;
    }
    if (node.opset != 0 && node.opset < schema->since_opset) {
      report(Diagnostic::Reason::kUnsupportedOp,
             fmt::format("{} is only supported from opset {}, the model imports opset {}", node.op_type,
                         schema->since_opset, node.opset),
             "re-export the model with a newer opset");
      continue;
    }
    std::vector<const Type*> types;
    std::vector<const Tensor*> values;
    std::vector<const Dims*> shape_values;
    for (Value* v : node.inputs) {
      types.push_back(v ? &v->type : nullptr);
      values.push_back(v && v->constant ? v->constant.get() : nullptr);
      shape_values.push_back(v && v->shape_value ? &*v->shape_value : nullptr);
    }
    InferContext ctx(node, std::move(types), std::move(values), std::move(shape_values));
    Status st = infer_node(node, *schema, ctx);
    if (!st.is_ok()) {
      Diagnostic::Reason reason = Diagnostic::Reason::kInvalidModel;
      if (st.code() == ErrorCode::kUnsupported) reason = Diagnostic::Reason::kUnsupportedAttribute;
      report(reason, st.message());
      continue;
    }
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      Value* out = node.outputs[i];
      if (!out) continue;
      out->type = merge_types(out->type, ctx.output_types()[i]);
      if (ctx.output_shape_values()[i]) out->shape_value = ctx.output_shape_values()[i];
    }
  }
}

}  // namespace kiln
