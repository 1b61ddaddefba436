// fuse_multihead_attention: torch.nn.MultiheadAttention as exported (what
// torchvision's ViT runs) works sequence-first and splits its packed Q/K/V
// projection with Reshape/Transpose/Squeeze/Gather, then every head with
// Reshape/Transpose: seven copies of the activations per layer around one
// Attention. This pass runs the same attention batch-first: the projection
// reads X itself, one Split gives Q, K and V, the Attention takes them in its
// 3-D form (q_num_heads), and the output projection reads its rows in the new
// order, so only the Split copies.
//
//   %xt: [S,B,E] = Transpose(%x) {perm=[1,0,2]}            (x: [B,S,E])
//   %p: [S,B,3E] = kiln.FusedMatMul(%xt, %w, %b)
//   %u: [1,S,B,3,E] = Reshape(%p, ...)
//   %t: [3,S,B,1,E] = Transpose(%u) {perm=[3,1,2,0,4]}
//   %q3: [3,S,B,E] = Squeeze(%t, ...)
//   %qi: [S,B,E] = Gather(%q3, i) {axis=0}                  (i = 0, 1, 2: Q, K, V)
//   %qr: [S,B*H,D] = Reshape(%qi, ...)
//   %qt: [B*H,S,D] = Transpose(%qr) {perm=[1,0,2]}
//   %q4: [B,H,S,D] = Reshape(%qt, ...)
//   %y: [B,H,S,D] = Attention(%q4, %k4, %v4, ...)
//   %yt: [S,B,H,D] = Transpose(%y) {perm=[2,0,1,3]}
//   %m: [S*B,E] = Reshape(%yt, ...)
//   %o: [S*B,E2] = Gemm(%m, %wo, ...)                       (or MatMul, FusedMatMul)
//   %n: [S,B,E2] = Reshape(%o, ...)
//   %f: [B,S,E2] = Transpose(%n) {perm=[1,0,2]}
// becomes
//   %p2: [B,S,3E] = kiln.FusedMatMul(%x, %w, %b)
//   %q, %k, %v: [B,S,E] = Split(%p2, [E,E,E]) {axis=2}
//   %y3: [B,S,E] = Attention(%q, %k, %v, ...) {q_num_heads=H, kv_num_heads=H}
//   %m: [B*S,E] = Reshape(%y3, [-1,E])
//   %o: [B*S,E2] = Gemm(%m, %wo, ...)
//   %f: [B,S,E2] = Reshape(%o, [-1,S,E2])
//
// Every intermediate must be read only by the pattern, S fixed, and the
// projections' weights 2-D (they act on rows, in any row order). One
// exception: with a dynamic batch the exporter reads the batch size off the
// transposed X (Shape), for the Reshapes' shape inputs; the Transpose then
// stays for that Shape, and both go as dead code once the Reshapes are gone. The shapes
// decide what each Reshape does, so they are checked, not the shape inputs.
#include <optional>
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using pass_util::dims_of;
using pass_util::only_reader_is;
using pass_util::same_dim;
using pass_util::transpose_perm;

// The default-domain `op` node making `v`, read only by `reader`.
Node* single_use_producer(const Graph& g, const Value* v, const char* op, const Node* reader) {
  Node* n = pass_util::producer_of(v, op);
  return n && only_reader_is(g, v, reader) ? n : nullptr;
}

bool is_perm(const Node* t, const std::vector<int64_t>& perm) { return t && transpose_perm(*t) == perm; }

// A row-wise projection: MatMul or kiln.FusedMatMul with a 2-D B (and no
// residual, whose rows the rewrite would not reorder), or Gemm.
bool is_projection(const Node* n) {
  if (!n || !n->input(1)) return false;
  const Dims* w = dims_of(n->input(1));
  if (!w || w->size() != 2) return false;
  if (n->domain == "kiln") return n->op_type == "FusedMatMul" && !n->input(3);
  return n->domain.empty() && (n->op_type == "MatMul" || n->op_type == "Gemm");
}

std::optional<int64_t> scalar_index(const Value* v) {
  if (!v || !v->constant || v->constant->numel() != 1) return std::nullopt;
  auto values = v->constant->to_i64_vector();
  if (!values.is_ok()) return std::nullopt;
  return (*values)[0] < 0 ? (*values)[0] + 3 : (*values)[0];
}

// The packed projection's chain for one of Q, K, V: the Gather index, the
// Squeeze they share and the nodes of this head split.
struct HeadInput {
  int64_t index = -1;
  Node* squeeze = nullptr;
  std::vector<const Node*> nodes;  // Gather, Reshape, Transpose, Reshape
};

