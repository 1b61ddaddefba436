// fold_shape_where: decides at build time the Where that PyTorch's exporter
// puts in front of Expand to turn -1 ("keep this dim") into 1, so that the
// Expand's output shape, and everything after it, is known symbolically. The
// shape vector S is a Concat of constants and of runtime dims (Shape ->
// Gather -> Unsqueeze, known as symbolic shape values). A dim is a size, never
// negative, so it never equals a negative constant; a constant piece is
// compared right away. The Where becomes a Concat of the same pieces, with
// the constant pieces replaced, and shapes are inferred again.
//
//   %s: i64[4] = Concat(%b, %m1, %t, %t) {axis=0}    (%b = [batch], %t = [seq], %m1 = [-1];
//                                                     also through a Reshape of %s to [4])
//   %e: bool[4] = Equal(%s, %neg)                    (%neg = [-1,-1,-1,-1])
//   %w: i64[4] = Where(%e, %ones, %s)        ->      %w: i64[4] = Concat(%b, %one, %t, %t) {axis=0}
//   %x: bool[?,?,?,?] = Expand(%mask, %w)            %x: bool[batch,1,seq,seq] = Expand(%mask, %w)
//
// DistilBERT's legacy export builds its attention mask this way; with the
// mask's shape unknown, fuse_attention could not match its attention.
#include <optional>
#include <utility>
#include <vector>

#include "ops/shape_inference.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

// Shape vectors are i64 (Expand, Reshape and Tile read i64).
std::optional<std::vector<int64_t>> int_constant(const Value* v) {
  if (!v || !v->constant || v->constant->dtype() != DType::kI64 || v->constant->rank() > 1) return std::nullopt;
  auto values = v->constant->to_i64_vector();
  if (!values.is_ok()) return std::nullopt;
  return *values;
}

// Element i of a constant of n elements, or of a one-element one (broadcast).
int64_t element(const std::vector<int64_t>& v, size_t i) { return v.size() == 1 ? v[0] : v[i]; }

// `v`, or the input of the Reshape of a vector to a vector that made it (the
// exporter flattens the Concat with Reshape(S, [-1])).
const Value* through_vector_reshape(const Value* v) {
  const Node* r = pass_util::producer_of(v, "Reshape");
  if (!r || !r->input(0)) return v;
  const Shape &in = r->input(0)->type.shape, &out = v->type.shape;
  if (!in.has_rank() || !out.has_rank() || in.rank() != 1 || out.rank() != 1 || !(in[0] == out[0])) return v;
  return r->input(0);
}

// Rewrites `where` = Where(Equal(S, C), Y, S), S = Concat(...) or its vector
// Reshape, into a Concat when every element
// is decided; false when the node is not that pattern or an element is not.
bool fold(Graph& g, Node& where) {
  if (!where.domain.empty() || where.op_type != "Where" || where.inputs.size() != 3) return false;
  Value* s = where.inputs[2];
  const Node* eq = pass_util::producer_of(where.input(0), "Equal");
  const Node* concat = pass_util::producer_of(through_vector_reshape(s), "Concat");
  if (!eq || !concat || eq->inputs.size() != 2 || concat->attr_int("axis", 0) != 0) return false;
  const Value* c_value = eq->input(0) == s ? eq->input(1) : eq->input(1) == s ? eq->input(0) : nullptr;
  auto c = int_constant(c_value), y = int_constant(where.input(1));
  if (!c || !y || !s->type.shape.has_rank() || s->type.shape.rank() != 1 || !s->type.shape[0].is_fixed()) return false;
  const size_t n = static_cast<size_t>(s->type.shape[0].value);
  if ((c->size() != n && c->size() != 1) || (y->size() != n && y->size() != 1)) return false;

  // Per piece of the Concat: its new values (a constant) or itself (runtime dims).
  std::vector<std::pair<Value*, std::optional<std::vector<int64_t>>>> pieces;
  size_t at = 0;  // S's element index at the start of the piece
  for (Value* p : concat->inputs) {
    if (!p || !p->type.shape.has_rank() || p->type.shape.rank() != 1 || !p->type.shape[0].is_fixed()) return false;
    const size_t len = static_cast<size_t>(p->type.shape[0].value);
    if (at + len > n) return false;
    auto values = int_constant(p);
    if (values) {
      if (values->size() != len) return false;
      for (size_t i = 0; i < len; ++i)
        if ((*values)[i] == element(*c, at + i)) (*values)[i] = element(*y, at + i);
    } else {
      // Runtime dims: sizes, never equal to a negative constant.
      if (!p->shape_value || p->shape_value->size() != len) return false;
      for (size_t i = 0; i < len; ++i)
        if (element(*c, at + i) >= 0) return false;
    }
    pieces.emplace_back(p, std::move(values));
    at += len;
  }
  if (at != n) return false;
  std::vector<Value*> inputs;
  for (auto& [p, values] : pieces)
    inputs.push_back(values ? pass_util::add_constant(g, where.outputs[0]->name + ".piece", Tensor::vector_i64(*values))
                            : p);
  where.op_type = "Concat";
  where.inputs = std::move(inputs);
  where.attrs.clear();
  where.attrs["axis"] = Attribute::of_int(0);
  return true;
}

}  // namespace

Status fold_shape_where(Graph& graph, PassContext&) {
  bool changed = false;
  for (const auto& np : graph.nodes()) changed = fold(graph, *np) || changed;
  if (!changed) return Status::ok();
  // The Expand (and what follows) gets its shape from the Concat's contents.
  std::vector<Diagnostic> diags;
  infer_shapes(graph, diags);
  if (!diags.empty()) return internal_error("shapes after folding a Where: {}", diags[0].message);
  return Status::ok();
}

}  // namespace kiln
