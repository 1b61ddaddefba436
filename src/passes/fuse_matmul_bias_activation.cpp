// fuse_matmul_bias_activation and fuse_matmul_residual, two passes over one
// chain matcher: a product, the elementwise ops after it, one
// kiln.FusedMatMul that cuBLASLt runs with them in its epilogue instead of
// re-reading and re-writing the whole product once per elementwise op.
//
// fuse_matmul_bias_activation: a MatMul with a 2-D B, followed by an Add of a
// constant bias over the last axis and/or a Relu or Gelu, becomes one
// kiln.FusedMatMul. Gemm(A, B, C?) with alpha = beta = 1, no transA and a 1-D
// constant C (or none), with or without a Relu or Gelu after it, becomes the
// same node (a transB constant B is transposed once here): its bias was an
// epilogue already, but FusedMatMul's cuBLASLt algorithms are timed by the
// builder where Gemm runs the heuristic's first (ViT-B/16's attention output
// projection, a Linear without activation: 0.0315 ms a layer on the H100).
//
//   %w: f32[4,3] = const ...                     %w: f32[4,3] = const ...
//   %b: f32[1,3] = const ...                     %b_1d: f32[3] = const ...
//   %m: f32[2,5,3] = MatMul(%x, %w)       ->     %y: f32[2,5,3] = kiln.FusedMatMul(%x, %w, %b_1d)
//   %s: f32[2,5,3] = Add(%m, %b)                      {activation="Gelu"}
//   %y: f32[2,5,3] = Gelu(%s)                    return %y
//   return %y
//
// fuse_matmul_residual (later: after fuse_multihead_attention, whose one
// Reshape replaces the attention output's Transposes): a kiln.FusedMatMul
// without activation or residual (or a MatMul with a 2-D B), followed by an
// Add of a residual, becomes one with the residual (cuBLASLt's C, beta = 1), and a Relu or Gelu after the
// Add fuses too: act(A B + bias + residual). Pre-LN transformers' projections
// then write the residual stream's sum, and the LayerNormalization after it
// reads it alone, where a SkipLayerNormalization read the product and the
// residual and wrote the sum and the norm. A sum that only a
// LayerNormalization reads (post-LN) is left to SkipLayerNormalization. The residual has exactly the dtype
// and the fixed or symbolic shape of the value it is added to (no
// broadcasting). An activation before the Add (act(A B) + r) is another
// function and stays unfused. A Reshape between the product and the Add
// (GPT-2's [B*S, E] projections read back as [B, S, E]) is carried across the
// Add, which is elementwise and so commutes with it: the residual is reshaped
// to the product's shape (a view on cuda) and the output reshaped as before:
//
//   %m: f32[6,3] = kiln.FusedMatMul(%x, %w)      %r_rows: f32[6,3] = Reshape(%r, [-1,3])
//   %v: f32[2,3,3] = Reshape(%m, %shape)   ->    %m: f32[6,3] = kiln.FusedMatMul(%x, %w, _, %r_rows)
//   %s: f32[2,3,3] = Add(%v, %r)                 %s: f32[2,3,3] = Reshape(%m, %shape)
//
// Each step is taken only when the previous value has that node as its only
// reader and is no graph output, so no intermediate anyone sees disappears.
// Only f32, f16 and bf16 are fused (the dtypes of the CUDA kernel); the last
// value of the chain keeps its name. Without a residual the product's node
// becomes the FusedMatMul, in its place; with one, the chain's last node does
// (a residual may be computed after the product), so the order stays
// topological.
#include <set>

#include "ir/dtype.h"
#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

bool fusable_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

bool is_op(const Node* n, const char* op) { return n && n->domain.empty() && n->op_type == op; }

// The fixed last dim of a value's shape, or -1.
int64_t fixed_last_dim(const Value* v) {
  const Shape& s = v->type.shape;
  if (!s.has_rank() || s.rank() == 0 || !s[s.rank() - 1].is_fixed()) return -1;
  return s[s.rank() - 1].value;
}

// The one node reading `v` once, when nothing else (no graph output) reads it.
Node* sole_reader(const Graph& g, const Value* v) {
  std::vector<Node*> users = g.users(v);
  if (users.size() != 1 || !pass_util::only_reader_is(g, v, users[0])) return nullptr;
  return users[0];
}

