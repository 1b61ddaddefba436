// sink_transposes: a Transpose read by an elementwise op moves below it, so
// that it can meet the inverse Transpose further down and cancel
// (eliminate_transposes composes the two into the identity). This is what
// makes a channels-last region out of NHWC convolutions: each one is wrapped
// in NCHW->NHWC and NHWC->NCHW Transposes, and the Relu / residual Add
// between two convolutions would otherwise keep every pair apart.
//
//   %t: f32[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}    %r_inner: f32[1,2,4,4] = Relu(%x)
//   %u: f32[1,4,4,2] = Transpose(%y) {perm=[0,2,3,1]}    %s_inner: f32[1,2,4,4] = Add(%r_inner, %y)
//   %r: f32[1,4,4,2] = Relu(%t)                      ->  %s: f32[1,4,4,2] = Transpose(%s_inner)
//   %s: f32[1,4,4,2] = Add(%r, %u)                                          {perm=[0,2,3,1]}
//   return %s                                            return %s
//
// A Concat whose parts all come from under the same Transpose joins them
// before it, along the permuted axis; a Reduce* that keeps its rank reduces
// the permuted axes (a ReduceMean head or squeeze-excitation after NHWC
// layers: the Transpose left below is of the reduced tensor).
//
// An operand of a binary op may instead be a constant (permuted here), a
// value broadcast from one element (left as it is), or a value at most 1/16
// the output's size (a Transpose is put on it: a squeeze-excitation scale).
// A Transpose only moves when every other reader of its output is itself a
// Transpose (those compose with it), so the graph never holds more
// transposes of large tensors than before. The op's output keeps its name:
// the new Transpose below produces it.
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

