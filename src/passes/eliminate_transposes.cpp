// eliminate_transposes: a Transpose reading another Transpose reads the first
// one's input with the composed permutation; a Transpose whose permutation is
// the identity (given, or after composing) is dropped.
//
//   %a: f32[3,2] = Transpose(%x) {perm=[1,0]}           %b: f32[2,3] ... (dropped)
//   %b: f32[2,3] = Transpose(%a) {perm=[1,0]}    ->     %c: f32[2,3] = Relu(%x)
//   %c: f32[2,3] = Relu(%b)                              return %c
//   return %c
//
// A Reshape (or Flatten) between the two that only merges runs of adjacent
// axes, each run coming from adjacent axes of the first Transpose's input in
// order, is a Reshape of that input followed by a Transpose: the second
// Transpose then reads a new Reshape of the first one's input, with the
// composed permutation. A patch embedding's NCHW output flattened to tokens:
//
//   %t: f32[N,8,2,3] = Transpose(%x: f32[N,2,3,8]) {perm=[0,3,1,2]}
//   %r: f32[N,8,6] = Reshape(%t, %s)                          ->   %r2: f32[N,6,8] = Reshape(%x, [0,6,8])
//   %u: f32[N,6,8] = Transpose(%r) {perm=[0,2,1]}                  (%u's readers read %r2)
//
// The first Transpose stays while anything else reads it (eliminate_dead_nodes
// removes it otherwise). An identity Transpose whose output is a graph output
// becomes an Identity, so the output's name keeps being produced.
#include <algorithm>
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

// Reshape(x, to) then Transpose(perm): what Reshape(Transpose(x, p)) to `z` is.
struct Commuted {
  Shape to;
  std::vector<int64_t> perm;
};

// `z` is `y` = Transpose(x, p) with runs of adjacent axes merged. When every
// run's axes come from adjacent axes of x in order, z = Transpose(x', p') for
// x' = x with the same runs merged; nullopt otherwise.
std::optional<Commuted> commute_merge(const Shape& x, const std::vector<int64_t>& p, const Shape& z) {
  if (!pass_util::fully_named(x) || !pass_util::fully_named(z) || x.dims->size() != p.size()) return std::nullopt;
  const Shape y = pass_util::permuted_shape(x, p);
  const Dims &yd = *y.dims, &zd = *z.dims;
  std::vector<std::pair<size_t, size_t>> runs;  // [first, last) axes of y, one per axis of z
  size_t a = 0;
  for (const Dim& d : zd) {
    const size_t first = a;
    if (!d.is_fixed()) {  // a symbolic dim stays one axis
      if (a >= yd.size() || !pass_util::same_dim(d, yd[a])) return std::nullopt;
      ++a;
    } else {
      int64_t product = 1;
      do {
        if (a >= yd.size() || !yd[a].is_fixed()) return std::nullopt;
        product *= yd[a++].value;
      } while (product < d.value);
      if (product != d.value) return std::nullopt;
    }
    for (size_t i = first + 1; i < a; ++i)
      if (p[i] != p[first] + static_cast<int64_t>(i - first)) return std::nullopt;
    runs.emplace_back(first, a);
  }
  if (a != yd.size()) return std::nullopt;
  // x' holds the runs in x's order; z's axis i is x' axis c.perm[i].
  std::vector<size_t> order(runs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t l, size_t r) { return p[runs[l].first] < p[runs[r].first]; });
  Commuted c;
  Dims to(zd.size());
  c.perm.resize(zd.size());
  for (size_t r = 0; r < order.size(); ++r) {
    to[r] = zd[order[r]];
    c.perm[order[r]] = static_cast<int64_t>(r);
  }
  c.to = Shape(std::move(to));
  return c;
}

// `t` = Transpose(Reshape(Transpose(x))) as Transpose(Reshape(x)) where the
// Reshape only merges axes (commute_merge); t reads a new Reshape of x.
// The composed permutation, or nullopt when the pattern does not hold.
std::optional<std::vector<int64_t>> compose_through_reshape(Graph& g, Node& t, const std::vector<int64_t>& perm,
                                                            const std::set<const Node*>& removed) {
  Node* r = t.inputs[0] ? t.inputs[0]->producer : nullptr;
  if (!r || !r->domain.empty() || (r->op_type != "Reshape" && r->op_type != "Flatten") || !r->input(0) ||
      removed.count(r))
    return std::nullopt;
  Node* first = pass_util::producer_of(r->inputs[0], "Transpose");
  if (!first || removed.count(first) || !first->input(0)) return std::nullopt;
  auto inner = pass_util::transpose_perm(*first);
  Value* x = first->inputs[0];
  const Shape& z = t.inputs[0]->type.shape;
  if (!inner || !z.has_rank() || z.dims->size() != perm.size() || !x->type.is_tensor()) return std::nullopt;
  std::optional<Commuted> c = commute_merge(x->type.shape, *inner, z);
  if (!c) return std::nullopt;
  std::optional<std::vector<int64_t>> target = pass_util::reshape_target(x->type.shape, c->to);
  if (!target) return std::nullopt;
  Node* reshape = g.add_node("Reshape");
  reshape->name = r->name;
  reshape->inputs = {x, pass_util::add_constant(g, x->name + "_merged_shape", Tensor::vector_i64(*target))};
  Value* merged = g.add_value(g.unique_name(x->name + "_merged"), Type::tensor(x->type.dtype, c->to));
  reshape->outputs = {merged};
  merged->producer = reshape;
  merged->producer_output = 0;
  t.inputs[0] = merged;
  // y[j] = z[perm[j]] = x'[c.perm[perm[j]]]
  std::vector<int64_t> composed(perm.size());
  for (size_t j = 0; j < perm.size(); ++j) composed[j] = c->perm[static_cast<size_t>(perm[j])];
  t.attrs["perm"] = Attribute::of_ints(composed);
  return composed;
}

}  // namespace

Status eliminate_transposes(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  bool added = false;
  // By index: composing through a Reshape appends a new one.
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    Node& t = *graph.nodes()[i];
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
    } else if (auto composed = compose_through_reshape(graph, t, *perm, removed)) {
      perm = composed;
      added = true;
    }
    if (!is_identity(*perm)) continue;
    if (!pass_util::forward(graph, t.outputs[0], t.inputs[0], removed, &t)) {
      t.op_type = "Identity";
      t.attrs.clear();
      t.opset = 0;
    }
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  if (added) pass_util::sort_topologically(graph);
  return Status::ok();
}

}  // namespace kiln
