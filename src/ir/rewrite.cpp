#include "ir/rewrite.h"

#include <algorithm>

namespace kiln {

void replace_uses(Graph& graph, const Value* from, Value* to) {
  for (const auto& n : graph.nodes()) {
    for (Value*& in : n->inputs)
      if (in == from) in = to;
    for (auto& [key, a] : n->attrs) {
      if (a.g) replace_uses(*a.g, from, to);
      for (auto& g : a.graphs) replace_uses(*g, from, to);
      // A subgraph may return an outer value directly.
      if (a.g)
        for (Value*& o : a.g->outputs)
          if (o == from) o = to;
      for (auto& g : a.graphs)
        for (Value*& o : g->outputs)
          if (o == from) o = to;
    }
  }
}

bool is_graph_output(const Graph& graph, const Value* v) {
  return std::find(graph.outputs.begin(), graph.outputs.end(), v) != graph.outputs.end();
}

bool is_used(const Graph& graph, const Value* v) { return is_graph_output(graph, v) || !graph.users(v).empty(); }

}  // namespace kiln