// Reductions whose axes are input 1 (a constant, or absent: all of them).
const std::set<std::string> kReduce = {"ReduceL1",   "ReduceL2",  "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                       "ReduceMean", "ReduceMin", "ReduceProd",   "ReduceSum",       "ReduceSumSquare"};
const std::set<std::string> kBinary = {
    "Add",         "Sub", "Mul", "Div", "Pow",  "Max", "Min", "Equal", "Greater", "Less", "GreaterOrEqual",
    "LessOrEqual", "And", "Or",  "Xor", "Where"};

class Sinker {
 public:
  explicit Sinker(Graph& g) : g_(g) {}

  // One sweep over the nodes; whether anything moved.
  bool sweep() {
    bool changed = false;
    const size_t n = g_.nodes().size();
    for (size_t i = 0; i < n; ++i) changed |= try_sink(*g_.nodes()[i]);
    if (changed) pass_util::sort_topologically(g_);
    return changed;
  }

 private:
  // How operand `v` of the rewritten op is read: from under a Transpose of
  // the same perm, as it is (one element), permuted (a constant), or through
  // a new Transpose (a small value).
  struct Operand {
    Value* source = nullptr;
    Node* transpose = nullptr;  // the Transpose it came from
    std::optional<Tensor> constant;
    bool add_transpose = false;
  };

  // Whether every reader of `t`'s output other than `op` is a Transpose.
  bool others_are_transposes(const Node& t, const Node& op) const {
    for (const Node* u : g_.users(t.outputs[0]))
      if (u != &op && !pass_util::transpose_perm(*u)) return false;
    return !is_graph_output(g_, t.outputs[0]);
  }

  std::optional<Operand> operand(Value* v, const Node& op, const std::vector<int64_t>& perm, int64_t out_numel) {
    Operand o;
    if (Node* t = v->producer; t && pass_util::transpose_perm(*t) == perm) {
      // A Transpose of a Transpose composes first (eliminate_transposes).
      const Value* in = t->input(0);
      if (in && in->producer && pass_util::transpose_perm(*in->producer)) return std::nullopt;
      if (!others_are_transposes(*t, op)) return std::nullopt;
      o.source = t->inputs[0];
      o.transpose = t;
      return o;
    }
    if (!v->type.is_tensor() || !v->type.shape.has_rank()) return std::nullopt;
    std::optional<int64_t> numel = v->type.shape.numel();
    if (numel && *numel == 1) {  // broadcasts the same in any layout
      o.source = v;
      return o;
    }
    if (v->type.shape.rank() != static_cast<int64_t>(perm.size())) return std::nullopt;
    if (v->constant) {
      o.constant = v->constant->transposed(pass_util::inverse_perm(perm));
      if (!o.constant->is_valid()) return std::nullopt;
      o.source = v;
      return o;
    }
    if (!numel || out_numel < 0 || *numel * 16 > out_numel) return std::nullopt;
    o.source = v;
    o.add_transpose = true;
    return o;
  }

  bool try_sink(Node& op) {
    if (!op.domain.empty() || op.outputs.size() != 1 || !op.outputs[0]) return false;
    const bool unary = pass_util::is_unary_elementwise(op);
    const bool concat = op.op_type == "Concat";
    const bool reduce = kReduce.count(op.op_type) != 0;
    if (!unary && !concat && !reduce && !kBinary.count(op.op_type)) return false;
    if (reduce && op.attr_int("keepdims", 1) == 0) return false;
    const size_t arity = unary || reduce ? 1 : op.inputs.size();
    // The perm comes from the first operand that is a Transpose.
    std::optional<std::vector<int64_t>> perm;
    for (size_t i = 0; i < arity && !perm; ++i)
      if (op.input(i) && op.input(i)->producer) perm = pass_util::transpose_perm(*op.input(i)->producer);
    if (!perm) return false;
    Value* out = op.outputs[0];
    if (!out->type.is_tensor() || out->type.shape.rank() != static_cast<int64_t>(perm->size())) return false;
    const int64_t out_numel = out->type.shape.numel().value_or(-1);

    std::vector<Operand> ops;
    for (size_t i = 0; i < arity; ++i) {
      if (!op.input(i)) return false;
      std::optional<Operand> o = operand(op.input(i), op, *perm, out_numel);
      // Concat joins along one axis: every part must come from under the same perm.
      if (!o || (concat && !o->transpose)) return false;
      ops.push_back(std::move(*o));
    }
    if (concat) {
      // Output dim k of the transposed parts is dim perm[k] of the parts.
      const int64_t rank = static_cast<int64_t>(perm->size());
      int64_t axis = op.attr_int("axis", 0);
      if (axis < 0) axis += rank;
      if (axis < 0 || axis >= rank) return false;
      op.attrs["axis"] = Attribute::of_int((*perm)[static_cast<size_t>(axis)]);
    }
    // Output dim k of the transposed input is dim perm[k] of the input.
    std::optional<Tensor> axes;
    if (reduce && op.input(1)) {
      if (!op.input(1)->constant) return false;
      Expected<std::vector<int64_t>> given = op.input(1)->constant->to_i64_vector();
      if (!given.is_ok()) return false;
      const int64_t rank = static_cast<int64_t>(perm->size());
      std::vector<int64_t> mapped;
      for (int64_t a : *given) {
        if (a < 0) a += rank;
        if (a < 0 || a >= rank) return false;
        mapped.push_back((*perm)[static_cast<size_t>(a)]);
      }
      axes = Tensor::from_vector(DType::kI64, {static_cast<int64_t>(mapped.size())}, mapped);
    }
    // Clip's bounds and the like (inputs past the first of a unary op) must
    // be scalars; a reduction's axes are mapped above.
    for (size_t i = reduce ? op.inputs.size() : arity; i < op.inputs.size(); ++i) {
      const Value* b = op.input(i);
      if (b && (!b->type.shape.has_rank() || b->type.shape.numel().value_or(2) != 1)) return false;
    }

    const std::vector<int64_t> inv = pass_util::inverse_perm(*perm);
    for (size_t i = 0; i < arity; ++i) {
      Operand& o = ops[i];
      if (o.constant) {
        op.inputs[i] = pass_util::add_constant(g_, op.input(i)->name, std::move(*o.constant));
      } else if (o.add_transpose) {
        op.inputs[i] = pass_util::add_transpose(g_, o.source, inv, "_permuted");
      } else {
        op.inputs[i] = o.source;
      }
    }
    if (axes) op.inputs[1] = pass_util::add_constant(g_, op.input(1)->name, std::move(*axes));
    // The op now computes in the untransposed layout; a Transpose below it
    // produces its old output.
    pass_util::transpose_output(g_, op, *perm, "_inner");
    return true;
  }

  Graph& g_;
};

}  // namespace

Status sink_transposes(Graph& graph, PassContext& ctx) {
  Sinker sinker(graph);
  // Each sweep moves transposes strictly further down; cancelling pairs in
  // between frees the next ones (their other readers were the cancelled pair).
  for (int round = 0; round < 64 && sinker.sweep(); ++round) {
    KILN_RETURN_IF_ERROR(eliminate_transposes(graph, ctx));
    KILN_RETURN_IF_ERROR(eliminate_dead_nodes(graph, ctx));
  }
  return Status::ok();
}

}  // namespace kiln
