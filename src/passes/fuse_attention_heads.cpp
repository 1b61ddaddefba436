// fuse_attention_heads: the head split and merge around a 4-D Attention (what
// models write between the projections and attention) go into the Attention
// itself, as its 3-D form (q_num_heads, kv_num_heads). The kernels read the
// heads from [B, S, H*D] with strides, so the four Transposes per layer, each
// a copy of the activations, are gone:
//
//   %q4: [B,S,H,D] = Reshape(%q, ...)
//   %qt: [B,H,S,D] = Transpose(%q4) {perm=[0,2,1,3]}      (K and V alike)
//   %y: [B,H,S,D] = Attention(%qt, %kt, %vt, %mask)  ->  %o: [B,S,H*D] = Attention(%q, %k, %v, %mask)
//   %yt: [B,S,H,D] = Transpose(%y) {perm=[0,2,1,3]}             {q_num_heads=H, kv_num_heads=Hkv}
//   %o: [B,S,H*D] = Reshape(%yt, ...)
//
// Only an Attention with just its output Y, no KV cache inputs, and every
// intermediate read only by the pattern; the Reshapes of Q, K and V must split
// exactly the last dim (dims fixed for H and D) and keep B and S. A merge
// Reshape to another shape than [B,S,H*D] stays, reading the 3-D output.
#include <algorithm>
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using pass_util::dims_of;
using pass_util::only_reader_is;
using pass_util::producer_of;
using pass_util::same_dim;

const std::vector<int64_t> kHeadSwap = {0, 2, 1, 3};

// Whether `split` [B,S,H,D] is `whole` [B,S,H*D] with its last dim split (H, D fixed).
bool splits_last_dim(const Dims& whole, const Dims& split) {
  return whole.size() == 3 && split.size() == 4 && same_dim(whole[0], split[0]) && same_dim(whole[1], split[1]) &&
         whole[2].is_fixed() && split[2].is_fixed() && split[3].is_fixed() &&
         whole[2].value == split[2].value * split[3].value;
}

// For Q, K or V of `attention`: the 3-D value x that Transpose(Reshape(x)) made, with
// its head count, and the two nodes; null when the input is not that.
struct HeadSplit {
  Value* whole = nullptr;
  int64_t heads = 0;
  const Node* reshape = nullptr;
  const Node* transpose = nullptr;
};

HeadSplit head_split(const Graph& g, const Node& attention, size_t i) {
  const Value* in = attention.input(i);
  const Node* t = producer_of(in, "Transpose");
  if (!t || pass_util::transpose_perm(*t) != kHeadSwap || !only_reader_is(g, in, &attention)) return {};
  const Node* r = producer_of(t->input(0), "Reshape");
  if (!r || !only_reader_is(g, t->input(0), t)) return {};
  const Dims *whole = dims_of(r->input(0)), *split = dims_of(t->input(0));
  if (!whole || !split || !splits_last_dim(*whole, *split)) return {};
  return {r->inputs[0], (*split)[2].value, r, t};
}

// The merge after `attention`: Y -> Transpose [0,2,1,3] -> Reshape, the
// Reshape to [B,S,H*D] or another shape of the same elements (GPT-2 flattens
// to [B*S,H*D] for its Gemm), which then reads the 3-D output instead.
struct HeadMerge {
  const Node* transpose = nullptr;
  Node* reshape = nullptr;
  Dims merged;  // [B, S, H*D]
};

HeadMerge head_merge(const Graph& g, const Node& attention) {
  const Value* y = attention.output(0);
  auto users = g.users(y);
  if (users.size() != 1 || is_graph_output(g, y)) return {};
  const Node* t = users[0];
  if (t->op_type != "Transpose" || !t->domain.empty() || pass_util::transpose_perm(*t) != kHeadSwap) return {};
  auto after = g.users(t->output(0));
  if (after.size() != 1 || is_graph_output(g, t->output(0))) return {};
  Node* r = after[0];
  if (r->op_type != "Reshape" || !r->domain.empty() || r->input(0) != t->output(0)) return {};
  const Dims* split = dims_of(t->output(0));
  if (!split || split->size() != 4 || !(*split)[2].is_fixed() || !(*split)[3].is_fixed()) return {};
  return {t, r, Dims{(*split)[0], (*split)[1], Dim((*split)[2].value * (*split)[3].value)}};
}

// Whether a Reshape gives the same result from [B,S,H*D] as from [B,S,H,D]:
// true unless a 0 in its shape copies an input dim (allowzero=0), which would
// then be another dim.
bool keeps_meaning_on_3d_input(const Node& reshape) {
  if (reshape.attr_int("allowzero", 0) != 0) return true;
  const Value* shape = reshape.input(1);
  if (!shape || !shape->constant) return false;
  auto values = shape->constant->to_i64_vector();
  return values.is_ok() && std::find(values->begin(), values->end(), 0) == values->end();
}

bool fuse(Graph& g, Node& a, std::set<const Node*>& removed) {
  if (!a.domain.empty() || a.op_type != "Attention" || a.has_attr("q_num_heads")) return false;
  if (a.outputs.empty() || !a.output(0)) return false;
  for (size_t o = 1; o < a.outputs.size(); ++o)
    if (a.output(o)) return false;
  if (a.input(4) || a.input(5)) return false;  // past key / value
  HeadSplit q = head_split(g, a, 0), k = head_split(g, a, 1), v = head_split(g, a, 2);
  if (!q.whole || !k.whole || !v.whole || k.heads != v.heads) return false;
  HeadMerge m = head_merge(g, a);
  if (!m.reshape) return false;
  Value* out = m.reshape->outputs[0];
  const Dims* out_dims = dims_of(out);
  const bool reshape_is_merge = out_dims && out_dims->size() == 3 && same_dim((*out_dims)[0], m.merged[0]) &&
                                same_dim((*out_dims)[1], m.merged[1]) && same_dim((*out_dims)[2], m.merged[2]);
  if (!reshape_is_merge && !keeps_meaning_on_3d_input(*m.reshape)) return false;
  a.inputs[0] = q.whole;
  a.inputs[1] = k.whole;
  a.inputs[2] = v.whole;
  a.attrs["q_num_heads"] = Attribute::of_int(q.heads);
  a.attrs["kv_num_heads"] = Attribute::of_int(k.heads);
  if (!reshape_is_merge) {
    // The Reshape stays, reading the 3-D output (a view of the same bytes).
    out = g.add_value(g.unique_name(a.output(0)->name + ".merged"),
                      Type::tensor(a.output(0)->type.dtype, Shape(m.merged)));
    m.reshape->inputs[0] = out;
  }
  a.outputs[0] = out;
  out->producer = &a;
  out->producer_output = 0;
  for (const Node* n : {q.reshape, q.transpose, k.reshape, k.transpose, v.reshape, v.transpose, m.transpose})
    removed.insert(n);
  if (reshape_is_merge) removed.insert(m.reshape);
  return true;
}

}  // namespace

Status fuse_attention_heads(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  for (const auto& np : graph.nodes()) fuse(graph, *np, removed);
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
