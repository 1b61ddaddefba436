// Sequence and optional kernels. Elements are shared, not copied: tensors
// are immutable once produced.
#include <numeric>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/axis_blocks.h"

namespace kiln {
namespace {

Expected<const std::vector<Tensor>*> sequence_input(const CpuKernelContext& ctx, size_t i) {
  const RunValue& v = ctx.input_value(i);
  if (v.kind != Type::Kind::kSequence) return invalid_argument("input {} must be a sequence", i);
  return &v.sequence;
}

// Reads the position input i, checks it against [-n, n - 1] (or [-n, n] when
// `may_be_end`), and makes it non-negative; `fallback` when absent.
Expected<int64_t> position(const CpuKernelContext& ctx, size_t i, int64_t n, bool may_be_end, int64_t fallback) {
  if (!ctx.has_input(i)) return fallback;
  KILN_ASSIGN_OR_RETURN(auto p, ctx.input(i).to_i64_vector());
  if (p.size() != 1) return invalid_argument("position must be a scalar, has {} elements", p.size());
  int64_t hi = may_be_end ? n : n - 1;
  if (p[0] < -n || p[0] > hi) return invalid_argument("position {} is out of range [{}, {}]", p[0], -n, hi);
  return p[0] < 0 ? p[0] + n : p[0];
}

Status run_sequence_construct(CpuKernelContext& ctx) {
  std::vector<Tensor> seq;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) seq.push_back(ctx.input(i));
  ctx.set_output(0, RunValue::of_sequence(std::move(seq)));
  return Status::ok();
}

Status run_sequence_empty(CpuKernelContext& ctx) {
  ctx.set_output(0, RunValue::of_sequence({}));
  return Status::ok();
}

Status run_sequence_at(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, sequence_input(ctx, 0));
  auto n = static_cast<int64_t>(seq->size());
  KILN_ASSIGN_OR_RETURN(int64_t p, position(ctx, 1, n, false, 0));
  ctx.set_output(0, (*seq)[static_cast<size_t>(p)]);
  return Status::ok();
}

Status run_sequence_insert(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, sequence_input(ctx, 0));
  auto n = static_cast<int64_t>(seq->size());
  KILN_ASSIGN_OR_RETURN(int64_t p, position(ctx, 2, n, true, n));
  const Tensor& t = ctx.input(1);
  if (!seq->empty() && (*seq)[0].dtype() != t.dtype())
    return invalid_argument("SequenceInsert: cannot insert {} into a sequence of {}", dtype_name(t.dtype()),
                            dtype_name((*seq)[0].dtype()));
  std::vector<Tensor> out = *seq;
  out.insert(out.begin() + p, t);
  ctx.set_output(0, RunValue::of_sequence(std::move(out)));
  return Status::ok();
}

Status run_sequence_erase(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, sequence_input(ctx, 0));
  auto n = static_cast<int64_t>(seq->size());
  if (n == 0) return invalid_argument("SequenceErase: the sequence is empty");
  KILN_ASSIGN_OR_RETURN(int64_t p, position(ctx, 1, n, false, n - 1));
  std::vector<Tensor> out = *seq;
  out.erase(out.begin() + p);
  ctx.set_output(0, RunValue::of_sequence(std::move(out)));
  return Status::ok();
}

Status run_sequence_length(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, sequence_input(ctx, 0));
  ctx.set_output(0, Tensor::scalar_i64(static_cast<int64_t>(seq->size())));
  return Status::ok();
}

// The lengths of the pieces SplitToSequence cuts a dim of `len` into.
Expected<std::vector<int64_t>> split_lengths(const CpuKernelContext& ctx, int64_t len) {
  if (!ctx.has_input(1)) return std::vector<int64_t>(static_cast<size_t>(len), 1);
  KILN_ASSIGN_OR_RETURN(auto split, ctx.input(1).to_i64_vector());
  if (ctx.input(1).rank() == 0) {
    int64_t s = split[0];
    if (s <= 0) return invalid_argument("SplitToSequence: split {} must be positive", s);
    std::vector<int64_t> out;
    for (int64_t at = 0; at < len; at += s) out.push_back(std::min(s, len - at));
    return out;
  }
  int64_t sum = 0;
  for (int64_t s : split) {
    if (s < 0) return invalid_argument("SplitToSequence: split holds a negative length {}", s);
    sum += s;
  }
  if (sum != len) return invalid_argument("SplitToSequence: split sums to {} but the axis has length {}", sum, len);
  return split;
}

Status run_split_to_sequence(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = ctx.node().attr_int("axis", 0);
  if (axis < 0) axis += x.rank();
  if (axis < 0 || axis >= x.rank()) return invalid_argument("SplitToSequence: axis is out of range");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> lengths, split_lengths(ctx, x.dim(axis)));
  bool squeeze = !ctx.has_input(1) && ctx.node().attr_int("keepdims", 1) == 0;
  std::vector<Tensor> seq;
  int64_t at = 0;
  for (int64_t len : lengths) {
    KILN_ASSIGN_OR_RETURN(Tensor piece, slice_along(x, axis, at, len));
    at += len;
    if (squeeze) {
      std::vector<int64_t> d = piece.dims();
      d.erase(d.begin() + axis);
      piece = piece.reshaped(std::move(d));
    }
    seq.push_back(std::move(piece));
  }
  ctx.set_output(0, RunValue::of_sequence(std::move(seq)));
  return Status::ok();
}

