// eliminate_identity: Identity nodes forward their input; readers of the
// output read the input instead. An Identity whose output is a graph output
// stays (the output's name is what users bind to).
//
//   %y: f32[2] = Identity(%x)                 %z: f32[2] = Relu(%x)
//   %z: f32[2] = Relu(%y)           ->        return %z
//   return %z
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"

namespace kiln {

Status eliminate_identity(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  for (const auto& n : graph.nodes()) {
    if (!n->domain.empty() || n->op_type != "Identity" || n->inputs.size() != 1 || !n->inputs[0]) continue;
    Value* out = n->outputs.empty() ? nullptr : n->outputs[0];
    if (!out || is_graph_output(graph, out)) continue;
    replace_uses(graph, out, n->inputs[0]);
    removed.insert(n.get());
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
