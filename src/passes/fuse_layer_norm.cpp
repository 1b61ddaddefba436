// fuse_layer_norm: LayerNorm and RMSNorm over the last axis written as
// primitive ops (TorchScript exports before opset 17, hand-written RMSNorm)
// become one LayerNormalization (opset 17) or RMSNormalization (opset 23):
//
//   %m: f32[N,D] = ReduceMean(%x, %axes)     # axes = [-1], keepdims = 1
//   %d: f32[N,D] = Sub(%x, %m)
//   %q: f32[N,D] = Pow(%d, %two)             # or Mul(%d, %d)
//   %v: f32[N,1] = ReduceMean(%q, %axes)
//   %e: f32[N,1] = Add(%v, %eps)                   ->   %y: f32[N,D] = LayerNormalization(%x, %gamma, %beta)
//   %s: f32[N,1] = Sqrt(%e)                                                 {axis=-1, epsilon=eps}
//   %n: f32[N,D] = Div(%d, %s)               # or Mul(%d, Reciprocal(%s))
//   %g: f32[N,D] = Mul(%n, %gamma)           # optional
//   %y: f32[N,D] = Add(%g, %beta)            # optional
//
// RMSNorm is the same without the mean: x / Sqrt(ReduceMean(x^2) + eps) *
// gamma ==> RMSNormalization(%x, %gamma) {axis=-1, epsilon=eps}.
//
// eps, gamma and beta must be constants; gamma and beta broadcast along the
// last axis only (they are rewritten as [D] when given another shape, which
// needs D fixed), and an absent gamma becomes ones. The axes are read from the
// ReduceMean's input (opset 18) or attribute (before). Every intermediate must
// be read only by the pattern, and the last node keeps its output value.
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using pass_util::only_reader_is;
using pass_util::producer_of;

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

int64_t rank_of(const Value* v) { return v && v->type.shape.has_rank() ? v->type.shape.rank() : -1; }

// The one node reading `v`, if it is `op` (and `v` is no graph output).
Node* sole_reader(const Graph& g, const Value* v, const char* op) {
  auto users = g.users(v);
  if (users.size() != 1 || users[0]->op_type != op || !users[0]->domain.empty()) return nullptr;
  return only_reader_is(g, v, users[0]) ? users[0] : nullptr;
}

// `n` is a binary op reading `a` once and something else: that other input.
Value* other_input(const Node* n, const Value* a) {
  if (!n || n->inputs.size() != 2) return nullptr;
  if (n->input(0) == a && n->input(1) != a) return n->input(1);
  if (n->input(1) == a && n->input(0) != a) return n->input(0);
  return nullptr;
}