// Whether `a` and `b` are tensors of one dtype and one shape, every dim fixed or symbolic.
bool same_tensor_type(const Value* a, const Value* b) {
  return a && b && a->type.is_tensor() && b->type.is_tensor() && a->type.dtype == b->type.dtype &&
         pass_util::fully_named(a->type.shape) && a->type.shape == b->type.shape;
}

// `c` as a 1-D bias of n elements for an output of rank `out_rank`: a
// constant of c's own dtype, [n] or [1, ..., 1, n] no longer than the output
// (so adding it broadcasts over rows only). Null when it is not one.
Value* bias_of(Graph& g, Value* c, int64_t n, int64_t out_rank, DType dtype) {
  if (!c || !c->constant || n < 1) return nullptr;
  const Tensor& t = *c->constant;
  if (t.dtype() != dtype || t.rank() < 1 || t.rank() > out_rank || t.numel() != n || t.dims().back() != n)
    return nullptr;
  if (t.rank() == 1) return c;
  return pass_util::add_constant(g, c->name + "_1d", t.reshaped({n}));
}

// A product and what follows it into one FusedMatMul.
struct Chain {
  Node* product = nullptr;  // MatMul, Gemm, or a FusedMatMul without residual or activation
  Value *a = nullptr, *b = nullptr, *bias = nullptr;
  Value* value = nullptr;               // what the FusedMatMul computes: the product's shape
  Value* residual = nullptr;            // the residual Add's other operand
  Node* reshape = nullptr;              // a Reshape between `value` and the residual Add
  std::vector<int64_t> residual_shape;  // with `reshape`: the residual as `value`'s shape
  const char* activation = nullptr;
  std::vector<Node*> links;  // the nodes after the product, in order
  std::string fused;         // the fused ops, for `kiln inspect`

  Value* out() const { return links.empty() ? value : links.back()->outputs[0]; }
};

// Appends `n`, whose output is the chain's new last value, to the chain.
void take(Chain& c, Node* n, const char* op) {
  c.links.push_back(n);
  c.fused += std::string("+") + op;
}

// The Add(bias) reading the product, if its other operand is a row bias.
void match_bias(Graph& g, Chain& c, const std::set<const Node*>& taken) {
  Node* add = sole_reader(g, c.value);
  if (!is_op(add, "Add") || taken.count(add) || add->outputs.size() != 1 || !add->outputs[0] ||
      add->outputs[0]->type.dtype != c.value->type.dtype)
    return;
  Value* other = add->input(0) == c.value ? add->input(1) : add->input(0);
  c.bias = bias_of(g, other, fixed_last_dim(c.b), c.value->type.shape.rank(), c.value->type.dtype);
  if (!c.bias) return;
  take(c, add, "Add");
  c.value = add->outputs[0];
}

// The [Reshape ->] Add(residual) reading the chain's value.
void match_residual(const Graph& g, Chain& c, const std::set<const Node*>& taken) {
  Value* at = c.value;
  Node* next = sole_reader(g, at);
  Node* reshape = nullptr;
  if (is_op(next, "Reshape") && !taken.count(next) && next->input(0) == at && next->input(1) &&
      next->outputs.size() == 1) {
    reshape = next;
    at = reshape->outputs[0];
    next = at ? sole_reader(g, at) : nullptr;
  }
  if (!is_op(next, "Add") || taken.count(next) || next->outputs.size() != 1) return;
  Value* r = next->input(0) == at ? next->input(1) : next->input(0);
  // The residual must come from outside the chain: not the product, the bias sum or the Reshape.
  if (!r || r == at || r == c.value || r == c.product->outputs[0]) return;
  if (!same_tensor_type(r, at) || !same_tensor_type(next->outputs[0], at)) return;
  // A sum only a LayerNormalization reads (post-LN, BERT's) stays for
  // SkipLayerNormalization, which reads the product and the residual once and
  // writes the norm alone: three tensors, as many as C's read and a plain
  // LayerNorm's read and write, without C's cost in the GEMM.
  Node* norm = sole_reader(g, next->outputs[0]);
  if (is_op(norm, "LayerNormalization")) return;
  if (reshape) {
    if (!pass_util::fully_named(c.value->type.shape)) return;
    auto target = pass_util::reshape_target(r->type.shape, c.value->type.shape);
    if (!target) return;
    c.residual_shape = *target;
    c.reshape = reshape;
    c.links.push_back(reshape);  // not fused: it stays, after the FusedMatMul
  }
  c.residual = r;
  take(c, next, "Add");
}

