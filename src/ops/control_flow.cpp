// Control flow: If, Loop and Scan. Their bodies are graph attributes whose
// types shape inference has already worked out (bodies are inferred before the
// node), so these infer functions read the bodies' output types.
#include <fmt/format.h>

#include "ops/infer_util.h"
#include "ops/type_unify.h"

namespace kiln {
namespace {

Expected<const Graph*> body_attr(const InferContext& ctx, const char* key) {
  const Attribute* a = ctx.node().attr(key);
  if (!a || !a->g) return invalid_model("{}: attribute '{}' (a graph) is missing", ctx.node().op_type, key);
  return a->g.get();
}

Status infer_if(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Graph* then_g, body_attr(ctx, "then_branch"));
  KILN_ASSIGN_OR_RETURN(const Graph* else_g, body_attr(ctx, "else_branch"));
  if (then_g->outputs.size() != ctx.num_outputs() || else_g->outputs.size() != ctx.num_outputs())
    return invalid_model("If: the branches have {} and {} outputs, the node has {}", then_g->outputs.size(),
                         else_g->outputs.size(), ctx.num_outputs());
  const Tensor* cond = ctx.input_value(0);
  if (cond && cond->numel() != 1) return invalid_model("If: cond has {} elements, must have one", cond->numel());
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    if (cond) {
      bool take_then = cond->element_as_double(0) != 0;
      ctx.set_output(i, (take_then ? then_g : else_g)->outputs[i]->type);
    } else {
      ctx.set_output(i, unify_types(then_g->outputs[i]->type, else_g->outputs[i]->type));
    }
  }
  return Status::ok();
}

// A scan output's type: the per-iteration type with `count` inserted at `axis`.
Expected<Type> stacked_type(const Type& per_iteration, const Dim& count, int64_t axis, const char* op) {
  if (!per_iteration.is_tensor()) return invalid_model("{}: a scan output must be a tensor", op);
  if (!per_iteration.shape.has_rank()) return Type::tensor(per_iteration.dtype, Shape());
  Dims d = *per_iteration.shape.dims;
  KILN_ASSIGN_OR_RETURN(int64_t a, normalize_axis(axis, static_cast<int64_t>(d.size()) + 1, "scan output axis"));
  d.insert(d.begin() + a, count);
  return Type::tensor(per_iteration.dtype, Shape(std::move(d)));
}

Status infer_loop(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Graph* body, body_attr(ctx, "body"));
  size_t n_carried = ctx.num_inputs() > 2 ? ctx.num_inputs() - 2 : 0;
  if (ctx.num_outputs() < n_carried)
    return invalid_model("Loop has {} loop-carried values but only {} outputs", n_carried, ctx.num_outputs());
  size_t n_scan = ctx.num_outputs() - n_carried;
  if (body->inputs.size() != n_carried + 2 || body->outputs.size() != 1 + n_carried + n_scan)
    return invalid_model(
        "Loop: the body has {} inputs and {} outputs; with {} loop-carried values and {} scan "
        "outputs it must have {} and {}",
        body->inputs.size(), body->outputs.size(), n_carried, n_scan, n_carried + 2, 1 + n_carried + n_scan);
  for (size_t i = 0; i < n_carried; ++i) {
    const Type& in = ctx.input_type(2 + i);
    const Type& out = body->outputs[1 + i]->type;
    ctx.set_output(i, in == out ? in : unify_types(in, out));
  }
  // The trip count is known only when M is and no condition can end the loop early.
  Dim trips = ctx.new_symbol("iterations");
  if (auto m = ctx.input_ints(0); m && m->size() == 1 && !ctx.has_input(1)) trips = Dim(std::max<int64_t>((*m)[0], 0));
  for (size_t k = 0; k < n_scan; ++k) {
    KILN_ASSIGN_OR_RETURN(Type t, stacked_type(body->outputs[1 + n_carried + k]->type, trips, 0, "Loop"));
    ctx.set_output(n_carried + k, std::move(t));
  }
  return Status::ok();
}

struct ScanLayout {
  size_t n_state = 0, n_scan_in = 0, n_scan_out = 0;
  std::vector<int64_t> in_axes, out_axes;
};

Expected<ScanLayout> scan_layout(const InferContext& ctx, const Graph& body) {
  ScanLayout l;
  int64_t m = ctx.attr_int("num_scan_inputs", -1);
  if (m < 1 || static_cast<size_t>(m) > ctx.num_inputs())
    return invalid_model("Scan: num_scan_inputs {} must be in [1, {}]", m, ctx.num_inputs());
  l.n_scan_in = static_cast<size_t>(m);
  l.n_state = ctx.num_inputs() - l.n_scan_in;
  if (ctx.num_outputs() < l.n_state)
    return invalid_model("Scan has {} states but {} outputs", l.n_state, ctx.num_outputs());
  l.n_scan_out = ctx.num_outputs() - l.n_state;
  if (body.inputs.size() != l.n_state + l.n_scan_in || body.outputs.size() != l.n_state + l.n_scan_out)
    return invalid_model("Scan: the body has {} inputs and {} outputs, the node needs {} and {}", body.inputs.size(),
                         body.outputs.size(), l.n_state + l.n_scan_in, l.n_state + l.n_scan_out);
  l.in_axes = ctx.attr_ints("scan_input_axes", std::vector<int64_t>(l.n_scan_in, 0));
  l.out_axes = ctx.attr_ints("scan_output_axes", std::vector<int64_t>(l.n_scan_out, 0));
  if (l.in_axes.size() != l.n_scan_in || l.out_axes.size() != l.n_scan_out)
    return invalid_model("Scan: scan_input_axes has {} entries and scan_output_axes {}, expected {} and {}",
                         l.in_axes.size(), l.out_axes.size(), l.n_scan_in, l.n_scan_out);
  for (const char* key : {"scan_input_directions", "scan_output_directions"}) {
    size_t want = key[5] == 'i' ? l.n_scan_in : l.n_scan_out;
    auto dirs = ctx.attr_ints(key, std::vector<int64_t>(want, 0));
    if (dirs.size() != want) return invalid_model("Scan: {} has {} entries, expected {}", key, dirs.size(), want);
    for (int64_t d : dirs)
      if (d != 0 && d != 1) return invalid_model("Scan: {} holds {}, must be 0 or 1", key, d);
  }
  return l;
}

