// eliminate_transposes: a Transpose reading another Transpose reads the first
// one's input with the composed permutation; a Transpose whose permutation is
// the identity (given, or after composing) is dropped.
//
//   %a: f32[3,2] = Transpose(%x) {perm=[1,0]}           %b: f32[2,3] ... (dropped)
//   %b: f32[2,3] = Transpose(%a) {perm=[1,0]}    ->     %c: f32[2,3] = Relu(%x)
//   %c: f32[2,3] = Relu(%b)                              return %c
//   return %c
//
// The first Transpose stays while anything else reads it (eliminate_dead_nodes
// removes it otherwise). An identity Transpose whose output is a graph output
// becomes an Identity, so the output's name keeps being produced.
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

bool is_identity(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

}  // namespace

Status eliminate_transposes(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  for (const auto& np : graph.nodes()) {
    Node& t = *np;
    if (!t.domain.empty() || t.op_type != "Transpose" || t.inputs.size() != 1 || t.outputs.size() != 1) continue;
    auto perm = pass_util::transpose_perm(t);
    if (!perm) continue;
    // Nodes are visited in order, so a chain has already been composed into `first`.
    if (Node* first = pass_util::producer_of(t.inputs[0], "Transpose"); first && !removed.count(first)) {
      auto inner = pass_util::transpose_perm(*first);
      if (inner && inner->size() == perm->size() && first->input(0)) {
        // y[j] = a[p2[j]] = x[p1[p2[j]]]
        std::vector<int64_t> composed(perm->size());
        for (size_t j = 0; j < perm->size(); ++j) composed[j] = (*inner)[static_cast<size_t>((*perm)[j])];
        t.inputs[0] = first->inputs[0];
        t.attrs["perm"] = Attribute::of_ints(composed);
        perm = composed;
      }
    }
    if (!is_identity(*perm)) continue;
    if (!pass_util::forward(graph, t.outputs[0], t.inputs[0], removed, &t)) {
      t.op_type = "Identity";
      t.attrs.clear();
      t.opset = 0;
    }
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