std::optional<HeadInput> head_input(const Graph& g, const Node& attention, size_t i, int64_t heads) {
  const Value* a = attention.input(i);
  Node* r4 = single_use_producer(g, a, "Reshape", &attention);
  if (!r4) return std::nullopt;
  Node* t = single_use_producer(g, r4->input(0), "Transpose", r4);
  if (!is_perm(t, {1, 0, 2})) return std::nullopt;
  Node* rs = single_use_producer(g, t->input(0), "Reshape", t);
  if (!rs) return std::nullopt;
  Node* gather = single_use_producer(g, rs->input(0), "Gather", rs);
  if (!gather || gather->attr_int("axis", 0) != 0) return std::nullopt;
  auto index = scalar_index(gather->input(1));
  Node* squeeze = pass_util::producer_of(gather->input(0), "Squeeze");
  const Dims *d4 = dims_of(a), *sq = dims_of(gather->input(0));
  if (!index || *index < 0 || *index > 2 || !squeeze || !d4 || !sq || d4->size() != 4 || sq->size() != 4)
    return std::nullopt;
  // [B, H, S, D] from [3, S, B, E]: H heads of D = E / H.
  const Dim &h = (*d4)[1], &d = (*d4)[3], &e = (*sq)[3];
  if (!h.is_fixed() || h.value != heads || !d.is_fixed() || !e.is_fixed() || e.value != heads * d.value ||
      !same_dim((*d4)[0], (*sq)[2]) || !same_dim((*d4)[2], (*sq)[1]))
    return std::nullopt;
  return HeadInput{*index, squeeze, {gather, rs, t, r4}};
}

struct Packed {
  Node* projection = nullptr;      // reads X^T, makes P [S, B, 3E]
  Value* x = nullptr;              // [B, S, E_in]
  std::vector<const Node*> nodes;  // the Transpose of X, the Reshape, Transpose and Squeeze of P
};

// Squeeze(Transpose(Reshape(P))) back to the projection of Transpose(X).
std::optional<Packed> packed_projection(const Graph& g, Node* squeeze, const std::set<const Node*>& gathers) {
  const Value* sq_out = squeeze->output(0);
  auto users = g.users(sq_out);
  if (users.size() != 3 || is_graph_output(g, sq_out)) return std::nullopt;
  for (const Node* u : users)
    if (!gathers.count(u)) return std::nullopt;
  Node* t = single_use_producer(g, squeeze->input(0), "Transpose", squeeze);
  if (!is_perm(t, {3, 1, 2, 0, 4})) return std::nullopt;
  Node* u = single_use_producer(g, t->input(0), "Reshape", t);
  if (!u || !u->input(0) || !only_reader_is(g, u->input(0), u)) return std::nullopt;
  Node* proj = u->input(0)->producer;
  if (!is_projection(proj) || proj->op_type == "Gemm") return std::nullopt;
  Node* xt = pass_util::producer_of(proj->input(0), "Transpose");
  if (!is_perm(xt, {1, 0, 2}) || !xt->input(0) || is_graph_output(g, proj->input(0))) return std::nullopt;
  bool only_shape_reads_besides = true;  // every other reader of X^T reads only its shape
  bool sole_reader = true;
  for (const Node* r : g.users(proj->input(0))) {
    if (r == proj) continue;
    sole_reader = false;
    only_shape_reads_besides = only_shape_reads_besides && r->domain.empty() && r->op_type == "Shape";
  }
  if (!only_shape_reads_besides) return std::nullopt;
  const Dims *p = dims_of(proj->output(0)), *x = dims_of(xt->input(0));
  if (!p || !x || p->size() != 3 || x->size() != 3) return std::nullopt;
  Packed packed{proj, xt->inputs[0], {u, t, squeeze}};
  if (sole_reader) packed.nodes.push_back(xt);
  return packed;
}

// After the Attention: Transpose [2,0,1,3], Reshape to [S*B, E], projection,
// Reshape to [S, B, E2], Transpose [1,0,2].
struct OutputSide {
  Node* merge = nullptr;      // the Reshape to [S*B, E]
  Node* unflatten = nullptr;  // the Reshape to [S, B, E2]
  const Node* to_batch_first = nullptr;
  const Node* head_transpose = nullptr;
  int64_t seq = 0, out_features = 0;
};

std::optional<OutputSide> output_side(const Graph& g, const Node& attention) {
  const Value* y = attention.output(0);
  auto users = g.users(y);
  if (users.size() != 1 || is_graph_output(g, y) || !is_perm(users[0], {2, 0, 1, 3})) return std::nullopt;
  const Node* yt = users[0];
  auto next = g.users(yt->output(0));
  if (next.size() != 1 || is_graph_output(g, yt->output(0)) || next[0]->op_type != "Reshape" ||
      !next[0]->domain.empty())
    return std::nullopt;
  Node* merge = next[0];
  const Dims* m = dims_of(merge->output(0));
  if (!m || m->size() != 2) return std::nullopt;
  auto proj_users = g.users(merge->output(0));
  if (proj_users.size() != 1 || is_graph_output(g, merge->output(0)) || !is_projection(proj_users[0]) ||
      proj_users[0]->input(0) != merge->output(0))
    return std::nullopt;
  const Node* proj = proj_users[0];
  if (proj->op_type == "Gemm" && proj->attr_int("transA", 0) != 0) return std::nullopt;
  auto un = g.users(proj->output(0));
  if (un.size() != 1 || is_graph_output(g, proj->output(0)) || un[0]->op_type != "Reshape" || !un[0]->domain.empty())
    return std::nullopt;
  Node* unflatten = un[0];
  auto last = g.users(unflatten->output(0));
  if (last.size() != 1 || is_graph_output(g, unflatten->output(0)) || !is_perm(last[0], {1, 0, 2})) return std::nullopt;
  const Dims *n = dims_of(unflatten->output(0)), *ytd = dims_of(yt->output(0));
  if (!n || n->size() != 3 || !ytd || !(*n)[0].is_fixed() || !(*n)[2].is_fixed() || !same_dim((*n)[0], (*ytd)[0]) ||
      !same_dim((*n)[1], (*ytd)[1]))
    return std::nullopt;
  return OutputSide{merge, unflatten, last[0], yt, (*n)[0].value, (*n)[2].value};
}

