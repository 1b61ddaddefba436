// Small graph edits shared by passes.
#pragma once

#include "ir/graph.h"

namespace kiln {

// Points every read of `from` (nodes of `graph` and of its subgraphs) at `to`.
// Graph outputs are left alone: an output's name is what users bind to.
void replace_uses(Graph& graph, const Value* from, Value* to);

// Whether `v` is one of the graph's outputs.
bool is_graph_output(const Graph& graph, const Value* v);

// Whether any node of `graph` (or of its subgraphs) reads `v`, or it is an output.
bool is_used(const Graph& graph, const Value* v);

}  // namespace kiln
