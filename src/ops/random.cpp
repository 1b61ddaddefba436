// Random number ops. kiln's generator is its own (seeded, deterministic for a
// given seed); it cannot reproduce numpy's draws, so ONNX test cases that
// compare random values cannot pass.
#include <fmt/format.h>

#include "ops/infer_util.h"

namespace kiln {
namespace {

Expected<DType> dtype_attr(const InferContext& ctx, DType fallback, bool floats_only) {
  int64_t v = ctx.attr_int("dtype", static_cast<int64_t>(fallback));
  if (!dtype_is_known(static_cast<int>(v)) || (floats_only && !dtype_is_float(static_cast<DType>(v))))
    return invalid_model("{}: dtype {} is not {}", ctx.node().op_type, v,
                         floats_only ? "a float type" : "an ONNX dtype");
  return static_cast<DType>(v);
}

Status infer_random(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DType dt, dtype_attr(ctx, DType::kF32, true));
  const Attribute* shape = ctx.node().attr("shape");
  if (!shape || shape->kind != Attribute::Kind::kInts)
    return invalid_model("{}: attribute 'shape' is required", ctx.node().op_type);
  Dims d;
  for (int64_t v : shape->ints) {
    if (v < 0) return invalid_model("{}: shape holds a negative dim {}", ctx.node().op_type, v);
    d.emplace_back(v);
  }
  ctx.set_output(0, dt, Shape(std::move(d)));
  return Status::ok();
}

// The *Like ops and Bernoulli: the input's shape, the dtype attribute or the input's dtype.
Status infer_random_like(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, ctx.node().op_type.c_str()));
  bool floats_only = ctx.node().op_type != "Bernoulli";
  DType in = ctx.input_dtype(0);
  if (!ctx.node().has_attr("dtype") && ctx.node().op_type != "Bernoulli" && in != DType::kUndefined &&
      !dtype_is_float(in))
    return invalid_model("{}: without 'dtype' the input must be a float type, got {}", ctx.node().op_type,
                         dtype_name(in));
  KILN_ASSIGN_OR_RETURN(DType dt, dtype_attr(ctx, in == DType::kUndefined ? DType::kF32 : in,
                                             floats_only && ctx.node().has_attr("dtype")));
  ctx.set_output(0, dt, ctx.input_shape(0));
  return Status::ok();
}

Status infer_multinomial(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "Multinomial"));
  KILN_ASSIGN_OR_RETURN(DType dt, dtype_attr(ctx, DType::kI32, false));
  if (dt != DType::kI32 && dt != DType::kI64) return invalid_model("Multinomial: dtype must be i32 or i64");
  int64_t samples = ctx.attr_int("sample_size", 1);
  if (samples < 1) return invalid_model("Multinomial: sample_size {} must be positive", samples);
  const Shape& in = ctx.input_shape(0);
  if (in.has_rank() && in.rank() != 2)
    return invalid_model("Multinomial: input must be [batch, classes], got {}", in.to_string());
  ctx.set_output(0, dt, Shape(Dims{in.has_rank() ? in[0] : Dim::unknown(), Dim(samples)}));
  return Status::ok();
}

void op(const char* name, int since, int inputs, InferFn fn) {
  OpRegistration(
      OpSchema{.name = name, .since_opset = since, .min_inputs = inputs, .max_inputs = inputs, .infer = std::move(fn)});
}

[[maybe_unused]] const bool registered = [] {
  op("RandomUniform", 1, 0, infer_random);
  op("RandomNormal", 1, 0, infer_random);
  op("RandomUniformLike", 1, 1, infer_random_like);
  op("RandomNormalLike", 1, 1, infer_random_like);
  op("Bernoulli", 15, 1, infer_random_like);
  op("Multinomial", 7, 1, infer_multinomial);
  return true;
}();

}  // namespace
}  // namespace kiln
