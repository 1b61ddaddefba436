// fuse_gelu: GELU written as primitive ops becomes one Gelu node (opset 20).
// The exact form, as torch.nn.GELU() exports it:
//
//   %a: f32[N] = Div(%x, %c)     # %c = sqrt(2), or Mul by 1/sqrt(2)
//   %e: f32[N] = Erf(%a)
//   %f: f32[N] = Add(%e, %one)                      ->   %y: f32[N] = Gelu(%x)
//   %g: f32[N] = Mul(%x, %f)
//   %y: f32[N] = Mul(%g, %half)
//
// and the tanh approximation (GPT-2's NewGELU), which becomes
// Gelu(%x) {approximate="tanh"}:
//
//   0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
//
// with x^3 as Pow(x, 3) or x * x * x. The final product x * 0.5 * (1 + ...)
// may be associated any way: (x * f) * 0.5, (x * 0.5) * f or x * (f * 0.5).
// Constants are scalars compared with a tolerance that fits their dtype; every
// intermediate must be read only by the pattern. Gelu is emitted whatever the
// model's opset: kiln's op table has it, and an inserted node carries no opset.
#include <cmath>
#include <numbers>
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using pass_util::only_reader_is;
using pass_util::producer_of;

struct Match {
  Value* x = nullptr;
  std::vector<Node*> nodes;  // the pattern's nodes; the last becomes the Gelu
};

int64_t rank_of(const Value* v) { return v && v->type.shape.has_rank() ? v->type.shape.rank() : -1; }

// Whether `c` is a scalar constant near `want` for a value of `x`'s type.
bool is_const(const Value* c, const Value* x, double want) {
  auto v = pass_util::scalar_constant(c, rank_of(x));
  return v && pass_util::near_value(*v, want, x->type.dtype);
}

// `n` is a binary op reading `a` and something else (either order): that other input.
Value* other_input(const Node* n, const Value* a) {
  if (!n || n->inputs.size() != 2) return nullptr;
  if (n->input(0) == a && n->input(1) != a) return n->input(1);
  if (n->input(1) == a && n->input(0) != a) return n->input(0);
  return nullptr;
}

// The one node reading `v`, if it is `op` (and `v` is no graph output).
Node* sole_reader(const Graph& g, const Value* v, const char* op) {
  auto users = g.users(v);
  if (users.size() != 1 || users[0]->op_type != op || !users[0]->domain.empty()) return nullptr;
  return only_reader_is(g, v, users[0]) ? users[0] : nullptr;
}

// From f = 1 + (erf or tanh term): the product x * 0.5 * f in any association.
bool times_half_x(const Graph& g, Value* f, Match& m) {
  Node* m1 = sole_reader(g, f, "Mul");
  Value* o = other_input(m1, f);
  if (!o) return false;
  m.nodes.push_back(m1);
  if (o == m.x || is_const(o, m.x, 0.5)) {  // (x * f) * 0.5 or (f * 0.5) * x
    Node* m2 = sole_reader(g, m1->outputs[0], "Mul");
    Value* o2 = other_input(m2, m1->outputs[0]);
    if (!o2 || !(o == m.x ? is_const(o2, m.x, 0.5) : o2 == m.x)) return false;
    m.nodes.push_back(m2);
    return true;
  }
  Node* h = producer_of(o, "Mul");  // (x * 0.5) * f
  if (!h || !only_reader_is(g, o, m1) || !is_const(other_input(h, m.x), m.x, 0.5)) return false;
  m.nodes.insert(m.nodes.begin(), h);
  return true;
}

// 1 + t, the Add reading `t` alone.
Value* plus_one(const Graph& g, Value* t, Match& m) {
  Node* add = sole_reader(g, t, "Add");
  if (!add || !is_const(other_input(add, t), m.x, 1.0)) return nullptr;
  m.nodes.push_back(add);
  return add->outputs[0];
}

