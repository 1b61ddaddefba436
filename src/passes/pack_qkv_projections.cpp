// pack_qkv_projections: BERT-style attention projects one activation three
// times (Q, K and V: three GEMMs of N = hidden each, too few tiles to fill a
// large GPU at small batches). Two or more projections of the same A that
// feed one Attention as its Q, K or V become one projection with the weights
// (and biases) concatenated along N, and a Split on the last axis gives back
// the old outputs under their names; fuse_packed_attention then lets the
// Attention read the packed product in place.
//
//   %wq: f32[4,4] = const ...  (and %wk, %wv; biases %bq, %bk, %bv [4])
//   %q: f32[2,3,4] = kiln.FusedMatMul(%x, %wq, %bq)
//   %k: f32[2,3,4] = kiln.FusedMatMul(%x, %wk, %bk)
//   %v: f32[2,3,4] = kiln.FusedMatMul(%x, %wv, %bv)
//   %y: f32[2,3,4] = Attention(%q, %k, %v) {q_num_heads=2, kv_num_heads=2}
// becomes
//   %q.qkv.weight: f32[4,12] = const [%wq | %wk | %wv]
//   %q.qkv.bias: f32[12] = const [%bq | %bk | %bv]
//   %q.qkv: f32[2,3,12] = kiln.FusedMatMul(%x, %q.qkv.weight, %q.qkv.bias)
//   %q, %k, %v: f32[2,3,4] = Split(%q.qkv, [4,4,4]) {axis=2}
//   %y: f32[2,3,4] = Attention(%q, %k, %v) {q_num_heads=2, kv_num_heads=2}
//
// The projections must be of one kind (MatMul, or kiln.FusedMatMul with one
// activation and no residual), with constant 2-D weights of one K and dtype,
// all with a constant 1-D bias or none, and each output read only by the Attention, in
// one of Q, K, V (the packed order follows Attention's inputs). Each output
// column is computed exactly as before (same row of A, same weight column),
// so the values are unchanged. The builder runs it for cuda before
// assign_precision: the concatenated weights are f32 there and are lowered
// to 16 bits once, with the other weights.
#include <cstring>
#include <set>
#include <vector>

#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using pass_util::dims_of;
using pass_util::only_reader_is;
using pass_util::same_dim;

// A FusedMatMul with a residual (input 3) adds more than X's projection: it stays.
bool is_projection(const Node* n) {
  if (!n) return false;
  if (n->domain == "kiln") return n->op_type == "FusedMatMul" && !n->input(3);
  return n->domain.empty() && n->op_type == "MatMul";
}

// A constant of `rank` dims, or null.
const Tensor* constant_of_rank(const Value* v, int64_t rank) {
  return v && v->constant && v->constant->rank() == rank ? v->constant.get() : nullptr;
}

// One projection of a group, and the Attention input slot it feeds.
struct Member {
  Node* mm;
  size_t slot;
};

// Whether `m` can be packed with `first` (both feed the same Attention).
bool compatible(const Node& first, const Node& m) {
  if (m.op_type != first.op_type || m.domain != first.domain || m.input(0) != first.input(0)) return false;
  if (m.attrs.size() != first.attrs.size() || m.attr_string("activation", "") != first.attr_string("activation", ""))
    return false;
  const Tensor *w0 = constant_of_rank(first.input(1), 2), *w = constant_of_rank(m.input(1), 2);
  if (!w0 || !w || w->dtype() != w0->dtype() || w->dim(0) != w0->dim(0)) return false;
  if ((m.input(2) != nullptr) != (first.input(2) != nullptr)) return false;
  if (m.input(2)) {
    const Tensor *b0 = constant_of_rank(first.input(2), 1), *b = constant_of_rank(m.input(2), 1);
    if (!b0 || !b || b->dtype() != b0->dtype() || b->dim(0) != w->dim(1)) return false;
  }
  const Dims *o0 = dims_of(first.output(0)), *o = dims_of(m.output(0));
  if (!o0 || !o || o->size() != o0->size() || o->size() < 2) return false;
  if (m.output(0)->type.dtype != first.output(0)->type.dtype) return false;
  for (size_t i = 0; i + 1 < o->size(); ++i)
    if (!same_dim((*o)[i], (*o0)[i])) return false;
  return o->back().is_fixed() && o->back().value == w->dim(1);
}