Status run_concat_from_sequence(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, sequence_input(ctx, 0));
  if (seq->empty()) return invalid_argument("ConcatFromSequence: the sequence is empty");
  bool new_axis = ctx.node().attr_int("new_axis", 0) != 0;
  int64_t rank = (*seq)[0].rank() + (new_axis ? 1 : 0);
  int64_t axis = ctx.node().attr_int("axis", 0);
  if (axis < -rank || axis >= rank) return invalid_argument("ConcatFromSequence: axis {} is out of range", axis);
  if (axis < 0) axis += rank;
  KILN_ASSIGN_OR_RETURN(Tensor out, new_axis ? stack_along(*seq, axis) : concat_along(*seq, axis));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status run_sequence_map(CpuKernelContext& ctx) {
  const Attribute* a = ctx.node().attr("body");
  if (!a || !a->g) return invalid_model("SequenceMap: attribute 'body' is missing");
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* first, sequence_input(ctx, 0));
  size_t n = first->size();
  for (size_t j = 1; j < ctx.num_inputs(); ++j) {
    const RunValue& v = ctx.input_value(j);
    if (v.kind == Type::Kind::kSequence && v.sequence.size() != n)
      return invalid_argument("SequenceMap: input {} has {} elements, input 0 has {}", j, v.sequence.size(), n);
  }
  std::vector<std::vector<Tensor>> outs(ctx.num_outputs());
  for (size_t i = 0; i < n; ++i) {
    std::vector<RunValue> in;
    for (size_t j = 0; j < ctx.num_inputs(); ++j) {
      const RunValue& v = ctx.input_value(j);
      in.push_back(v.kind == Type::Kind::kSequence ? RunValue::of(v.sequence[i]) : v);
    }
    KILN_ASSIGN_OR_RETURN(std::vector<RunValue> out, ctx.run_subgraph(*a->g, std::move(in)));
    for (size_t k = 0; k < outs.size() && k < out.size(); ++k) outs[k].push_back(std::move(out[k].tensor));
  }
  for (size_t k = 0; k < outs.size(); ++k)
    if (ctx.has_output(k)) ctx.set_output(k, RunValue::of_sequence(std::move(outs[k])));
  return Status::ok();
}

Status run_optional(CpuKernelContext& ctx) {
  RunValue v;
  v.kind = Type::Kind::kOptional;
  if (ctx.has_input(0)) {
    const RunValue& in = ctx.input_value(0);
    v.holds_sequence = in.kind == Type::Kind::kSequence;
    v.tensor = in.tensor;
    v.sequence = in.sequence;
  } else {
    v.present = false;
    const Attribute* t = ctx.node().attr("type");
    v.holds_sequence = t && t->type.kind == Type::Kind::kSequence;
  }
  ctx.set_output(0, std::move(v));
  return Status::ok();
}

Status run_optional_has_element(CpuKernelContext& ctx) {
  bool has = false;
  if (ctx.has_input(0)) {
    const RunValue& v = ctx.input_value(0);
    has = v.kind != Type::Kind::kOptional || v.present;
  }
  ctx.set_output(0, Tensor::from_vector<uint8_t>(DType::kBool, {}, {static_cast<uint8_t>(has)}));
  return Status::ok();
}

Status run_optional_get_element(CpuKernelContext& ctx) {
  const RunValue& v = ctx.input_value(0);
  if (v.kind != Type::Kind::kOptional) {
    ctx.set_output(0, v);
    return Status::ok();
  }
  if (!v.present) return invalid_argument("OptionalGetElement: the optional is empty");
  ctx.set_output(0, v.holds_sequence ? RunValue::of_sequence(v.sequence) : RunValue::of(v.tensor));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "SequenceConstruct", run_sequence_construct);
KILN_CPU_KERNEL("", "SequenceEmpty", run_sequence_empty);
KILN_CPU_KERNEL("", "SequenceAt", run_sequence_at);
KILN_CPU_KERNEL("", "SequenceInsert", run_sequence_insert);
KILN_CPU_KERNEL("", "SequenceErase", run_sequence_erase);
KILN_CPU_KERNEL("", "SequenceLength", run_sequence_length);
KILN_CPU_KERNEL("", "SplitToSequence", run_split_to_sequence);
KILN_CPU_KERNEL("", "ConcatFromSequence", run_concat_from_sequence);
KILN_CPU_KERNEL("", "SequenceMap", run_sequence_map);
KILN_CPU_KERNEL("", "Optional", run_optional);
KILN_CPU_KERNEL("", "OptionalHasElement", run_optional_has_element);
KILN_CPU_KERNEL("", "OptionalGetElement", run_optional_get_element);

}  // namespace kiln
