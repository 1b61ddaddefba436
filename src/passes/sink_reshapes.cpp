// sink_reshapes: a Reshape read only by a unary elementwise op moves below it,
// which then reads the Reshape's input. An op that works per element gives
// the same values in any shape, so only where the Reshape sits changes: next
// to the op's producer (a MatMul or Gemm whose epilogue can take the
// activation) and next to the following Reshape (eliminate_reshapes merges
// the two, or drops them when they cancel). GPT-2's MLP, before and after
// this pass and eliminate_reshapes:
//
//   %h: f32[B*S,4E] = Gemm(%x, %w1)                  %h: f32[B*S,4E] = Gemm(%x, %w1)
//   %r: f32[B,S,4E] = Reshape(%h, %s1)               %g: f32[B*S,4E] = Gelu(%h)
//   %g: f32[B,S,4E] = Gelu(%r)              ->       %y: f32[B*S,E] = Gemm(%g, %w2)
//   %f: f32[B*S,4E] = Reshape(%g, %s2)
//   %y: f32[B*S,E] = Gemm(%f, %w2)
//
// The op's output keeps its name, now made by the moved Reshape; the op
// writes a new value of the Reshape input's shape.
#include <algorithm>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
Status sink_reshapes(Graph& graph, PassContext&) {
  auto& nodes = graph.mutable_nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node& r = *nodes[i];
    if (!r.domain.empty() || r.op_type != "Reshape" || !r.input(0) || !r.output(0)) continue;
    Value *x = r.inputs[0], *y = r.outputs[0];
    auto users = graph.users(y);
    if (users.size() != 1 || is_graph_output(graph, y) || !pass_util::is_unary_elementwise(*users[0])) continue;
    Node& u = *users[0];
    if (u.input(0) != y || !u.output(0) || !x->type.is_tensor()) continue;
    Value* z = u.outputs[0];
    Value* moved =
        graph.add_value(graph.unique_name(z->name + ".unshaped"), Type::tensor(z->type.dtype, x->type.shape));
    u.inputs[0] = x;
    u.outputs[0] = moved;
    moved->producer = &u;
    moved->producer_output = 0;
    r.inputs[0] = moved;
    r.outputs[0] = z;
    z->producer = &r;
    z->producer_output = 0;
    y->producer = nullptr;
    // u reads only x, made before r; z's readers come after u: swapping the
    // two keeps the order topological. y is no longer read.
    auto at_u = std::find_if(nodes.begin(), nodes.end(), [&](const auto& p) { return p.get() == &u; });
    std::iter_swap(nodes.begin() + static_cast<std::ptrdiff_t>(i), at_u);
  }
  return Status::ok();
}

}  // namespace kiln
