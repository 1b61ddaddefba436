// fuse_attention: scaled dot-product attention written as primitive ops (how
// PyTorch's exporters spell SDPA and hand-written attention) becomes one ONNX
// Attention node (opset 23, 4-D inputs), which the CUDA backend runs as one
// fused kernel:
//
//   %kt: f32[B,H,D,S] = Transpose(%k) {perm=[0,1,3,2]}
//   %s: f32[B,H,S,S] = MatMul(%q, %kt)
//   %t: f32[B,H,S,S] = Div(%s, %c)          # %c = const sqrt(D), or Mul by 1/sqrt(D)
//   %u: f32[B,H,S,S] = Add(%t, %mask)       # optional float mask    ->   %y = Attention(%q, %k, %v, %mask)
//   %p: f32[B,H,S,S] = Softmax(%u) {axis=-1}                                      {scale=1/sqrt(D)}
//   %y: f32[B,H,S,Dv] = MatMul(%p, %v)
//
// The scale may also be split between Q and K^T, as torch's SDPA
// decomposition exports it (Mul(%q, r) and Mul(%kt, r), r = sqrt(scale));
// every scalar constant factor on Q, K^T or the scores multiplies into
// `scale`, which the Attention op also applies as sqrt(scale) to Q and to K.
// A factor under the head Transpose of Q or K^T (where sink_transposes puts
// it) folds in too, the Transpose then reading the unscaled value.
//
// K^T is undone where it was built: a Transpose of a rank-4 value (composed
// with the swap of the last two dims); x [B*H,S,D] -> Transpose(0,2,1) ->
// Reshape([B,H,D,S]) (the dynamo exporter, torchvision's ViT), where K is the
// [B,H,S,D] value x was reshaped from, a Reshape of x to it already in the
// graph, or a new Reshape(x, [-1,H,S,D]); else a new Transpose of K^T.
//
// The guard Where(IsNaN(%p), 0, %p) that exports put after Softmax is
// absorbed: Softmax gives NaN only for a row whose scores are all -inf (a
// fully masked row, where Attention gives zeros, as the guard does) or when a
// score is NaN or +inf (non-finite inputs or an overflow), where the guarded
// row is zeros and Attention's is NaN: the outputs differ only for inputs
// whose result is not finite without the guard either.
//
// A constant mask that is 0 on and below the diagonal and -inf (or the
// dtype's lowest value) above it, the same for every batch and head, becomes
// is_causal=1; any other mask stays the attn_mask input, and must broadcast
// to the scores with its last dim the key length (Attention hides keys past
// the mask's length). Every intermediate must be read only by the pattern.
#include <cmath>
#include <limits>
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
using pass_util::scalar_constant;

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

struct Match {
  Value *q = nullptr, *kt = nullptr, *v = nullptr, *mask = nullptr;
  const Node* q_reader = nullptr;  // the pattern's node reading Q (the MatMul or a scale)
  const Node* kt_reader = nullptr;
  double scale = 1;
  std::vector<Node*> absorbed;  // every node of the pattern but the last MatMul
  // Q = Transpose(Mul(x, c)) (sink_transposes moves Transposes below Muls):
  // the Transpose is to read x, the Mul's factor being in `scale`.
  Node* q_transpose = nullptr;
  Value* q_transpose_source = nullptr;
  // K is `k_source`, transposed by `k_perm` when that is not empty.
  Value* k_source = nullptr;
  std::vector<int64_t> k_perm;
  std::vector<int64_t> k_reshape;  // or reshaped to these dims, when not empty
};

// `v` = Mul(x, c) / Mul(c, x) / Div(x, c) (Div only when `allow_div`) with a
// scalar constant c and only `reader` reading it: returns x and folds c into `scale`.
Value* strip_scale(const Graph& g, Value* v, const Node* reader, bool allow_div, Match& m) {
  Node* n = v ? v->producer : nullptr;
  if (!n || !n->domain.empty() || !only_reader_is(g, v, reader)) return v;
  const Dims* d = dims_of(v);
  if (!d) return v;
  const auto rank = static_cast<int64_t>(d->size());
  if (n->op_type == "Mul") {
    for (size_t side = 0; side < 2; ++side) {
      auto c = scalar_constant(n->input(1 - side), rank);
      if (c && *c != 0 && std::isfinite(*c) && !n->input(side)->constant) {
        m.scale *= *c;
        m.absorbed.push_back(n);
        return n->input(side);
      }
    }
  } else if (allow_div && n->op_type == "Div") {
    auto c = scalar_constant(n->input(1), rank);
    if (c && *c != 0 && std::isfinite(*c)) {
      m.scale /= *c;
      m.absorbed.push_back(n);
      return n->input(0);
    }
  }
  return v;
}

