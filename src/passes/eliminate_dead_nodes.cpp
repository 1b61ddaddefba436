// eliminate_dead_nodes: removes nodes none of whose outputs is read by a later
// node (or a subgraph) or returned by the graph, and the values only they made.
//
//   %a: f32[2] = Relu(%x)                     %b: f32[2] = Neg(%x)
//   %b: f32[2] = Neg(%x)            ->        return %b
//   return %b
#include <set>

#include "passes/pass.h"

namespace kiln {
namespace {

void collect_reads(const Graph& g, std::set<const Value*>& live) {
  live.insert(g.outputs.begin(), g.outputs.end());
  for (const auto& n : g.nodes()) {
    live.insert(n->inputs.begin(), n->inputs.end());
    for (const auto& [key, a] : n->attrs) {
      if (a.g) collect_reads(*a.g, live);
      for (const auto& sg : a.graphs) collect_reads(*sg, live);
    }
  }
}

}  // namespace

Status eliminate_dead_nodes(Graph& graph, PassContext&) {
  // Walk backwards: a node is live if something live reads one of its outputs.
  std::set<const Value*> live(graph.outputs.begin(), graph.outputs.end());
  std::set<const Node*> dead;
  const auto& nodes = graph.nodes();
  for (size_t k = nodes.size(); k-- > 0;) {
    const Node& n = *nodes[k];
    bool used = false;
    for (const Value* out : n.outputs) used |= out && live.count(out);
    if (!used) {
      dead.insert(&n);
      continue;
    }
    live.insert(n.inputs.begin(), n.inputs.end());
    for (const auto& [key, a] : n.attrs) {
      if (a.g) collect_reads(*a.g, live);
      for (const auto& sg : a.graphs) collect_reads(*sg, live);
    }
  }
  if (!dead.empty()) graph.erase_nodes_if([&](const Node& n) { return dead.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
