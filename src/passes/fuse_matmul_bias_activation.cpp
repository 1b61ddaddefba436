// fuse_matmul_bias_activation: a MatMul with a 2-D B, followed by an Add of a
// constant bias over the last axis and/or a Relu or Gelu, becomes one
// kiln.FusedMatMul: on the GPU the bias and the activation run in cuBLASLt's
// epilogue instead of re-reading and re-writing the whole product once per
// elementwise op. Gemm(A, B, C?) with alpha = beta = 1, no transA and a 1-D
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
// Each step is taken only when the previous value has that node as its only
// reader and is no graph output, so no intermediate anyone sees disappears.
// Only f32, f16 and bf16 are fused (the dtypes of the CUDA kernel); the last
// value of the chain keeps its name, produced by the fused node.
#include <set>

#include "ir/dtype.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

bool fusable_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

// The fixed last dim of a value's shape, or -1.
int64_t fixed_last_dim(const Value* v) {
  const Shape& s = v->type.shape;
  if (!s.has_rank() || s.rank() == 0 || !s[s.rank() - 1].is_fixed()) return -1;
  return s[s.rank() - 1].value;
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

// The Relu or Gelu that is the only reader of `v`, with its FusedMatMul activation name.
std::pair<Node*, const char*> activation_after(const Graph& g, Value* v) {
  auto users = g.users(v);
  if (users.size() != 1 || !pass_util::only_reader_is(g, v, users[0])) return {nullptr, nullptr};
  Node* act = users[0];
  if (!act->domain.empty() || act->outputs.size() != 1 || !act->outputs[0] ||
      act->outputs[0]->type.dtype != v->type.dtype)
    return {nullptr, nullptr};
  if (act->op_type == "Relu") return {act, "Relu"};
  if (act->op_type == "Gelu") {
    const std::string approximate = act->attr_string("approximate", "none");
    if (approximate == "none") return {act, "Gelu"};
    if (approximate == "tanh") return {act, "GeluTanh"};
  }
  return {nullptr, nullptr};
}

// Turns `mm` into kiln.FusedMatMul(a, b, bias?) producing `out`.
void make_fused(Node& mm, Value* a, Value* b, Value* bias, const char* activation, Value* out) {
  mm.domain = "kiln";
  mm.op_type = "FusedMatMul";
  mm.opset = 1;
  mm.attrs.clear();
  mm.attrs["activation"] = Attribute::of_string(activation ? activation : "");
  mm.inputs = {a, b};
  if (bias) mm.inputs.push_back(bias);
  mm.outputs = {out};
  out->producer = &mm;
  out->producer_output = 0;
}

// MatMul(A, B 2-D) [-> Add(bias)] [-> Relu | Gelu], with at least one step.
bool fuse_matmul(Graph& g, Node& mm, std::set<const Node*>& removed) {
  Value *a = mm.input(0), *b = mm.input(1), *y = mm.output(0);
  if (!a || !b || !y || !b->type.shape.has_rank() || b->type.shape.rank() != 2 || !y->type.shape.has_rank() ||
      !fusable_dtype(y->type.dtype))
    return false;
  Value* out = y;
  Value* bias = nullptr;
  Node* add = nullptr;
  auto users = g.users(y);
  if (users.size() == 1 && users[0]->domain.empty() && users[0]->op_type == "Add" &&
      pass_util::only_reader_is(g, y, users[0]) && users[0]->outputs.size() == 1 && users[0]->outputs[0] &&
      users[0]->outputs[0]->type.dtype == y->type.dtype) {
    Node* candidate = users[0];
    Value* other = candidate->input(0) == y ? candidate->input(1) : candidate->input(0);
    bias = bias_of(g, other, fixed_last_dim(b), y->type.shape.rank(), y->type.dtype);
    if (bias) {
      add = candidate;
      out = add->outputs[0];
    }
  }
  auto [act, activation] = activation_after(g, out);
  if (act) out = act->outputs[0];
  if (!add && !act) return false;
  if (add) removed.insert(add);
  if (act) removed.insert(act);
  make_fused(mm, a, b, bias, activation, out);
  return true;
}

// Gemm(A, B, C 1-D?) {alpha=1, beta=1, transA=0} [-> Relu | Gelu].
bool fuse_gemm(Graph& g, Node& gemm, std::set<const Node*>& removed) {
  Value *a = gemm.input(0), *b = gemm.input(1), *y = gemm.output(0);
  if (!a || !b || !y || !fusable_dtype(y->type.dtype) || gemm.attr_int("transA", 0) != 0 ||
      gemm.attr_float("alpha", 1.0f) != 1.0f || !b->type.shape.has_rank() || b->type.shape.rank() != 2)
    return false;
  const bool trans_b = gemm.attr_int("transB", 0) != 0;
  if (trans_b && (!b->constant || b->constant->rank() != 2)) return false;
  auto [act, activation] = activation_after(g, y);
  Value* bias = nullptr;
  if (Value* c = gemm.input(2)) {
    if (gemm.attr_float("beta", 1.0f) != 1.0f) return false;
    const int64_t n = trans_b ? b->constant->dim(0) : fixed_last_dim(b);
    bias = bias_of(g, c, n, 2, y->type.dtype);
    if (!bias) return false;
  }
  if (trans_b) b = pass_util::add_constant(g, b->name + "_t", b->constant->transposed({1, 0}));
  if (act) removed.insert(act);
  make_fused(gemm, a, b, bias, activation, act ? act->outputs[0] : y);
  return true;
}

}  // namespace

Status fuse_matmul_bias_activation(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  for (const auto& np : graph.nodes()) {
    Node& n = *np;
    if (!n.domain.empty() || removed.count(&n) || n.outputs.size() != 1) continue;
    if (n.op_type == "MatMul") {
      fuse_matmul(graph, n, removed);
    } else if (n.op_type == "Gemm") {
      fuse_gemm(graph, n, removed);
    }
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