// Softmax -> MatMul(., V), directly or through Where(IsNaN(p), 0, p): the final MatMul.
Node* probs_matmul(const Graph& g, Node& softmax, Match& m) {
  Value* p = softmax.outputs[0];
  if (is_graph_output(g, p)) return nullptr;
  auto users = g.users(p);
  Value* probs = p;
  if (users.size() == 2) {
    Node* isnan = users[0]->op_type == "IsNaN" ? users[0] : users[1];
    Node* where = users[0] == isnan ? users[1] : users[0];
    if (isnan->op_type != "IsNaN" || where->op_type != "Where" || !isnan->domain.empty() || !where->domain.empty())
      return nullptr;
    if (isnan->input(0) != p || where->inputs.size() != 3 || where->input(0) != isnan->outputs[0] ||
        where->input(2) != p || where->input(1) == p || !only_reader_is(g, isnan->outputs[0], where))
      return nullptr;
    auto zero = scalar_constant(where->input(1), 4);
    if (!zero || *zero != 0) return nullptr;
    m.absorbed.push_back(isnan);
    m.absorbed.push_back(where);
    probs = where->outputs[0];
    users = g.users(probs);
    if (is_graph_output(g, probs)) return nullptr;
  }
  if (users.size() != 1) return nullptr;
  Node* mm = users[0];
  if (mm->op_type != "MatMul" || !mm->domain.empty() || mm->input(0) != probs || mm->input(1) == probs) return nullptr;
  m.v = mm->input(1);
  return mm;
}

// Up to two scale nodes (a Div by sqrt(D), a Mul) from `s`, read by `reader`,
// back to the Q.K^T MatMul; null if there is none.
Node* scores_matmul(const Graph& g, Value* s, const Node* reader, Match& m) {
  for (int k = 0; k < 2; ++k) {
    Value* next = strip_scale(g, s, reader, true, m);
    if (next == s) break;
    reader = s->producer;
    s = next;
  }
  Node* mm = producer_of(s, "MatMul");
  if (!mm || !only_reader_is(g, s, reader) || mm->input(0) == mm->input(1)) return nullptr;
  return mm;
}

// Softmax's input back to MatMul(Q', K^T'): the mask, the scale factors, Q and K^T.
bool scores(const Graph& g, Node& softmax, Match& m) {
  Value* s = softmax.input(0);
  Node* mm = nullptr;
  if (Node* add = producer_of(s, "Add"); add && only_reader_is(g, s, &softmax)) {
    for (size_t side = 0; side < 2 && !mm; ++side) {
      Match trial = m;
      trial.absorbed.push_back(add);
      mm = scores_matmul(g, add->input(side), add, trial);
      if (!mm) continue;
      trial.mask = add->input(1 - side);
      m = trial;
    }
  } else {
    mm = scores_matmul(g, s, &softmax, m);
  }
  if (!mm) return false;
  m.absorbed.push_back(mm);
  m.q = strip_scale(g, mm->input(0), mm, false, m);
  m.q_reader = m.q == mm->input(0) ? mm : mm->input(0)->producer;
  m.kt = strip_scale(g, mm->input(1), mm, false, m);
  m.kt_reader = m.kt == mm->input(1) ? mm : mm->input(1)->producer;
  return true;
}

// Q = Transpose(Mul(x, c)), the Transpose and the Mul read by the pattern alone:
// c goes into the scale and the Transpose reads x.
void unscaled_query(const Graph& g, Match& m) {
  Node* t = producer_of(m.q, "Transpose");
  if (!t || !only_reader_is(g, m.q, m.q_reader)) return;
  Match trial = m;
  Value* x = strip_scale(g, t->input(0), t, false, trial);
  if (x == t->input(0)) return;
  m = trial;
  m.q_transpose = t;
  m.q_transpose_source = x;
}

