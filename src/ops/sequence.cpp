// Sequences (of tensors) and optionals: building, reading and editing them,
// SplitToSequence / ConcatFromSequence between tensors and sequences, and
// SequenceMap, which runs a body over each element.
#include <fmt/format.h>

#include "ops/infer_util.h"
#include "ops/type_unify.h"

namespace kiln {
namespace {

// The element type of sequence input i (an unknown tensor when not known).
Expected<Type> seq_elem(const InferContext& ctx, size_t i) {
  const Type& t = ctx.input_type(i);
  if (t.kind != Type::Kind::kSequence)
    return invalid_model("{}: input {} must be a sequence, got {}", ctx.node().op_type, i, t.to_string());
  return t.elem ? *t.elem : Type();
}

// A scalar by the spec; [1] is accepted too, as exporters write it.
Status require_position(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return Status::ok();
  const Type& t = ctx.input_type(i);
  if (!t.is_tensor() || (t.dtype != DType::kI32 && t.dtype != DType::kI64 && t.dtype != DType::kUndefined) ||
      (t.shape.is_fixed() && t.shape.numel() != 1))
    return invalid_model("{}: position must be one i32 or i64, got {}", ctx.node().op_type, t.to_string());
  return Status::ok();
}

Status infer_sequence_construct(InferContext& ctx) {
  Type elem = ctx.input_type(0);
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.input_type(i).is_tensor()) return invalid_model("SequenceConstruct: input {} must be a tensor", i);
    if (ctx.input_dtype(i) != ctx.input_dtype(0))
      return invalid_model("SequenceConstruct: inputs must share one dtype, got {} and {}",
                           dtype_name(ctx.input_dtype(0)), dtype_name(ctx.input_dtype(i)));
    elem = unify_types(elem, ctx.input_type(i));
  }
  ctx.set_output(0, Type::sequence_of(std::move(elem)));
  return Status::ok();
}

Status infer_sequence_empty(InferContext& ctx) {
  int64_t dt = ctx.attr_int("dtype", static_cast<int64_t>(DType::kF32));
  if (!dtype_is_known(static_cast<int>(dt))) return invalid_model("SequenceEmpty: dtype {} is not an ONNX dtype", dt);
  ctx.set_output(0, Type::sequence_of(Type::tensor(static_cast<DType>(dt), Shape())));
  return Status::ok();
}

Status infer_sequence_at(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Type elem, seq_elem(ctx, 0));
  KILN_RETURN_IF_ERROR(require_position(ctx, 1));
  ctx.set_output(0, std::move(elem));
  return Status::ok();
}

Status infer_sequence_insert(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Type elem, seq_elem(ctx, 0));
  KILN_RETURN_IF_ERROR(require_position(ctx, 2));
  const Type& t = ctx.input_type(1);
  if (!t.is_tensor()) return invalid_model("SequenceInsert: the inserted value must be a tensor");
  if (elem.dtype != DType::kUndefined && t.dtype != DType::kUndefined && elem.dtype != t.dtype)
    return invalid_model("SequenceInsert: cannot insert {} into a sequence of {}", dtype_name(t.dtype),
                         dtype_name(elem.dtype));
  ctx.set_output(0, Type::sequence_of(unify_types(elem, t)));
  return Status::ok();
}

Status infer_sequence_erase(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Type elem, seq_elem(ctx, 0));
  KILN_RETURN_IF_ERROR(require_position(ctx, 1));
  ctx.set_output(0, ctx.input_type(0));
  return Status::ok();
}

Status infer_sequence_length(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Type elem, seq_elem(ctx, 0));
  ctx.set_output(0, DType::kI64, Shape(Dims{}));
  return Status::ok();
}

// The element shape of SplitToSequence: the input's with the split axis
// resized (or removed), fixed where every piece has the same length.
Status infer_split_to_sequence(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "SplitToSequence"));
  const Shape& in = ctx.input_shape(0);
  if (!in.has_rank()) {
    ctx.set_output(0, Type::sequence_of(Type::tensor(ctx.input_dtype(0), Shape())));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.attr_int("axis", 0), in.rank()));
  Dims d = *in.dims;
  const Dim& len = d[static_cast<size_t>(axis)];
  if (!ctx.has_input(1)) {
    if (ctx.attr_int("keepdims", 1) == 0)
      d.erase(d.begin() + axis);
    else
      d[static_cast<size_t>(axis)] = Dim(1);
  } else {
    auto split = ctx.input_ints(1);
    Dim piece = Dim::unknown();
    if (split && ctx.input_shape(1).rank() == 0 && !split->empty()) {
      int64_t s = (*split)[0];
      if (s <= 0) return invalid_model("SplitToSequence: split {} must be positive", s);
      if (len.is_fixed() && len.value % s == 0) piece = Dim(s);
      if (len.is_fixed() && len.value <= s) piece = len;
    } else if (split && !split->empty() &&
               std::all_of(split->begin(), split->end(), [&](int64_t s) { return s == (*split)[0]; })) {
      piece = Dim((*split)[0]);
    }
    d[static_cast<size_t>(axis)] = piece;
  }
  ctx.set_output(0, Type::sequence_of(Type::tensor(ctx.input_dtype(0), Shape(std::move(d)))));
  return Status::ok();
}

