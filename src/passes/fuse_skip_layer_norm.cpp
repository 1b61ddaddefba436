// fuse_skip_layer_norm: a residual Add read by a LayerNormalization over the
// last axis becomes one kiln::SkipLayerNormalization, so the GPU reads the two
// addends once and writes the normalized rows (and the sum only when something
// else reads it) instead of writing the sum and reading it back:
//
//   %s: f16[2,8,4] = Add(%x, %r)                  %y: f16[2,8,4], %s: f16[2,8,4] =
//   %y: f16[2,8,4] = LayerNormalization(    ->        kiln.SkipLayerNormalization(%x, %r, %g, %b)
//        %s, %g, %b) {axis=-1}                        {axis=-1, epsilon=1e-05}
//   %z: f16[2,8,4] = MatMul(%s, %w)               %z: f16[2,8,4] = MatMul(%s, %w)
//
// A post-LN block (BERT's) reads only the LayerNorm, so the sum is not
// written there; a pre-LN one (GPT-2's, ViT's) reads the sum too (the
// residual stream), so it is output 1. The residual Adds of those three
// models follow a projection and are its kiln.FusedMatMul's residual by the
// time this runs (fuse_matmul_bias_activation), which leaves the Adds of
// other producers here. The Add's addends must have one dtype and one shape, known at
// build time (fixed or symbolic dims): a broadcasting Add does not fuse. The
// LayerNorm must read the Add's output as X, normalize its last axis (axis -1
// or rank - 1), have constant [C] Scale and B of X's dtype (C the last dim),
// and no Mean/InvStdDev that anything reads. When several LayerNorms read one
// Add, the first fuses and the others read the sum.
//
// The Add becomes the fused node (its addends are ready there, and every
// reader of the sum or the LayerNorm comes after it); values keep their names.
// It runs on the cuda backend after assign_precision (both ops are on its
// 16-bit list, so they meet in the same dtype) and before fuse_elementwise,
// which would otherwise take the Add into an NVRTC program first.
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

// A constant [c] vector of dtype `t`.
bool is_param(const Value* v, const Dim& c, DType t) {
  return v && v->constant && v->type.dtype == t && v->constant->dtype() == t && v->constant->rank() == 1 &&
         c.is_fixed() && v->constant->dim(0) == c.value;
}

// The Add whose output `ln` (a LayerNormalization) normalizes and which may
// become a SkipLayerNormalization with it; null when the pair does not fuse.
Node* fusable_add(const Graph& g, const Node& ln, const std::set<const Node*>& taken) {
  Value* s = ln.input(0);
  Node* add = pass_util::producer_of(s, "Add");
  if (!add || taken.count(add) || add->inputs.size() != 2 || ln.outputs.empty() || !ln.outputs[0]) return nullptr;
  const Value *a = add->input(0), *b = add->input(1);
  if (!a || !b || !s->type.is_tensor() || !is_float(s->type.dtype) || !pass_util::fully_named(s->type.shape))
    return nullptr;
  for (const Value* v : {a, b})
    if (!v->type.is_tensor() || v->type.dtype != s->type.dtype || !(v->type.shape == s->type.shape)) return nullptr;
  const int64_t rank = s->type.shape.rank();
  const int64_t axis = ln.attr_int("axis", -1);
  if (rank < 1 || (axis != -1 && axis != rank - 1)) return nullptr;
  const Dim& c = s->type.shape[rank - 1];
  if (!is_param(ln.input(1), c, s->type.dtype) || (ln.input(2) && !is_param(ln.input(2), c, s->type.dtype)))
    return nullptr;
  if (ln.outputs[0]->type.dtype != s->type.dtype) return nullptr;
  for (size_t i = 1; i < ln.outputs.size(); ++i)
    if (ln.outputs[i] && (is_graph_output(g, ln.outputs[i]) || !g.users(ln.outputs[i]).empty())) return nullptr;
  return add;
}

// `add` becomes the fused node; `ln` goes.
void rewrite(const Graph& g, Node& add, Node& ln) {
  Value* sum = add.outputs[0];
  Value* y = ln.outputs[0];
  bool sum_read = is_graph_output(g, sum);
  for (const Node* reader : g.users(sum)) sum_read |= reader != &ln;
  add.op_type = "SkipLayerNormalization";
  add.domain = "kiln";
  add.opset = 0;
  add.name = ln.name.empty() ? add.name : ln.name;
  add.inputs = {add.inputs[0], add.inputs[1], ln.inputs[1], ln.input(2)};
  if (!add.inputs[3]) add.inputs.pop_back();
  add.attrs.clear();
  add.attrs["axis"] = Attribute::of_int(-1);
  add.attrs["epsilon"] = Attribute::of_float(ln.attr_float("epsilon", 1e-5f));
  if (auto it = ln.metadata.find("kiln.precision"); it != ln.metadata.end()) add.metadata[it->first] = it->second;
  add.metadata["kiln.fused"] = "Add+LayerNormalization";
  add.outputs = {y};
  y->producer = &add;
  y->producer_output = 0;
  if (sum_read) {
    add.outputs.push_back(sum);
    sum->producer_output = 1;
  } else {
    sum->producer = nullptr;
  }
}

}  // namespace

Status fuse_skip_layer_norm(Graph& graph, PassContext&) {
  std::set<const Node*> taken;
  std::vector<std::pair<Node*, Node*>> pairs;  // (Add, LayerNormalization)
  for (const auto& np : graph.nodes()) {
    Node& ln = *np;
    if (!ln.domain.empty() || ln.op_type != "LayerNormalization") continue;
    Node* add = fusable_add(graph, ln, taken);
    if (!add) continue;
    taken.insert(add);
    pairs.emplace_back(add, &ln);
  }
  std::set<const Node*> removed;
  for (auto [add, ln] : pairs) {
    rewrite(graph, *add, *ln);
    removed.insert(ln);
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