// The tensors of `parts` (2-D [K, N_i] or 1-D [N_i]) side by side along their last axis.
Tensor concat_last_axis(const std::vector<const Tensor*>& parts) {
  const Tensor& first = *parts[0];
  const int64_t rows = first.rank() == 2 ? first.dim(0) : 1;
  const size_t elem = first.nbytes() / static_cast<size_t>(first.numel());
  int64_t width = 0;
  for (const Tensor* t : parts) width += t->dim(t->rank() - 1);
  std::vector<int64_t> dims = first.dims();
  dims.back() = width;
  Tensor out(first.dtype(), dims);
  auto* dst = static_cast<std::byte*>(out.mutable_raw());
  int64_t col = 0;
  for (const Tensor* t : parts) {
    const int64_t n = t->dim(t->rank() - 1);
    const auto* src = static_cast<const std::byte*>(t->raw());
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + static_cast<size_t>(r * width + col) * elem, src + static_cast<size_t>(r * n) * elem,
                  static_cast<size_t>(n) * elem);
    col += n;
  }
  return out;
}

// The projections feeding `attn`'s Q, K, V that read one A and pack
// together (the largest such group, in slot order), or fewer than two.
std::vector<Member> packable(const Graph& g, const Node& attn) {
  std::vector<Member> all;
  for (size_t slot = 0; slot < 3 && slot < attn.inputs.size(); ++slot) {
    Value* v = attn.inputs[slot];
    Node* p = v ? v->producer : nullptr;
    if (!is_projection(p) || p->outputs.size() != 1 || !only_reader_is(g, v, &attn)) continue;
    int reads = 0;
    for (const Value* in : attn.inputs) reads += in == v;
    if (reads == 1) all.push_back({p, slot});
  }
  std::vector<Member> best;
  for (const Member& lead : all) {
    std::vector<Member> group;
    for (const Member& m : all)
      if (compatible(*lead.mm, *m.mm)) group.push_back(m);
    if (group.size() > best.size()) best = group;
  }
  return best;
}

void pack(Graph& g, Node& attn, const std::vector<Member>& group) {
  const Node& first = *group[0].mm;
  std::vector<const Tensor*> weights, biases;
  std::vector<int64_t> sizes;
  for (const Member& m : group) {
    weights.push_back(m.mm->input(1)->constant.get());
    if (m.mm->input(2)) biases.push_back(m.mm->input(2)->constant.get());
    sizes.push_back(weights.back()->dim(1));
  }
  Value* out0 = first.output(0);
  const std::string base = out0->name + ".qkv";
  Node* mm = pass_util::insert_node_before(g, &attn, first.op_type);
  mm->domain = first.domain;
  mm->opset = first.opset;
  mm->name = first.name;
  mm->attrs = first.attrs;
  mm->inputs = {first.input(0), pass_util::add_constant(g, base + ".weight", concat_last_axis(weights))};
  if (!biases.empty()) mm->inputs.push_back(pass_util::add_constant(g, base + ".bias", concat_last_axis(biases)));
  Dims dims = *dims_of(out0);
  dims.back() = Dim(mm->inputs[1]->constant->dim(1));
  Value* packed = g.add_value(g.unique_name(base), Type::tensor(out0->type.dtype, Shape(dims)));
  packed->producer = mm;
  packed->producer_output = 0;
  mm->outputs = {packed};

  Node* split = pass_util::insert_node_before(g, &attn, "Split");
  split->attrs["axis"] = Attribute::of_int(static_cast<int64_t>(dims.size()) - 1);
  split->inputs = {packed, pass_util::add_constant(g, packed->name + ".split", Tensor::vector_i64(sizes))};
  for (size_t i = 0; i < group.size(); ++i) {
    Value* v = group[i].mm->output(0);
    v->producer = split;
    v->producer_output = static_cast<int>(i);
    split->outputs.push_back(v);
    group[i].mm->outputs.clear();
  }
}

}  // namespace

Status pack_qkv_projections(Graph& graph, PassContext&) {
  std::vector<std::pair<Node*, std::vector<Member>>> groups;
  for (const auto& np : graph.nodes()) {
    Node& n = *np;
    if (!n.domain.empty() || n.op_type != "Attention") continue;
    std::vector<Member> group = packable(graph, n);
    if (group.size() >= 2) groups.emplace_back(&n, std::move(group));
  }
  std::set<const Node*> removed;
  for (auto& [attn, group] : groups) {
    pack(graph, *attn, group);
    for (const Member& m : group) removed.insert(m.mm);
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