Status infer_concat_from_sequence(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Type elem, seq_elem(ctx, 0));
  bool new_axis = ctx.attr_int("new_axis", 0) != 0;
  if (!ctx.node().has_attr("axis")) return invalid_model("ConcatFromSequence: attribute 'axis' is required");
  if (!elem.shape.has_rank()) {
    ctx.set_output(0, elem.dtype, Shape());
    return Status::ok();
  }
  Dims d = *elem.shape.dims;
  int64_t rank = static_cast<int64_t>(d.size()) + (new_axis ? 1 : 0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.attr_int("axis", 0), rank));
  // The number of elements (and so the joined length) is only known at run time.
  if (new_axis)
    d.insert(d.begin() + axis, ctx.new_symbol("count"));
  else
    d[static_cast<size_t>(axis)] = ctx.new_symbol("length");
  ctx.set_output(0, elem.dtype, Shape(std::move(d)));
  return Status::ok();
}

Status infer_sequence_map(InferContext& ctx) {
  const Attribute* a = ctx.node().attr("body");
  if (!a || !a->g) return invalid_model("SequenceMap: attribute 'body' (a graph) is missing");
  const Graph& body = *a->g;
  if (body.inputs.size() != ctx.num_inputs() || body.outputs.size() != ctx.num_outputs())
    return invalid_model("SequenceMap: the body has {} inputs and {} outputs, the node {} and {}", body.inputs.size(),
                         body.outputs.size(), ctx.num_inputs(), ctx.num_outputs());
  KILN_ASSIGN_OR_RETURN(Type first, seq_elem(ctx, 0));
  for (size_t i = 0; i < ctx.num_outputs(); ++i) ctx.set_output(i, Type::sequence_of(body.outputs[i]->type));
  return Status::ok();
}

Status infer_optional(InferContext& ctx) {
  if (ctx.has_input(0)) {
    ctx.set_output(0, Type::optional_of(ctx.input_type(0)));
    return Status::ok();
  }
  const Attribute* t = ctx.node().attr("type");
  if (!t || t->kind != Attribute::Kind::kType)
    return invalid_model("Optional without an input needs the attribute 'type'");
  ctx.set_output(0, Type::optional_of(t->type));
  return Status::ok();
}

Status infer_optional_has_element(InferContext& ctx) {
  ctx.set_output(0, DType::kBool, Shape(Dims{}));
  return Status::ok();
}

// Since opset 18 the input may also be a plain tensor or sequence (returned as is).
Status infer_optional_get_element(InferContext& ctx) {
  const Type& t = ctx.input_type(0);
  ctx.set_output(0, t.kind == Type::Kind::kOptional ? (t.elem ? *t.elem : Type()) : t);
  return Status::ok();
}

void op(const char* name, int since, int min_in, int max_in, InferFn fn, int min_out = 1, int max_out = 1) {
  OpRegistration(OpSchema{.name = name,
                          .since_opset = since,
                          .min_inputs = min_in,
                          .max_inputs = max_in,
                          .min_outputs = min_out,
                          .max_outputs = max_out,
                          .infer = std::move(fn)});
}

[[maybe_unused]] const bool registered = [] {
  op("SequenceConstruct", 11, 1, -1, infer_sequence_construct);
  op("SequenceEmpty", 11, 0, 0, infer_sequence_empty);
  op("SequenceAt", 11, 2, 2, infer_sequence_at);
  op("SequenceInsert", 11, 2, 3, infer_sequence_insert);
  op("SequenceErase", 11, 1, 2, infer_sequence_erase);
  op("SequenceLength", 11, 1, 1, infer_sequence_length);
  op("SplitToSequence", 11, 1, 2, infer_split_to_sequence);
  op("ConcatFromSequence", 11, 1, 1, infer_concat_from_sequence);
  op("SequenceMap", 17, 1, -1, infer_sequence_map, 1, -1);
  op("Optional", 15, 0, 1, infer_optional);
  op("OptionalHasElement", 15, 0, 1, infer_optional_has_element);
  op("OptionalGetElement", 15, 1, 1, infer_optional_get_element);
  return true;
}();

}  // namespace
}  // namespace kiln