bool fuse(Graph& g, Node& a, std::set<const Node*>& removed) {
  if (!a.domain.empty() || a.op_type != "Attention" || a.has_attr("q_num_heads") || a.input(4) || a.input(5))
    return false;
  for (size_t o = 1; o < a.outputs.size(); ++o)
    if (a.output(o)) return false;
  const Dims* y = dims_of(a.output(0));
  if (!y || y->size() != 4 || !(*y)[1].is_fixed()) return false;
  const int64_t heads = (*y)[1].value;
  std::optional<HeadInput> in[3];
  std::set<const Node*> gathers;
  for (size_t i = 0; i < 3; ++i) {
    in[i] = head_input(g, a, i, heads);
    if (!in[i] || in[i]->index != static_cast<int64_t>(i) || in[i]->squeeze != in[0]->squeeze) return false;
    gathers.insert(in[i]->nodes[0]);
  }
  auto packed = packed_projection(g, in[0]->squeeze, gathers);
  auto out = output_side(g, a);
  if (!packed || !out) return false;
  const Dims& p = *dims_of(packed->projection->output(0));  // [S, B, 3E]
  const int64_t e = (*dims_of(in[0]->squeeze->output(0)))[3].value;
  if (!p[2].is_fixed() || p[2].value != 3 * e || !p[0].is_fixed() || p[0].value != out->seq) return false;

  // The projection reads X: P2 [B, S, 3E].
  const Dims& x = *dims_of(packed->x);
  const DType dtype = packed->projection->output(0)->type.dtype;
  Value* p2 = g.add_value(g.unique_name(packed->projection->output(0)->name + ".batch_first"),
                          Type::tensor(dtype, Shape(Dims{x[0], x[1], p[2]})));
  packed->projection->inputs[0] = packed->x;
  packed->projection->outputs[0] = p2;
  p2->producer = packed->projection;
  p2->producer_output = 0;
  // One Split into Q, K, V [B, S, E], made just before the Attention.
  Node* split = pass_util::insert_node_before(g, &a, "Split");
  split->attrs["axis"] = Attribute::of_int(2);
  split->inputs = {p2, pass_util::add_constant(g, p2->name + ".split", Tensor::vector_i64({e, e, e}))};
  const char* names[3] = {".q", ".k", ".v"};
  for (int i = 0; i < 3; ++i) {
    Value* v = g.add_value(g.unique_name(p2->name + names[i]), Type::tensor(dtype, Shape(Dims{x[0], x[1], Dim(e)})));
    v->producer = split;
    v->producer_output = i;
    split->outputs.push_back(v);
    a.inputs[static_cast<size_t>(i)] = v;
  }
  a.attrs["q_num_heads"] = Attribute::of_int(heads);
  a.attrs["kv_num_heads"] = Attribute::of_int(heads);
  Value* y3 = g.add_value(g.unique_name(a.output(0)->name + ".batch_first"),
                          Type::tensor(a.output(0)->type.dtype, Shape(Dims{x[0], x[1], Dim(e)})));
  a.outputs[0] = y3;
  y3->producer = &a;
  y3->producer_output = 0;
  // The output projection's rows in (batch, position) order, then [B, S, E2].
  out->merge->inputs = {y3, pass_util::add_constant(g, y3->name + ".rows", Tensor::vector_i64({-1, e}))};
  out->merge->attrs.clear();
  Value* f = out->to_batch_first->outputs[0];
  out->unflatten->inputs[1] =
      pass_util::add_constant(g, f->name + ".shape", Tensor::vector_i64({-1, out->seq, out->out_features}));
  out->unflatten->attrs.clear();
  out->unflatten->outputs[0] = f;
  f->producer = out->unflatten;
  f->producer_output = 0;
  for (const auto& h : in)
    for (const Node* n : h->nodes) removed.insert(n);
  for (const Node* n : packed->nodes) removed.insert(n);
  removed.insert(out->head_transpose);
  removed.insert(out->to_batch_first);
  return true;
}

}  // namespace

Status fuse_multihead_attention(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  std::vector<Node*> attentions;
  for (const auto& np : graph.nodes())
    if (np->op_type == "Attention") attentions.push_back(np.get());
  for (Node* a : attentions) fuse(graph, *a, removed);
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
