// Elementwise ops: unary math, binary arithmetic with broadcasting,
// comparisons and logic. Each row is the op's whole definition in kiln.
#include <fmt/format.h>

#include "ops/infer_util.h"

namespace kiln {
namespace {

Status require_same_dtype(const InferContext& ctx) {
  DType first = DType::kUndefined;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i) || ctx.input_dtype(i) == DType::kUndefined) continue;
    if (first == DType::kUndefined) first = ctx.input_dtype(i);
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

void unary(const char* name, int since = 1) {
  OpRegistration(OpSchema{.name = name, .since_opset = since, .min_inputs = 1, .max_inputs = 1,
                          .infer = infer_same_as_input0});
}

void binary(const char* name, InferFn fn = infer_binary, int since = 1) {
  OpRegistration(OpSchema{.name = name, .since_opset = since, .min_inputs = 2, .max_inputs = 2, .infer = std::move(fn)});
}

[[maybe_unused]] const bool registered = [] {
  for (const char* op : {"Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Sqrt", "Relu", "Exp", "Log", "Tanh",
                         "Sigmoid", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh",
                         "Atanh", "Erf", "Sign", "Round", "Softsign", "Softplus", "Identity"})
    unary(op);
  binary("Add", [](InferContext& c) { return infer_arith(c, dim_add); });
  binary("Sub", [](InferContext& c) { return infer_arith(c, dim_sub); });
  binary("Mul", [](InferContext& c) { return infer_arith(c, dim_mul); });
  binary("Div", [](InferContext& c) { return infer_arith(c, dim_div); });
  binary("Pow", infer_broadcast);  // exponent may have another dtype
  for (const char* op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) binary(op, infer_compare);
  for (const char* op : {"And", "Or", "Xor"}) binary(op, infer_compare);
  OpRegistration(OpSchema{.name = "Not", .min_inputs = 1, .max_inputs = 1, .infer = infer_same_as_input0});
  return true;
}();

}  // namespace
}  // namespace kiln
