// Shape and type inference over a whole graph, subgraphs included.
#pragma once

#include <string>
#include <vector>

#include "ir/diagnostic.h"
#include "ir/graph.h"

namespace kiln {

// Runs every node's infer function in order and sets its outputs' types,
// keeping what the model declared where inference knows less. Nodes whose op
// is unknown or whose inference fails get a diagnostic (all of them, not the
// first) and keep their declared types. `path` names the graph in messages.
void infer_shapes(Graph& graph, std::vector<Diagnostic>& diagnostics, const std::string& path = "main");

// The more precise of a declared and an inferred type (dim by dim).
Type merge_types(const Type& declared, const Type& inferred);

}  // namespace kiln