// K for K^T = `kt`: the value K^T was transposed from and the permutation
// that makes K of it (none when it is K). Under a Transpose read by the
// pattern alone, a scalar Mul folds into the scale. Without a known way back,
// K^T itself is transposed.
void key_of(const Graph& g, Match& m) {
  m.k_source = m.kt;
  m.k_perm = {0, 1, 3, 2};
  if (Node* t = producer_of(m.kt, "Transpose")) {
    // A valid permutation only (shape inference also takes negative axes).
    auto perm = pass_util::transpose_perm(*t);
    if (!perm || perm->size() != 4) return;
    std::vector<int64_t> p = *perm;
    std::swap(p[2], p[3]);  // K = Transpose(K^T, [0,1,3,2]) = Transpose(x, p . swap)
    m.k_source = t->input(0);
    if (only_reader_is(g, m.kt, m.kt_reader)) {
      Match trial = m;
      trial.absorbed.push_back(t);
      Value* x = strip_scale(g, t->input(0), t, false, trial);
      if (x != t->input(0)) {
        m = trial;
        m.k_source = x;
      }
    }
    m.k_perm = p == std::vector<int64_t>{0, 1, 2, 3} ? std::vector<int64_t>{} : p;
    return;
  }
  // x [B*H,S,D] -> Transpose(0,2,1) -> Reshape([B,H,D,S]): K is x as [B,H,S,D].
  Node* outer = producer_of(m.kt, "Reshape");
  Node* t = outer ? producer_of(outer->input(0), "Transpose") : nullptr;
  if (!t || pass_util::transpose_perm(*t) != std::vector<int64_t>{0, 2, 1}) return;
  Value* x = t->input(0);
  const Dims *flat = dims_of(x), *out = dims_of(m.kt);
  if (!flat || !out || flat->size() != 3 || out->size() != 4) return;
  if (!same_dim((*flat)[1], (*out)[3]) || !same_dim((*flat)[2], (*out)[2])) return;
  const Dims want = {(*out)[0], (*out)[1], (*out)[3], (*out)[2]};
  auto is_key = [&](const Value* v) {
    const Dims* d = dims_of(v);
    if (!d || d->size() != 4) return false;
    for (size_t i = 0; i < 4; ++i)
      if (!same_dim((*d)[i], want[i])) return false;
    return true;
  };
  // The exporter's own K (x = Reshape(K)), or a Reshape of x to K's shape already there.
  if (Node* inner = producer_of(x, "Reshape"); inner && is_key(inner->input(0))) {
    m.k_source = inner->input(0);
    m.k_perm.clear();
    return;
  }
  for (Node* r : g.users(x))
    if (r->op_type == "Reshape" && r->domain.empty() && r->input(0) == x && is_key(r->outputs[0])) {
      m.k_source = r->outputs[0];
      m.k_perm.clear();
      return;
    }
  // Else a new Reshape to [-1,H,S,D], when H, S and D are fixed.
  if (want[1].is_fixed() && want[2].is_fixed() && want[3].is_fixed()) {
    m.k_source = x;
    m.k_reshape = {-1, want[1].value, want[2].value, want[3].value};
    m.k_perm.clear();
  }
}

// K's type when it is made by reshaping x [B*H,S,D]: K^T's dims with the last two swapped.
Type reshaped_key(const Match& m) {
  const Dims& d = *dims_of(m.kt);
  return Type::tensor(m.kt->type.dtype, Dims{d[0], d[1], d[3], d[2]});
}

// The type of `v` transposed by `perm` (empty: unchanged); null type when the rank is not 4.
Type transposed(const Value* v, const std::vector<int64_t>& perm) {
  const Dims* d = dims_of(v);
  if (!d || d->size() != 4) return Type();
  if (perm.empty()) return v->type;
  return Type::tensor(v->type.dtype, pass_util::permuted_shape(v->type.shape, perm));
}

// Whether a constant mask of `rows` x `cols` (every leading slice the same)
// is 0 where key <= query and hidden (-inf or the lowest value) elsewhere.
bool is_causal_mask(const Value* mask, const Dims& score_dims) {
  if (!mask->constant || mask->constant->rank() < 2) return false;
  const Tensor& t = *mask->constant;
  auto values = pass_util::float_values(t);
  const int64_t rows = t.dim(t.rank() - 2), cols = t.dim(t.rank() - 1);
  const Dim &want_rows = score_dims[2], &want_cols = score_dims[3];
  if (!values || !want_rows.is_fixed() || !want_cols.is_fixed() || rows != want_rows.value || cols != want_cols.value)
    return false;
  double lowest = -std::numeric_limits<float>::max();
  if (t.dtype() == DType::kF64) lowest = -std::numeric_limits<double>::max();
  if (t.dtype() == DType::kF16) lowest = -65504.0;
  if (t.dtype() == DType::kBF16) lowest = -3.3895313892515355e38;
  for (size_t e = 0; e < values->size(); ++e) {
    const auto idx = static_cast<int64_t>(e);
    const int64_t i = (idx / cols) % rows, j = idx % cols;
    const double x = (*values)[e];
    if (j <= i ? x != 0 : !(std::isinf(x) && x < 0) && x != lowest) return false;
  }
  return true;
}

