// eliminate_reshapes: a Reshape, Flatten, Squeeze or Unsqueeze reading the
// output of another of them becomes one Reshape of the first one's input,
// when its output shape can be written as a constant shape (every dim fixed,
// or the same symbol as the input's dim at that index, written 0, or one
// other dim left to -1). A Reshape to its input's own shape goes.
//
//   %a: f32[6] = Flatten(%x) {axis=0}    # x: f32[2,3]     %s: i64[2] = const i64[2]{3,2}
//   %b: f32[1,6] = Unsqueeze(%a, %ax)             ->       %c: f32[3,2] = Reshape(%x, %s)
//   %c: f32[3,2] = Reshape(%b, %shape)                     return %c
//   return %c
//
// The earlier nodes stay while anything else reads them (eliminate_dead_nodes
// removes them otherwise). A Reshape to its own shape whose output is a graph
// output becomes an Identity.
#include <set>

#include "ir/tensor.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

bool is_reshape_like(const Node* n) {
  if (!n || !n->domain.empty()) return false;
  const std::string& op = n->op_type;
  return op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze";
}

bool same_shape(const Shape& a, const Shape& b) { return pass_util::fully_named(a) && a == b; }

}  // namespace

Status eliminate_reshapes(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  for (const auto& np : graph.nodes()) {
    Node& n = *np;
    if (!is_reshape_like(&n) || n.outputs.size() != 1 || !n.outputs[0] || !n.input(0)) continue;
    Value* out = n.outputs[0];
    if (!out->type.is_tensor()) continue;
    // Follow the chain back to its first input (earlier links are already collapsed).
    Value* src = n.inputs[0];
    if (Node* p = src->producer; is_reshape_like(p) && !removed.count(p) && p->input(0)) src = p->inputs[0];
    if (n.op_type == "Reshape" && src == n.inputs[0] && n.attr_int("allowzero", 0) == 0 &&
        same_shape(src->type.shape, out->type.shape)) {
      if (!pass_util::forward(graph, out, src, removed, &n)) {
        n.op_type = "Identity";
        n.inputs.resize(1);
        n.attrs.clear();
        n.opset = 0;
      }
      continue;
    }
    if (src == n.inputs[0]) continue;  // not a chain
    if (same_shape(src->type.shape, out->type.shape) && pass_util::forward(graph, out, src, removed, &n)) continue;
    auto s = pass_util::reshape_target(src->type.shape, out->type.shape);
    if (!s) continue;
    Value* shape = pass_util::add_constant(graph, out->name + "_shape", Tensor::vector_i64(*s));
    n.op_type = "Reshape";
    n.opset = 0;
    n.attrs.clear();
    n.inputs = {src, shape};
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
