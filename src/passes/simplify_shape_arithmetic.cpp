// simplify_shape_arithmetic: removes ops that do nothing to their input, once
// shape inference and fold_constants have run:
//   Cast to the input's own dtype, Expand to the input's own shape, Slice
//   covering the whole input with step 1, Concat of one input, Dropout in
//   inference mode whose mask nobody reads, Pad with all-zero pads.
//
//   %a: f32[batch,3] = Cast(%x) {to=1}                %b: f32[batch,3] = Relu(%x)
//   %b: f32[batch,3] = Relu(%a)               ->      return %b
//   return %b
//
// Shape -> Gather -> ... chains whose result is fully fixed (including i32
// results, scalars and Size) and Casts of constants are already constants
// after fold_constants, which materializes every fully fixed shape_value and
// runs every node whose inputs are known; chains whose contents stay symbolic
// are left alone (they are computed at run time). A no-op whose output is a
// graph output stays, so the output's name keeps being produced.
#include <limits>
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

// Whether a node's output type is exactly its input's (dtype, and a shape with no unknown dims).
bool same_type(const Value* in, const Value* out) {
  return in && out && in->type.is_tensor() && out->type.is_tensor() && in->type.dtype == out->type.dtype &&
         pass_util::fully_named(in->type.shape) && in->type.shape == out->type.shape;
}

std::optional<std::vector<int64_t>> const_ints(const Value* v) {
  if (!v || !v->constant) return std::nullopt;
  auto r = v->constant->to_i64_vector();
  if (!r) return std::nullopt;
  return *r;
}

// Every sliced axis starts at 0 (or before it), ends at or past the end, with step 1.
bool slice_covers_input(const Node& n) {
  const Shape& shape = n.inputs[0]->type.shape;
  auto starts = const_ints(n.input(1)), ends = const_ints(n.input(2));
  if (!starts || !ends || starts->size() != ends->size() || !shape.has_rank()) return false;
  auto rank = shape.rank();
  std::vector<int64_t> axes(starts->size()), steps(starts->size(), 1);
  for (size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<int64_t>(i);
  if (n.input(3) && !(axes = const_ints(n.input(3)).value_or(std::vector<int64_t>{})).size()) return false;
  if (n.input(4) && !(steps = const_ints(n.input(4)).value_or(std::vector<int64_t>{})).size()) return false;
  if (axes.size() != starts->size() || steps.size() != starts->size()) return false;
  // "Past the end" of a symbolic dim can only be known for huge ends (INT64_MAX, INT32_MAX).
  const int64_t huge = std::numeric_limits<int32_t>::max();
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t axis = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (axis < 0 || axis >= rank || steps[i] != 1) return false;
    const Dim& d = shape[static_cast<size_t>(axis)];
    int64_t s = (*starts)[i], e = (*ends)[i];
    bool start_ok = s == 0 || (d.is_fixed() && s <= -d.value);
    bool end_ok = e >= huge || (d.is_fixed() && e >= d.value);
    if (!start_ok || !end_ok) return false;
  }
  return true;
}

bool pads_all_zero(const Node& n) {
  auto pads = const_ints(n.input(1));
  if (!pads) return false;
  for (int64_t p : *pads)
    if (p != 0) return false;
  return true;
}

bool dropout_is_identity(const Graph& g, const Node& n) {
  if (const Value* mode = n.input(2)) {
    auto m = const_ints(mode);
    if (!m && mode->constant && mode->constant->dtype() == DType::kBool && mode->constant->numel() == 1)
      m = std::vector<int64_t>{*mode->constant->data<uint8_t>()};
    if (!m || m->size() != 1 || (*m)[0] != 0) return false;
  }
  const Value* mask = n.output(1);
  return !mask || (!is_graph_output(g, mask) && g.users(mask).empty());
}

bool is_noop(const Graph& g, const Node& n) {
  const std::string& op = n.op_type;
  if (!n.domain.empty() || !n.input(0) || !n.output(0)) return false;
  if (op == "Dropout") return same_type(n.inputs[0], n.outputs[0]) && dropout_is_identity(g, n);
  if (n.outputs.size() != 1 || !same_type(n.inputs[0], n.outputs[0])) return false;
  if (op == "Cast") return true;
  if (op == "Expand") return true;
  if (op == "Concat") return n.inputs.size() == 1;
  if (op == "Slice") return slice_covers_input(n);
  if (op == "Pad") return pads_all_zero(n);
  return false;
}

}  // namespace

Status simplify_shape_arithmetic(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  for (const auto& np : graph.nodes())
    if (is_noop(graph, *np)) pass_util::forward(graph, np->outputs[0], np->inputs[0], removed, np.get());
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