// Erf(x / sqrt(2)) or Erf(x * (1/sqrt(2))).
bool match_erf(const Graph& g, Node& erf, Match& m) {
  Value* a = erf.input(0);
  Node* scale = a ? a->producer : nullptr;
  if (!scale || !scale->domain.empty() || !only_reader_is(g, a, &erf)) return false;
  if (scale->op_type == "Div") {
    m.x = scale->input(0);
    if (!is_const(scale->input(1), m.x, std::numbers::sqrt2)) return false;
  } else if (scale->op_type == "Mul") {
    for (size_t side = 0; side < 2 && !m.x; ++side)
      if (scale->input(side) && !scale->input(side)->constant) m.x = scale->input(side);
    if (!m.x || !is_const(other_input(scale, m.x), m.x, 1 / std::numbers::sqrt2)) return false;
  } else {
    return false;
  }
  m.nodes = {scale, &erf};
  Value* f = plus_one(g, erf.outputs[0], m);
  return f && times_half_x(g, f, m);
}

// x^3 as Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x): x, and the nodes in `m`.
Value* cube_root_of(const Graph& g, Value* c, const Node* reader, Match& m) {
  Node* n = c ? c->producer : nullptr;
  if (!n || !n->domain.empty() || !only_reader_is(g, c, reader)) return nullptr;
  if (n->op_type == "Pow" && is_const(n->input(1), n->input(0), 3.0)) {
    m.nodes.push_back(n);
    return n->input(0);
  }
  if (n->op_type != "Mul") return nullptr;
  for (size_t side = 0; side < 2; ++side) {
    Node* sq = producer_of(n->input(side), "Mul");
    Value* x = n->input(1 - side);
    if (sq && sq->input(0) == x && sq->input(1) == x && g.users(n->input(side)).size() == 1 &&
        !is_graph_output(g, n->input(side))) {
      m.nodes.push_back(sq);
      m.nodes.push_back(n);
      return x;
    }
  }
  return nullptr;
}

// Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)).
bool match_tanh(const Graph& g, Node& tanh, Match& m) {
  Value* a = tanh.input(0);
  Node* outer = producer_of(a, "Mul");
  if (!outer || !only_reader_is(g, a, &tanh)) return false;
  Value* inner = nullptr;
  for (size_t side = 0; side < 2 && !inner; ++side)
    if (is_const(outer->input(1 - side), outer->input(side), std::sqrt(2 / std::numbers::pi)))
      inner = outer->input(side);
  Node* add = producer_of(inner, "Add");
  if (!add || !only_reader_is(g, inner, outer)) return false;
  for (size_t side = 0; side < 2 && !m.x; ++side) {
    Value* term = add->input(1 - side);
    Node* mul = producer_of(term, "Mul");
    if (!mul || !only_reader_is(g, term, add)) continue;
    for (size_t s = 0; s < 2 && !m.x; ++s) {
      Match trial;
      if (!is_const(mul->input(1 - s), add->input(side), 0.044715)) continue;
      if (cube_root_of(g, mul->input(s), mul, trial) != add->input(side)) continue;
      m.x = add->input(side);
      m.nodes = trial.nodes;
      m.nodes.push_back(mul);
    }
  }
  if (!m.x) return false;
  m.nodes.push_back(add);
  m.nodes.push_back(outer);
  m.nodes.push_back(&tanh);
  Value* f = plus_one(g, tanh.outputs[0], m);
  return f && times_half_x(g, f, m);
}

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

}  // namespace

Status fuse_gelu(Graph& graph, PassContext&) {
  std::vector<Node*> anchors;
  for (const auto& n : graph.nodes())
    if (n->domain.empty() && (n->op_type == "Erf" || n->op_type == "Tanh") && n->outputs.size() == 1)
      anchors.push_back(n.get());
  std::set<const Node*> removed;
  for (Node* a : anchors) {
    Match m;
    const bool erf = a->op_type == "Erf";
    if (!(erf ? match_erf(graph, *a, m) : match_tanh(graph, *a, m))) continue;
    if (!m.x || !is_float(m.x->type.dtype) || rank_of(m.x) < 0) continue;
    bool taken = false;
    for (const Node* n : m.nodes) taken |= removed.count(n) != 0;
    if (taken) continue;
    // The last node of the product keeps its output and becomes the Gelu; it
    // comes after every other node of the pattern and after x.
    Node* last = m.nodes.back();
    if (last->outputs.size() != 1 || last->outputs[0]->type.dtype != m.x->type.dtype) continue;
    last->op_type = "Gelu";
    last->opset = 0;
    last->inputs = {m.x};
    last->attrs.clear();
    if (!erf) last->attrs["approximate"] = Attribute::of_string("tanh");
    m.nodes.pop_back();
    removed.insert(m.nodes.begin(), m.nodes.end());
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