// Q, K, V of one (B, H) layout and a mask that broadcasts to the scores as Attention reads it.
bool shapes_fit(const Match& m, const Value* k, const Value* scores) {
  const Dims *q = dims_of(m.q), *kd = dims_of(k), *v = dims_of(m.v), *s = dims_of(scores);
  if (!q || !kd || !v || !s || q->size() != 4 || kd->size() != 4 || v->size() != 4 || s->size() != 4) return false;
  for (size_t i : {0, 1})
    if (!same_dim((*q)[i], (*kd)[i]) || !same_dim((*q)[i], (*v)[i])) return false;
  if (!same_dim((*q)[3], (*kd)[3]) || !same_dim((*kd)[2], (*v)[2])) return false;
  if (!same_dim((*s)[2], (*q)[2]) || !same_dim((*s)[3], (*kd)[2])) return false;
  const DType t = m.q->type.dtype;
  if (!is_float(t) || m.kt->type.dtype != t || m.v->type.dtype != t) return false;
  if (!m.mask) return true;
  const Dims* md = dims_of(m.mask);
  if (!md || md->empty() || md->size() > 4 || m.mask->type.dtype != t) return false;
  if (!same_dim(md->back(), (*s)[3])) return false;  // a length-1 key dim would hide every key but the first
  for (size_t a = 0; a + 1 < md->size(); ++a) {
    const Dim& d = (*md)[a];
    if (!(d.is_fixed() && d.value == 1) && !same_dim(d, (*s)[4 - md->size() + a])) return false;
  }
  return true;
}

}  // namespace

Status fuse_attention(Graph& graph, PassContext&) {
  std::vector<Node*> softmaxes;
  for (const auto& n : graph.nodes())
    if (n->domain.empty() && n->op_type == "Softmax" && n->outputs.size() == 1 && n->outputs[0])
      softmaxes.push_back(n.get());
  std::set<const Node*> removed;
  for (Node* sm : softmaxes) {
    if (removed.count(sm)) continue;
    const Dims* sd = dims_of(sm->input(0));
    if (!sd || sd->size() != 4) continue;
    const int64_t axis = sm->attr_int("axis", -1);
    if (axis != -1 && axis != 3) continue;
    Match m;
    m.absorbed.push_back(sm);
    Node* out = probs_matmul(graph, *sm, m);
    if (!out || !scores(graph, *sm, m)) continue;
    unscaled_query(graph, m);
    key_of(graph, m);
    bool taken = false;
    for (const Node* n : m.absorbed) taken |= removed.count(n) != 0;
    if (taken) continue;
    // K's shape, checked before K is made.
    Value k_probe;
    k_probe.type = m.k_reshape.empty() ? transposed(m.k_source, m.k_perm) : reshaped_key(m);
    if (!shapes_fit(m, &k_probe, sm->input(0))) continue;
    Value* k = m.k_source;
    if (!m.k_perm.empty() || !m.k_reshape.empty()) {
      const bool reshape = !m.k_reshape.empty();
      Node* t = pass_util::insert_node_before(graph, out, reshape ? "Reshape" : "Transpose");
      t->name = graph.unique_name(out->name + "_k");
      t->inputs = {m.k_source};
      if (reshape) {
        t->inputs.push_back(pass_util::add_constant(graph, m.kt->name + "_k_shape", Tensor::vector_i64(m.k_reshape)));
      } else {
        t->attrs["perm"] = Attribute::of_ints(m.k_perm);
      }
      k = graph.add_value(graph.unique_name(m.kt->name + "_k"), k_probe.type);
      k->producer = t;
      k->producer_output = 0;
      t->outputs = {k};
    }
    if (m.q_transpose) m.q_transpose->inputs[0] = m.q_transpose_source;
    const bool causal = m.mask && is_causal_mask(m.mask, *sd);
    out->op_type = "Attention";
    out->opset = 0;
    out->inputs = {m.q, k, m.v};
    if (m.mask && !causal) out->inputs.push_back(m.mask);
    out->attrs.clear();
    out->attrs["scale"] = Attribute::of_float(static_cast<float>(m.scale));
    if (causal) out->attrs["is_causal"] = Attribute::of_int(1);
    removed.insert(m.absorbed.begin(), m.absorbed.end());
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