Status infer_scan(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Graph* body, body_attr(ctx, "body"));
  KILN_ASSIGN_OR_RETURN(ScanLayout l, scan_layout(ctx, *body));
  for (size_t i = 0; i < l.n_state; ++i) {
    const Type& in = ctx.input_type(i);
    const Type& out = body->outputs[i]->type;
    ctx.set_output(i, in == out ? in : unify_types(in, out));
  }
  Dim steps = Dim::unknown();
  const Shape& first = ctx.input_shape(l.n_state);
  if (first.has_rank()) {
    KILN_ASSIGN_OR_RETURN(int64_t a, normalize_axis(l.in_axes[0], first.rank(), "scan_input_axes"));
    steps = first[static_cast<size_t>(a)];
  }
  for (size_t k = 0; k < l.n_scan_out; ++k) {
    KILN_ASSIGN_OR_RETURN(Type t, stacked_type(body->outputs[l.n_state + k]->type, steps, l.out_axes[k], "Scan"));
    ctx.set_output(l.n_state + k, std::move(t));
  }
  return Status::ok();
}

// The per-batch-element type of a Scan-8 input: its type without dim 0.
Type without_batch_dim(const Type& t) {
  if (!t.is_tensor() || !t.shape.has_rank() || t.shape.rank() == 0) return Type::tensor(t.dtype, Shape());
  Dims d(t.shape.dims->begin() + 1, t.shape.dims->end());
  return Type::tensor(t.dtype, Shape(std::move(d)));
}

// Scan-8 ran its body over a leading batch dim of every input and output.
// Scan-9 has none, so the batch becomes an outer Scan over dim 0 whose body
// is a Scan-9 over the sequence (dim 0 of each per-batch slice):
//   outer Scan (all inputs scanned on axis 0) { inner Scan (states, scan inputs) { body } }
Status upgrade_scan8(UpgradeContext& ctx) {
  Node& node = ctx.node();
  if (node.inputs.empty()) return invalid_model("Scan-8 takes sequence_lens and at least one input");
  if (node.inputs[0]) return unsupported("Scan-8 with a sequence_lens input is not supported");
  const Attribute* body_a = node.attr("body");
  if (!body_a || !body_a->g) return invalid_model("Scan: attribute 'body' (a graph) is missing");
  std::shared_ptr<Graph> body = body_a->g;
  node.inputs.erase(node.inputs.begin());
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (!node.inputs[i]) return invalid_model("Scan-8: input {} is empty; only sequence_lens may be omitted", i + 1);

  auto mid = std::make_shared<Graph>();
  mid->parent = &ctx.graph();
  mid->name = node.name + ".scan8_batch";
  body->parent = mid.get();
  Node* inner = mid->add_node("Scan");
  inner->name = mid->unique_name(node.name + ".scan8_inner");
  inner->opset = 9;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    Value* v = mid->add_value(mid->unique_name(fmt::format("{}.scan8_in{}", node.name, i)),
                              without_batch_dim(node.inputs[i]->type));
    mid->inputs.push_back(v);
    inner->inputs.push_back(v);
  }
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    Value* v = mid->add_value(mid->unique_name(fmt::format("{}.scan8_out{}", node.name, i)),
                              node.outputs[i] ? without_batch_dim(node.outputs[i]->type) : Type());
    v->producer = inner;
    v->producer_output = static_cast<int>(i);
    inner->outputs.push_back(v);
    mid->outputs.push_back(v);
  }
  inner->attrs["body"] = *body_a;
  inner->attrs["num_scan_inputs"] = Attribute::of_int(node.attr_int("num_scan_inputs", 0));
  if (node.has_attr("directions")) inner->attrs["scan_input_directions"] = *node.attr("directions");

  node.attrs.clear();
  Attribute g;
  g.kind = Attribute::Kind::kGraph;
  g.g = std::move(mid);
  node.attrs["body"] = std::move(g);
  node.attrs["num_scan_inputs"] = Attribute::of_int(static_cast<int64_t>(node.inputs.size()));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.name = "If",
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .min_outputs = 1,
                          .max_outputs = -1,
                          .infer = infer_if,
                          .summary = "runs then_branch or else_branch"});
  OpRegistration(OpSchema{.name = "Loop",
                          .min_inputs = 0,
                          .max_inputs = -1,
                          .min_outputs = 0,
                          .max_outputs = -1,
                          .infer = infer_loop,
                          .summary = "runs body while i < M and cond"});
  OpRegistration(OpSchema{.name = "Scan",
                          .since_opset = 8,
                          .min_inputs = 1,
                          .max_inputs = -1,
                          .min_outputs = 0,
                          .max_outputs = -1,
                          .infer = infer_scan,
                          .upgrades = {{9, upgrade_scan8}},
                          .summary = "runs body over slices of its scan inputs"});
  return true;
}();

}  // namespace
}  // namespace kiln
