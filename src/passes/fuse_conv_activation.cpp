// fuse_conv_activation: a Conv whose result only flows through a residual
// Add and/or an activation becomes one kiln::FusedConv, so the GPU writes the
// activation once instead of re-reading and re-writing it per elementwise op:
//
//   %c: f32[1,2,4,4] = Conv(%x, %w, %b)            %y: f32[1,2,4,4] = kiln.FusedConv(%x, %w, %b, %id)
//   %s: f32[1,2,4,4] = Add(%c, %id)         ->         {activation="Relu"}
//   %y: f32[1,2,4,4] = Relu(%s)                    return %y
//   return %y
//
// The chain is Conv -> [Add(Z)] -> [Relu | Clip(constant bounds) | Sigmoid |
// Mul(t, Sigmoid(t)) (SiLU)], each link the only reader of the one before.
// Z must have exactly the Conv output's dtype and shape (no broadcasting) and
// no unknown dims. The last node of the chain becomes the FusedConv, keeping
// its output value (graph output names stay) and its place in the order, so
// Z, which may be computed after the Conv (ResNet's downsample branch), is
// ready when it runs.
#include <set>

#include "ir/rewrite.h"
#include "ops/fused_activation.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using Kind = FusedActivation::Kind;

bool is_op(const Node* n, const char* op) { return n && n->domain.empty() && n->op_type == op; }

// The one node reading `v` once, when nothing else (no graph output) reads it.
Node* sole_reader(const Graph& g, const Value* v) {
  std::vector<Node*> users = g.users(v);
  if (users.size() != 1 || !pass_util::only_reader_is(g, v, users[0])) return nullptr;
  return users[0];
}

bool same_tensor_type(const Value* a, const Value* b) {
  return a->type.is_tensor() && b->type.is_tensor() && a->type.dtype == b->type.dtype &&
         pass_util::fully_named(a->type.shape) && a->type.shape == b->type.shape;
}

struct Match {
  Node* conv = nullptr;
  Value* z = nullptr;
  FusedActivation act;
  Node* last = nullptr;        // becomes the FusedConv
  std::vector<Node*> removed;  // the Conv and the links before `last`
};

// The activation reading `t` (the chain's value so far), if any: sets
// m.act, m.last and m.removed.
void match_activation(const Graph& g, Value* t, Match& m) {
  std::vector<Node*> users = g.users(t);
  if (is_graph_output(g, t)) return;
  if (users.size() == 2) {  // SiLU: Mul(t, Sigmoid(t)), in either order
    Node* s = is_op(users[0], "Sigmoid") ? users[0] : users[1];
    Node* mul = s == users[0] ? users[1] : users[0];
    if (!is_op(s, "Sigmoid") || !is_op(mul, "Mul") || s->input(0) != t || sole_reader(g, s->outputs[0]) != mul) return;
    const Value* other = mul->input(0) == t ? mul->input(1) : mul->input(0);
    if (other != s->outputs[0] || !same_tensor_type(mul->outputs[0], t)) return;
    m.act.kind = Kind::kSilu;
    m.removed.push_back(s);
    m.last = mul;
    return;
  }
  Node* r = sole_reader(g, t);
  if (!r || r->outputs.size() != 1 || !r->outputs[0] || r->outputs[0]->type.dtype != t->type.dtype) return;
  if (is_op(r, "Relu")) {
    m.act.kind = Kind::kRelu;
  } else if (is_op(r, "Sigmoid")) {
    m.act.kind = Kind::kSigmoid;
  } else if (is_op(r, "Clip") && r->input(0) == t) {
    std::optional<float> lo = pass_util::clip_bound(r->input(1), -INFINITY),
                         hi = pass_util::clip_bound(r->input(2), INFINITY);
    if (!lo || !hi) return;
    m.act.kind = Kind::kClip;
    m.act.lo = *lo, m.act.hi = *hi;
  } else {
    return;
  }
  m.last = r;
}

std::optional<Match> match_chain(const Graph& g, Node& conv, const std::set<const Node*>& taken) {
  Value* c = conv.outputs.empty() ? nullptr : conv.outputs[0];
  if (!c || !c->type.is_tensor() || !is_compute_float(c->type.dtype)) return std::nullopt;
  Match m;
  m.conv = &conv;
  m.removed.push_back(&conv);
  Value* t = c;
  Node* add = sole_reader(g, c);
  if (is_op(add, "Add") && !taken.count(add)) {
    Value* z = add->input(0) == c ? add->input(1) : add->input(0);
    if (z && z != c && same_tensor_type(z, c) && same_tensor_type(add->outputs[0], c)) {
      m.z = z;
      m.last = add;
      t = add->outputs[0];
    }
  }
  Node* before_act = m.last;
  match_activation(g, t, m);
  if (!m.last || taken.count(m.last)) return std::nullopt;
  if (before_act && before_act != m.last) m.removed.push_back(before_act);
  return m;
}

void rewrite(Match& m) {
  Node& f = *m.last;
  const Node& conv = *m.conv;
  f.op_type = "FusedConv";
  f.domain = "kiln";
  f.opset = 0;
  f.name = conv.name;
  f.inputs = {conv.inputs[0], conv.inputs[1], conv.input(2), m.z};
  while (!f.inputs.empty() && !f.inputs.back()) f.inputs.pop_back();
  f.attrs = conv.attrs;
  if (m.act.kind != Kind::kNone) f.attrs["activation"] = Attribute::of_string(FusedActivation::name(m.act.kind));
  if (m.act.kind == Kind::kClip) f.attrs["activation_params"] = Attribute::of_floats({m.act.lo, m.act.hi});
  // What `kiln inspect` shows as the layer's fused ops.
  std::string fused = "Conv";
  if (m.z) fused += "+Add";
  if (m.act.kind == Kind::kSilu) fused += "+Sigmoid+Mul";
  if (m.act.kind != Kind::kNone && m.act.kind != Kind::kSilu)
    fused += std::string("+") + FusedActivation::name(m.act.kind);
  f.metadata["kiln.fused"] = fused;
}

}  // namespace

Status fuse_conv_activation(Graph& graph, PassContext&) {
  std::set<const Node*> taken;  // nodes a match already uses
  std::vector<Match> matches;
  for (const auto& np : graph.nodes()) {
    Node& n = *np;
    if (!is_op(&n, "Conv") || n.inputs.size() < 2 || taken.count(&n)) continue;
    std::optional<Match> m = match_chain(graph, n, taken);
    if (!m) continue;
    taken.insert(m->last);
    for (Node* r : m->removed) taken.insert(r);
    matches.push_back(std::move(*m));
  }
  std::set<const Node*> removed;
  for (Match& m : matches) {
    rewrite(m);
    for (Node* r : m.removed) removed.insert(r);
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