// A ReduceMean over the last axis of its input that keeps the dims.
bool is_last_axis_mean(const Node* n) {
  if (!n || n->op_type != "ReduceMean" || !n->domain.empty() || n->attr_int("keepdims", 1) != 1) return false;
  const int64_t rank = rank_of(n->input(0));
  std::vector<int64_t> axes;
  if (n->input(1)) {
    if (!n->input(1)->constant) return false;
    auto v = n->input(1)->constant->to_i64_vector();
    if (!v.is_ok()) return false;
    axes = *v;
  } else {
    axes = n->attr_ints("axes");
  }
  return rank >= 1 && axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

// x^2 as Pow(x, 2) or Mul(x, x): x.
Value* square_of(const Node* n) {
  if (!n || !n->domain.empty() || n->inputs.size() != 2) return nullptr;
  if (n->op_type == "Mul" && n->input(0) == n->input(1)) return n->input(0);
  if (n->op_type != "Pow") return nullptr;
  auto e = pass_util::scalar_constant(n->input(1), rank_of(n->input(0)));
  return e && *e == 2 ? n->input(0) : nullptr;
}

struct Match {
  Value* x = nullptr;
  Value* gamma = nullptr;
  Value* beta = nullptr;
  double eps = 0;
  std::vector<Node*> nodes;  // in graph order; the last keeps its output
};

// From the mean of squares `v` (read by its Add): Sqrt(v + eps), then the
// normalization of `num` by it (Div, or Mul by Reciprocal). Returns that node's output.
Value* normalized(const Graph& g, Node& var, Value* num, Match& m) {
  Node* add = sole_reader(g, var.outputs[0], "Add");
  Value* eps = other_input(add, var.outputs[0]);
  auto e = pass_util::scalar_constant(eps, rank_of(var.outputs[0]));
  if (!e || *e < 0) return nullptr;
  Node* sqrt = sole_reader(g, add->outputs[0], "Sqrt");
  if (!sqrt) return nullptr;
  m.eps = *e;
  m.nodes.insert(m.nodes.end(), {add, sqrt});
  Value* s = sqrt->outputs[0];
  if (Node* div = sole_reader(g, s, "Div"); div && div->input(0) == num && div->input(1) == s) {
    m.nodes.push_back(div);
    return div->outputs[0];
  }
  Node* rec = sole_reader(g, s, "Reciprocal");
  Node* mul = rec ? sole_reader(g, rec->outputs[0], "Mul") : nullptr;
  if (!mul || other_input(mul, rec->outputs[0]) != num) return nullptr;
  m.nodes.insert(m.nodes.end(), {rec, mul});
  return mul->outputs[0];
}

// Optional Mul by constant gamma, then (when `with_beta`) Add of constant beta.
void affine(const Graph& g, Value* n, bool with_beta, Match& m) {
  if (Node* mul = sole_reader(g, n, "Mul"); mul) {
    Value* c = other_input(mul, n);
    if (c && c->constant) {
      m.gamma = c;
      m.nodes.push_back(mul);
      n = mul->outputs[0];
    }
  }
  if (!with_beta) return;
  if (Node* add = sole_reader(g, n, "Add"); add) {
    Value* c = other_input(add, n);
    if (c && c->constant) {
      m.beta = c;
      m.nodes.push_back(add);
    }
  }
}

// Mean -> Sub -> square -> mean -> +eps -> Sqrt -> normalize, from the first mean.
bool match_layer_norm(const Graph& g, Node& mean, Match& m) {
  m.x = mean.input(0);
  Node* sub = sole_reader(g, mean.outputs[0], "Sub");
  if (!sub || sub->input(0) != m.x || sub->input(1) != mean.outputs[0]) return false;
  Value* d = sub->outputs[0];
  auto users = g.users(d);
  if (users.size() != 2 || is_graph_output(g, d)) return false;
  Node* sq = square_of(users[0]) == d ? users[0] : users[1];
  if (square_of(sq) != d) return false;
  Node* var = sole_reader(g, sq->outputs[0], "ReduceMean");
  if (!is_last_axis_mean(var)) return false;
  m.nodes = {&mean, sub, sq, var};
  Value* n = normalized(g, *var, d, m);
  if (!n) return false;
  affine(g, n, true, m);
  return true;
}

// square -> mean -> +eps -> Sqrt -> normalize, from the mean.
bool match_rms_norm(const Graph& g, Node& var, Match& m) {
  Node* sq = var.input(0) ? var.input(0)->producer : nullptr;
  m.x = square_of(sq);
  if (!m.x || !only_reader_is(g, var.input(0), &var)) return false;
  m.nodes = {sq, &var};
  Value* n = normalized(g, var, m.x, m);
  if (!n) return false;
  affine(g, n, false, m);
  return true;
}

// `p` as a constant of shape [D] (ones when absent); null if it does not
// broadcast along the last axis alone or D is not fixed when needed.
Value* as_last_axis_param(Graph& g, Value* p, const Value* x, double fill) {
  const Dim& last = x->type.shape[static_cast<size_t>(rank_of(x) - 1)];
  if (p) {
    const Tensor& t = *p->constant;
    if (t.rank() > rank_of(x) || t.dtype() != x->type.dtype) return nullptr;
    for (int64_t a = 0; a + 1 < t.rank(); ++a)
      if (t.dim(a) != 1) return nullptr;
    if (t.rank() == 1 && last.is_fixed() && t.dim(0) == last.value) return p;
    if (t.numel() != 1 && !(last.is_fixed() && t.numel() == last.value)) return nullptr;
  }
  if (!last.is_fixed()) return nullptr;
  std::vector<double> values(static_cast<size_t>(last.value), fill);
  if (p) {
    auto v = pass_util::float_values(*p->constant);
    if (!v) return nullptr;
    for (size_t i = 0; i < values.size(); ++i) values[i] = (*v)[v->size() == 1 ? 0 : i];
  }
  return pass_util::add_constant(g, p ? p->name + "_d" : x->name + "_ones",
                                 pass_util::float_tensor(x->type.dtype, {last.value}, values));
}

bool rewrite(Graph& g, Match& m, bool layer_norm, std::set<const Node*>& removed) {
  if (!m.x || !is_float(m.x->type.dtype) || rank_of(m.x) < 1) return false;
  for (const Node* n : m.nodes)
    if (removed.count(n)) return false;
  Node* last = m.nodes.back();
  if (last->outputs.size() != 1 || last->outputs[0]->type.dtype != m.x->type.dtype) return false;
  Value* gamma = as_last_axis_param(g, m.gamma, m.x, 1.0);
  Value* beta = m.beta ? as_last_axis_param(g, m.beta, m.x, 0.0) : nullptr;
  if (!gamma || (m.beta && !beta)) return false;
  last->op_type = layer_norm ? "LayerNormalization" : "RMSNormalization";
  last->opset = 0;
  last->inputs = {m.x, gamma};
  if (beta) last->inputs.push_back(beta);
  last->attrs.clear();
  last->attrs["axis"] = Attribute::of_int(-1);
  last->attrs["epsilon"] = Attribute::of_float(static_cast<float>(m.eps));
  m.nodes.pop_back();
  removed.insert(m.nodes.begin(), m.nodes.end());
  return true;
}

}  // namespace

Status fuse_layer_norm(Graph& graph, PassContext&) {
  std::vector<Node*> means;
  for (const auto& n : graph.nodes())
    if (is_last_axis_mean(n.get()) && n->outputs.size() == 1) means.push_back(n.get());
  std::set<const Node*> removed;
  for (Node* mean : means) {
    Match m;
    if (!removed.count(mean) && match_layer_norm(graph, *mean, m)) rewrite(graph, m, true, removed);
  }
  for (Node* var : means) {
    Match m;
    if (!removed.count(var) && match_rms_norm(graph, *var, m)) rewrite(graph, m, false, removed);
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
