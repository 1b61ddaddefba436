// fuse_packed_attention: a packed QKV projection (GPT-2's c_attn, ViT's
// in_proj, or pack_qkv_projections' product) is split into Q, K and V only for
// the 3-D Attention to read them: the Split reads and writes the whole QKV
// tensor once per layer. kiln.PackedAttention reads Q, K and V in place, as
// column ranges of the packed rows, so the Split goes.
//
//   %qkv: f16[2,3,12] = kiln.FusedMatMul(%x, %w, %b)
//   %q, %k, %v: f16[2,3,4] = Split(%qkv, [4,4,4]) {axis=2}
//   %y: f16[2,3,4] = Attention(%q, %k, %v, %mask) {q_num_heads=2, kv_num_heads=2, is_causal=1}
// becomes
//   %qkv: f16[2,3,12] = kiln.FusedMatMul(%x, %w, %b)
//   %y: f16[2,3,4] = kiln.PackedAttention(%qkv, %mask) {q_num_heads=2, kv_num_heads=2, is_causal=1}
//
// The Split must be on the last axis of a 3-D tensor with exactly three
// outputs, each read only by the Attention, as its Q, K and V in that order,
// with widths Hq * D, Hkv * D and Hkv * D (one head size D for Q, K and V).
// The Attention may carry a mask and scale, is_causal and softcap, nothing
// else (no KV cache, nonpad_kv_seqlen, windows, softmax_precision or
// optional outputs): that is what the exported transformers use. The builder
// runs it for cuda after assign_precision, which lowers the Split and the
// Attention together, so the pattern is the same in every precision.
#include <set>
#include <utility>
#include <vector>

#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using pass_util::dims_of;
using pass_util::only_reader_is;

// The fixed last dim of `v`, or -1.
int64_t fixed_last(const Value* v) {
  const Dims* d = dims_of(v);
  return d && !d->empty() && d->back().is_fixed() ? d->back().value : -1;
}

bool plain_attention(const Node& a) {
  if (!a.domain.empty() || a.op_type != "Attention" || a.inputs.size() < 3) return false;
  for (size_t i = 4; i < a.inputs.size(); ++i)
    if (a.inputs[i]) return false;
  for (size_t i = 1; i < a.outputs.size(); ++i)
    if (a.outputs[i]) return false;
  for (const auto& [key, attr] : a.attrs)
    if (key != "q_num_heads" && key != "kv_num_heads" && key != "scale" && key != "is_causal" && key != "softcap")
      return false;
  return true;
}

// The Split whose three outputs are `attn`'s Q, K and V, or null.
Node* packed_split(const Graph& g, const Node& attn) {
  if (!plain_attention(attn) || !attn.input(0) || !attn.input(1) || !attn.input(2)) return nullptr;
  Node* split = attn.input(0)->producer;
  if (!split || !split->domain.empty() || split->op_type != "Split" || split->outputs.size() != 3) return nullptr;
  for (size_t i = 0; i < 3; ++i) {
    const Value* v = attn.inputs[i];
    if (v->producer != split || v->producer_output != static_cast<int>(i) || !only_reader_is(g, v, &attn))
      return nullptr;
  }
  if (attn.input(3) && attn.input(3)->producer == split) return nullptr;
  const Dims* x = dims_of(split->input(0));
  const int64_t axis = split->attr_int("axis", 0);
  if (!x || x->size() != 3 || (axis != -1 && axis != 2)) return nullptr;
  const int64_t hq = attn.attr_int("q_num_heads", 0), hkv = attn.attr_int("kv_num_heads", 0);
  const int64_t wq = fixed_last(attn.input(0)), wk = fixed_last(attn.input(1)), wv = fixed_last(attn.input(2));
  if (hq <= 0 || hkv <= 0 || hq % hkv != 0 || wq <= 0 || wq % hq != 0) return nullptr;
  const int64_t d = wq / hq;
  if (wk != hkv * d || wv != hkv * d || fixed_last(split->input(0)) != wq + wk + wv) return nullptr;
  return split;
}

}  // namespace

Status fuse_packed_attention(Graph& graph, PassContext&) {
  std::vector<std::pair<Node*, Node*>> found;  // (Split, Attention)
  for (const auto& np : graph.nodes())
    if (Node* split = packed_split(graph, *np)) found.emplace_back(split, np.get());
  std::set<const Node*> removed;
  for (auto [split, attn] : found) {
    Node* p = pass_util::insert_node_before(graph, attn, "PackedAttention");
    p->domain = "kiln";
    p->opset = 1;
    p->name = attn->name;
    p->attrs = attn->attrs;
    p->inputs = {split->input(0)};
    if (attn->input(3)) p->inputs.push_back(attn->input(3));
    Value* y = attn->output(0);
    y->producer = p;
    y->producer_output = 0;
    p->outputs = {y};
    attn->outputs.clear();
    removed.insert(attn);
    removed.insert(split);
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