// The Relu or Gelu that is the only reader of the chain's last value.
void match_activation(const Graph& g, Chain& c, const std::set<const Node*>& taken) {
  Value* v = c.out();
  Node* act = sole_reader(g, v);
  if (!act || !act->domain.empty() || taken.count(act) || act->outputs.size() != 1 || !act->outputs[0] ||
      act->outputs[0]->type.dtype != v->type.dtype)
    return;
  if (act->op_type == "Relu") {
    c.activation = "Relu";
  } else if (act->op_type == "Gelu") {
    const std::string approximate = act->attr_string("approximate", "none");
    if (approximate == "none") c.activation = "Gelu";
    if (approximate == "tanh") c.activation = "GeluTanh";
  }
  if (c.activation) take(c, act, act->op_type.c_str());
}

// MatMul(A, B 2-D) [-> Add(bias)] [-> Relu | Gelu].
std::optional<Chain> match_matmul(Graph& g, Node& mm, const std::set<const Node*>& taken) {
  Value *a = mm.input(0), *b = mm.input(1), *y = mm.output(0);
  if (!a || !b || !y || !b->type.shape.has_rank() || b->type.shape.rank() != 2 || !y->type.shape.has_rank() ||
      !fusable_dtype(y->type.dtype))
    return std::nullopt;
  Chain c{.product = &mm, .a = a, .b = b, .value = y, .fused = "MatMul"};
  match_bias(g, c, taken);
  match_activation(g, c, taken);
  if (c.links.empty()) return std::nullopt;
  return c;
}

// Gemm(A, B, C 1-D?) {alpha=1, beta=1, transA=0} [-> Relu | Gelu].
std::optional<Chain> match_gemm(Graph& g, Node& gemm, const std::set<const Node*>& taken) {
  Value *a = gemm.input(0), *b = gemm.input(1), *y = gemm.output(0);
  if (!a || !b || !y || !fusable_dtype(y->type.dtype) || gemm.attr_int("transA", 0) != 0 ||
      gemm.attr_float("alpha", 1.0f) != 1.0f || !b->type.shape.has_rank() || b->type.shape.rank() != 2)
    return std::nullopt;
  const bool trans_b = gemm.attr_int("transB", 0) != 0;
  if (trans_b && (!b->constant || b->constant->rank() != 2)) return std::nullopt;
  Chain c{.product = &gemm, .a = a, .b = b, .value = y, .fused = "Gemm"};
  if (Value* bias = gemm.input(2)) {
    if (gemm.attr_float("beta", 1.0f) != 1.0f) return std::nullopt;
    const int64_t n = trans_b ? b->constant->dim(0) : fixed_last_dim(b);
    c.bias = bias_of(g, bias, n, 2, y->type.dtype);
    if (!c.bias) return std::nullopt;
  }
  if (trans_b) c.b = pass_util::add_constant(g, b->name + "_t", b->constant->transposed({1, 0}));
  // A Gemm becomes a FusedMatMul even alone: its algorithms are then timed.
  match_activation(g, c, taken);
  return c;
}

// The residual and activation steps after a product; nullopt without a residual.
std::optional<Chain> with_residual(const Graph& g, Chain c, const std::set<const Node*>& taken) {
  match_residual(g, c, taken);
  if (!c.residual) return std::nullopt;
  match_activation(g, c, taken);
  return c;
}

// MatMul(A, B 2-D) -> [Reshape ->] Add(residual) [-> Relu | Gelu]: a product
// without bias, which fuse_matmul_bias_activation left alone.
std::optional<Chain> match_matmul_residual(const Graph& g, Node& mm, const std::set<const Node*>& taken) {
  Value *a = mm.input(0), *b = mm.input(1), *y = mm.output(0);
  if (!a || !b || !y || !b->type.shape.has_rank() || b->type.shape.rank() != 2 || !y->type.shape.has_rank() ||
      !fusable_dtype(y->type.dtype))
    return std::nullopt;
  return with_residual(g, Chain{.product = &mm, .a = a, .b = b, .value = y, .fused = "MatMul"}, taken);
}

