// The stable textual form of a graph, used by `kiln inspect --graph` and by
// pass tests (expected IR as text). One line per value or node:
//
//   graph main(%x: f32[batch,3]) {
//     %w: f32[3,4] = const
//     %y: f32[batch,4] = MatMul(%x, %w)
//     %z: f32[batch,4] = Relu(%y)
//     return %z
//   }
#pragma once

#include <string>

#include "ir/graph.h"

namespace kiln {

std::string print_graph(const Graph& graph, int indent = 0);
std::string print_node(const Node& node);
std::string print_attribute(const Attribute& a);

}  // namespace kiln
