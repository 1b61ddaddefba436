// eliminate_common_subexpressions: a node with the same op, attributes and
// inputs as an earlier one is replaced by it.
//
//   %a: f32[2] = Relu(%x)                     %a: f32[2] = Relu(%x)
//   %b: f32[2] = Relu(%x)           ->        %c: f32[2] = Add(%a, %a)
//   %c: f32[2] = Add(%a, %b)                  return %c
//
// Nodes with subgraphs and random generators are never merged; a duplicate
// whose output is a graph output stays.
#include <fmt/format.h>

#include <map>
#include <set>

#include "ir/printer.h"
#include "ir/rewrite.h"
#include "passes/pass.h"

namespace kiln {
namespace {

bool mergeable(const Node& n) {
  static const std::set<std::string> random_ops = {"RandomNormal",      "RandomUniform", "RandomNormalLike",
                                                   "RandomUniformLike", "Bernoulli",     "Multinomial"};
  if (random_ops.count(n.op_type)) return false;
  for (const auto& [key, a] : n.attrs)
    if (a.g || !a.graphs.empty() || a.kind == Attribute::Kind::kTensor || a.kind == Attribute::Kind::kTensors)
      return false;
  return true;
}

std::string key_of(const Node& n) {
  std::string k = fmt::format("{}|{}|{}|", n.domain, n.op_type, n.outputs.size());
  for (const Value* in : n.inputs) k += fmt::format("{}|", static_cast<const void*>(in));
  for (const auto& [name, a] : n.attrs) k += name + "=" + print_attribute(a) + "|";
  return k;
}

}  // namespace

Status eliminate_common_subexpressions(Graph& graph, PassContext&) {
  std::map<std::string, Node*> seen;
  std::set<const Node*> removed;
  for (const auto& n : graph.nodes()) {
    if (!mergeable(*n)) continue;
    auto [it, inserted] = seen.emplace(key_of(*n), n.get());
    if (inserted) continue;
    Node* original = it->second;
    bool keeps_output = false;
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      const Value* out = n->outputs[i];
      keeps_output |= out && (is_graph_output(graph, out) || !original->outputs[i]);
    }
    if (keeps_output) continue;
    for (size_t i = 0; i < n->outputs.size(); ++i)
      if (n->outputs[i]) replace_uses(graph, n->outputs[i], original->outputs[i]);
    removed.insert(n.get());
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