// kiln.FusedMatMul(A, B, bias?) {activation=""} -> [Reshape ->] Add(residual) [-> Relu | Gelu].
std::optional<Chain> match_fused(const Graph& g, Node& f, const std::set<const Node*>& taken) {
  Value* y = f.output(0);
  if (f.input(3) || f.attr_string("activation", "") != "" || !f.input(0) || !f.input(1) || !y ||
      !fusable_dtype(y->type.dtype))
    return std::nullopt;
  auto fused = f.metadata.find("kiln.fused");
  Chain c{.product = &f,
          .a = f.input(0),
          .b = f.input(1),
          .bias = f.input(2),
          .value = y,
          .fused = fused != f.metadata.end() ? fused->second : "MatMul"};
  return with_residual(g, std::move(c), taken);
}

// Makes `n` kiln.FusedMatMul(a, b, bias?, residual?) {activation} producing `out`.
void make_fused(Node& n, const Chain& c, Value* residual, Value* out) {
  n.domain = "kiln";
  n.op_type = "FusedMatMul";
  n.opset = 1;
  n.name = c.product->name;
  n.attrs.clear();
  n.attrs["activation"] = Attribute::of_string(c.activation ? c.activation : "");
  n.inputs = {c.a, c.b, c.bias, residual};
  while (!n.inputs.back()) n.inputs.pop_back();
  n.outputs = {out};
  n.metadata["kiln.fused"] = c.fused;  // what `kiln inspect` shows as the layer's fused ops
  out->producer = &n;
  out->producer_output = 0;
}

// Rewrites the chain; returns the nodes that go.
std::vector<Node*> rewrite(Graph& g, Chain& c) {
  Node* last = c.links.empty() ? c.product : c.links.back();
  std::vector<Node*> gone;
  if (!c.residual) {  // every operand is there before the product: it becomes the layer
    make_fused(*c.product, c, nullptr, c.out());
    return c.links;
  }
  gone.push_back(c.product);
  for (Node* n : c.links)
    if (n != last) gone.push_back(n);
  if (!c.reshape) {
    make_fused(*last, c, c.residual, c.out());
    return gone;
  }
  // The residual as the product's shape, the product, then the Reshape the
  // chain had, producing its last value; all where its last node was.
  Value* shape = pass_util::add_constant(g, c.residual->name + "_shape", Tensor::vector_i64(c.residual_shape));
  Value* rows = g.add_value(g.unique_name(c.residual->name + "_rows"), c.value->type);
  Node* view = pass_util::insert_node_before(g, last, "Reshape");
  view->inputs = {c.residual, shape};
  view->outputs = {rows};
  rows->producer = view;
  rows->producer_output = 0;
  make_fused(*pass_util::insert_node_before(g, last, "FusedMatMul"), c, rows, c.value);
  Value* out = c.out();
  last->domain.clear();
  last->op_type = "Reshape";
  last->opset = c.reshape->opset;
  last->name = c.reshape->name;
  last->attrs = c.reshape->attrs;
  last->inputs = {c.value, c.reshape->input(1)};
  last->outputs = {out};
  out->producer = last;
  out->producer_output = 0;
  return gone;
}

// Every chain `match` finds (one per product), rewritten.
template <typename Match>
Status fuse_chains(Graph& graph, Match&& match) {
  std::set<const Node*> taken;  // nodes a chain already uses
  std::vector<Chain> chains;
  for (const auto& np : graph.nodes()) {
    Node& n = *np;
    if (taken.count(&n) || n.outputs.size() != 1) continue;
    std::optional<Chain> c = match(n, taken);
    if (!c) continue;
    taken.insert(c->product);
    for (Node* link : c->links) taken.insert(link);
    chains.push_back(std::move(*c));
  }
  std::set<const Node*> removed;
  for (Chain& c : chains)
    for (Node* n : rewrite(graph, c)) removed.insert(n);
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace

Status fuse_matmul_bias_activation(Graph& graph, PassContext&) {
  return fuse_chains(graph, [&](Node& n, const std::set<const Node*>& taken) -> std::optional<Chain> {
    if (is_op(&n, "MatMul")) return match_matmul(graph, n, taken);
    if (is_op(&n, "Gemm")) return match_gemm(graph, n, taken);
    return std::nullopt;
  });
}

Status fuse_matmul_residual(Graph& graph, PassContext&) {
  return fuse_chains(graph, [&](Node& n, const std::set<const Node*>& taken) -> std::optional<Chain> {
    if (n.domain == "kiln" && n.op_type == "FusedMatMul") return match_fused(graph, n, taken);
    if (is_op(&n, "MatMul")) return match_matmul_residual(graph, n, taken);
    return std::nullopt;
  });
}

}  // namespace kiln
