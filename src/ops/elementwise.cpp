// Elementwise ops: unary math, binary arithmetic with broadcasting,
// comparisons, logic, bitwise ops and the variadic Sum/Mean/Max/Min. Each row
// is the op's whole definition in kiln.
#include <fmt/format.h>

#include "ops/infer_util.h"
#include "ops/op_rows.h"

namespace kiln {
namespace {

Status require_same_dtype(const InferContext& ctx) {
  DType first = DType::kUndefined;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i) || ctx.input_dtype(i) == DType::kUndefined) continue;
    if (first == DType::kUndefined)
      first = ctx.input_dtype(i);
    else if (ctx.input_dtype(i) != first)
      return invalid_model("{} inputs must share one dtype, got {} and {}", ctx.node().op_type, dtype_name(first),
                           dtype_name(ctx.input_dtype(i)));
  }
  return Status::ok();
}

Status infer_binary(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_same_dtype(ctx));
  return infer_broadcast(ctx);
}

Status infer_compare(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_same_dtype(ctx));
  return infer_broadcast_bool(ctx);
}

Status infer_unary_bool(InferContext& ctx) {
  ctx.set_output(0, DType::kBool, ctx.input_shape(0));
  return Status::ok();
}

// Shape-arithmetic binary ops keep symbolic contents (e.g. seq*16 in Reshape chains).
Status infer_arith(InferContext& ctx, Dim (*fn)(const Dim&, const Dim&)) {
  KILN_RETURN_IF_ERROR(infer_binary(ctx));
  auto a = ctx.input_dims_value(0), b = ctx.input_dims_value(1);
  if (a && b && ctx.input_shape(0).rank() <= 1 && ctx.input_shape(1).rank() <= 1 &&
      (a->size() == b->size() || a->size() == 1 || b->size() == 1) && dtype_is_integer(ctx.input_dtype(0))) {
    size_t n = std::max(a->size(), b->size());
    Dims out;
    for (size_t i = 0; i < n; ++i) out.push_back(fn((*a)[a->size() == 1 ? 0 : i], (*b)[b->size() == 1 ? 0 : i]));
    ctx.set_output_shape_value(0, std::move(out));
  }
  return Status::ok();
}

// Before opset 7, binary ops broadcast only with broadcast=1, and `axis` placed
// B's dims at that axis of A instead of at the right. Numpy rules give the same
// result when B already lines up with A's trailing dims; a constant B that
// does not is reshaped with trailing 1s.
Status upgrade_legacy_broadcast(UpgradeContext& ctx) {
  Node& n = ctx.node();
  int64_t broadcast = n.attr_int("broadcast", 0);
  bool has_axis = n.has_attr("axis");
  int64_t axis = n.attr_int("axis", 0);
  n.attrs.erase("broadcast");
  n.attrs.erase("axis");
  n.attrs.erase("consumed_inputs");
  if (broadcast == 0 || !has_axis || n.inputs.size() < 2 || !n.inputs[0] || !n.inputs[1]) return Status::ok();
  const Value* a = n.inputs[0];
  Value* b = n.inputs[1];
  if (!a->type.shape.has_rank() || !b->type.shape.has_rank())
    return unsupported("{}: legacy broadcast with axis={} needs the ranks of both inputs", n.op_type, axis);
  int64_t ra = a->type.shape.rank(), rb = b->type.shape.rank();
  if (axis < 0) axis += ra;
  int64_t trailing = ra - axis - rb;
  if (trailing < 0)
    return invalid_model("{}: legacy broadcast axis {} does not fit ranks {} and {}", n.op_type, axis, ra, rb);
  if (trailing == 0) return Status::ok();
  if (!b->constant) return unsupported("{}: legacy broadcast with axis={} needs a constant B", n.op_type, axis);
  std::vector<int64_t> dims = b->constant->dims();
  dims.resize(dims.size() + static_cast<size_t>(trailing), 1);
  n.inputs[1] = ctx.add_constant(b->constant->reshaped(dims), "B");
  return Status::ok();
}

void binary(const char* name, InferFn fn = infer_binary, int since = 1) {
  add_op(name, 2, 2, std::move(fn), 1, {{7, upgrade_legacy_broadcast}}, since);
}

void variadic(const char* name) { add_op(name, 1, -1, infer_binary, 1, {{6, drop_consumed_inputs}}); }

// Floats with fmod=0 (numpy's mod) are allowed from opset 28 and read the same way before.
Status infer_mod(InferContext& ctx) {
  int64_t fmod = ctx.attr_int("fmod", 0);
  if (fmod != 0 && fmod != 1) return invalid_model("Mod: fmod must be 0 or 1, got {}", fmod);
  return infer_binary(ctx);
}

Status infer_bitshift(InferContext& ctx) {
  std::string dir = ctx.attr_string("direction", "");
  if (dir != "LEFT" && dir != "RIGHT")
    return invalid_model("BitShift: direction must be \"LEFT\" or \"RIGHT\", got \"{}\"", dir);
  return infer_binary(ctx);
}

[[maybe_unused]] const bool registered = [] {
  for (const char* op :
       {"Abs",     "Neg",   "Reciprocal", "Floor", "Ceil",  "Sqrt",     "Relu",     "Exp",      "Log",       "Tanh",
        "Sigmoid", "Sin",   "Cos",        "Tan",   "Asin",  "Acos",     "Atan",     "Sinh",     "Cosh",      "Asinh",
        "Acosh",   "Atanh", "Erf",        "Sign",  "Round", "Softsign", "Softplus", "Identity", "BitwiseNot"})
    add_unary_op(op);
  add_unary_op("IsNaN", 9, infer_unary_bool);
  add_unary_op("IsInf", 10, infer_unary_bool);
  binary("Add", [](InferContext& c) { return infer_arith(c, dim_add); });
  binary("Sub", [](InferContext& c) { return infer_arith(c, dim_sub); });
  binary("Mul", [](InferContext& c) { return infer_arith(c, dim_mul); });
  binary("Div", [](InferContext& c) { return infer_arith(c, dim_div); });
  binary("Pow", infer_broadcast);  // exponent may have another dtype
  binary("Mod", infer_mod, 10);
  binary("BitShift", infer_bitshift, 11);
  for (const char* op : {"BitwiseAnd", "BitwiseOr", "BitwiseXor"}) binary(op, infer_binary, 18);
  for (const char* op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) binary(op, infer_compare);
  for (const char* op : {"And", "Or", "Xor"}) binary(op, infer_compare);
  OpRegistration(OpSchema{.name = "Not", .min_inputs = 1, .max_inputs = 1, .infer = infer_same_as_input0});
  for (const char* op : {"Sum", "Mean", "Max", "Min"}) variadic(op);
  return true;
}();

}  // namespace
}  // namespace kiln
