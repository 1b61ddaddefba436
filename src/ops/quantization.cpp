// Quantization: QuantizeLinear, DequantizeLinear (per tensor, per axis and
// blocked), DynamicQuantizeLinear and QLinearMatMul. QLinearConv lives with
// the convolutions in nn.cpp. Element conversions are in ir/quantize.h.
#include <fmt/format.h>

#include "ops/infer_util.h"

namespace kiln {
namespace {

// Granularity checks shared by QuantizeLinear and DequantizeLinear: the scale
// is a scalar, a 1-D tensor along `axis`, or (block_size > 0) x's shape with
// dim `axis` divided into blocks.
Status check_scale_shape(const InferContext& ctx, const char* op) {
  const Shape& x = ctx.input_shape(0);
  const Shape& s = ctx.input_shape(1);
  int64_t block = ctx.attr_int("block_size", 0);
  if (block < 0) return invalid_model("{}: block_size is {}, must be >= 0", op, block);
  if (!x.has_rank() || !s.has_rank()) return Status::ok();
  if (s.rank() == 0 || (block == 0 && s.rank() == 1 && s[0].is_fixed() && s[0].value == 1)) return Status::ok();
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.attr_int("axis", 1), x.rank()));
  if (block == 0) {
    if (s.rank() != 1) return invalid_model("{}: a per-axis scale must be 1-D, got {}", op, s.to_string());
    const Dim& d = x[static_cast<size_t>(axis)];
    if (d.is_fixed() && s[0].is_fixed() && d.value != s[0].value)
      return invalid_model("{}: scale has {} values but axis {} of x has size {}", op, s[0].value, axis, d.value);
    return Status::ok();
  }
  if (s.rank() != x.rank()) return invalid_model("{}: a blocked scale must have x's rank, got {}", op, s.to_string());
  for (int64_t i = 0; i < x.rank(); ++i) {
    const Dim& xd = x[static_cast<size_t>(i)];
    const Dim& sd = s[static_cast<size_t>(i)];
    if (!xd.is_fixed() || !sd.is_fixed()) continue;
    int64_t want = i == axis ? (xd.value + block - 1) / block : xd.value;
    if (sd.value != want)
      return invalid_model("{}: blocked scale dim {} is {}, expected {} (block_size {})", op, i, sd.value, want, block);
  }
  return Status::ok();
}

Status infer_quantize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(check_scale_shape(ctx, "QuantizeLinear"));
  DType out = DType::kU8;
  int64_t attr = ctx.attr_int("output_dtype", 0);
  if (ctx.has_input(2)) {
    out = ctx.input_dtype(2);
    if (attr != 0 && attr != static_cast<int64_t>(out))
      return invalid_model("QuantizeLinear: output_dtype {} differs from y_zero_point's dtype {}", attr,
                           dtype_name(out));
  } else if (attr != 0) {
    if (!dtype_is_known(static_cast<int>(attr)))
      return invalid_model("QuantizeLinear: output_dtype {} is unknown", attr);
    out = static_cast<DType>(attr);
  }
  ctx.set_output(0, out, ctx.input_shape(0));
  return Status::ok();
}

Status infer_dequantize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(check_scale_shape(ctx, "DequantizeLinear"));
  DType out = ctx.input_dtype(1);
  int64_t attr = ctx.attr_int("output_dtype", 0);
  if (attr != 0) {
    if (!dtype_is_known(static_cast<int>(attr)))
      return invalid_model("DequantizeLinear: output_dtype {} is unknown", attr);
    out = static_cast<DType>(attr);
  } else if (out == DType::kF8E8M0) {
    out = DType::kF32;
  }
  ctx.set_output(0, out, ctx.input_shape(0));
  return Status::ok();
}

Status infer_dynamic_quantize(InferContext& ctx) {
  ctx.set_output(0, DType::kU8, ctx.input_shape(0));
  ctx.set_output(1, DType::kF32, Shape(Dims{}));
  ctx.set_output(2, DType::kU8, Shape(Dims{}));
  return Status::ok();
}

// MatMul's shape rule (numpy matmul: 1-D operands promoted and dropped).
Expected<Shape> matmul_shape(const Shape& a, const Shape& b) {
  if (!a.has_rank() || !b.has_rank()) return Shape();
  if (a.rank() == 0 || b.rank() == 0) return invalid_model("QLinearMatMul: operands must not be scalars");
  Dims ad = *a.dims, bd = *b.dims;
  bool a_vec = ad.size() == 1, b_vec = bd.size() == 1;
  if (a_vec) ad.insert(ad.begin(), Dim(1));
  if (b_vec) bd.push_back(Dim(1));
  const Dim& k1 = ad.back();
  const Dim& k2 = bd[bd.size() - 2];
  if (k1.is_fixed() && k2.is_fixed() && k1.value != k2.value)
    return invalid_model("QLinearMatMul: inner dims differ: {} vs {}", k1.value, k2.value);
  Shape ab(Dims(ad.begin(), ad.end() - 2)), bb(Dims(bd.begin(), bd.end() - 2));
  KILN_ASSIGN_OR_RETURN(Shape batch, broadcast_shapes({&ab, &bb}));
  Dims out = *batch.dims;
  if (!a_vec) out.push_back(ad[ad.size() - 2]);
  if (!b_vec) out.push_back(bd.back());
  return Shape(std::move(out));
}

Status infer_qlinear_matmul(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Shape s, matmul_shape(ctx.input_shape(0), ctx.input_shape(3)));
  ctx.set_output(0, ctx.input_dtype(7), std::move(s));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(
      OpSchema{.name = "QuantizeLinear", .since_opset = 10, .min_inputs = 2, .max_inputs = 3, .infer = infer_quantize});
  OpRegistration(OpSchema{
      .name = "DequantizeLinear", .since_opset = 10, .min_inputs = 2, .max_inputs = 3, .infer = infer_dequantize});
  OpRegistration(OpSchema{.name = "DynamicQuantizeLinear",
                          .since_opset = 11,
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .min_outputs = 3,
                          .max_outputs = 3,
                          .infer = infer_dynamic_quantize});
  OpRegistration(OpSchema{
      .name = "QLinearMatMul", .since_opset = 10, .min_inputs = 8, .max_inputs = 8, .infer = infer_qlinear_matmul});
  return true;
}();

}  // namespace
}  // namespace kiln
