// Element type conversions: Cast, CastLike and BitCast. The conversions
// themselves live in ir/element_cast.h so other kernels can reuse them.
#include <fmt/format.h>

#include "ir/float8.h"
#include "ops/tensor_infer.h"

namespace kiln {
namespace {

bool castable(DType t) {
  return t != DType::kUndefined && t != DType::kC64 && t != DType::kC128 && dtype_is_known(static_cast<int>(t));
}

Status check_cast_attrs(const InferContext& ctx) {
  std::string mode = ctx.attr_string("round_mode", "up");
  if (mode != "up" && mode != "down" && mode != "nearest")
    return invalid_model("{}: round_mode '{}' must be up, down or nearest", ctx.node().op_type, mode);
  return Status::ok();
}

// Casts between integer types keep a shape value's symbols (Shape -> Cast(int32) -> ...).
void forward_int_shape_value(InferContext& ctx, DType to) {
  if (dtype_is_integer(ctx.input_dtype(0)) && dtype_is_integer(to) && dtype_bits(to) >= 32)
    if (auto v = ctx.input_dims_value(0)) ctx.set_output_shape_value(0, *v);
}

Status infer_cast_to(InferContext& ctx, DType to) {
  KILN_RETURN_IF_ERROR(check_cast_attrs(ctx));
  if (to != DType::kUndefined && !castable(to))
    return unsupported("{}: casting to {} is not supported", ctx.node().op_type, dtype_name(to));
  ctx.set_output(0, to, ctx.input_shape(0));
  forward_int_shape_value(ctx, to);
  return Status::ok();
}

Status infer_cast(InferContext& ctx) {
  if (!ctx.node().has_attr("to")) return invalid_model("Cast: attribute 'to' is required");
  int64_t to = ctx.attr_int("to", 0);
  if (!dtype_is_known(static_cast<int>(to))) return invalid_model("Cast: 'to' = {} is not an ONNX dtype", to);
  return infer_cast_to(ctx, static_cast<DType>(to));
}

Status upgrade_cast(UpgradeContext& ctx) {
  // Cast-1 named the target type with a string ("FLOAT", "INT64").
  Node& n = ctx.node();
  const Attribute* to = n.attr("to");
  if (!to || to->kind != Attribute::Kind::kString) return Status::ok();
  std::string name = to->s;
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto t = dtype_from_name(name);
  if (!t) return invalid_model("Cast: 'to' = '{}' is not a dtype name", to->s);
  n.attrs["to"] = Attribute::of_int(static_cast<int64_t>(*t));
  return Status::ok();
}

Status infer_bitcast(InferContext& ctx) {
  int64_t to_value = ctx.attr_int("to", 0);
  if (!dtype_is_known(static_cast<int>(to_value)))
    return invalid_model("BitCast: 'to' = {} is not an ONNX dtype", to_value);
  auto to = static_cast<DType>(to_value);
  DType from = ctx.input_dtype(0);
  if (to == DType::kString || from == DType::kString) return invalid_model("BitCast: strings have no bit pattern");
  if (from != DType::kUndefined && dtype_bits(from) != dtype_bits(to))
    return invalid_model("BitCast: {} has {} bits but {} has {}", dtype_name(from), dtype_bits(from), dtype_name(to),
                         dtype_bits(to));
  ctx.set_output(0, to, ctx.input_shape(0));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(
      OpSchema{.name = "Cast", .min_inputs = 1, .max_inputs = 1, .infer = infer_cast, .upgrades = {{6, upgrade_cast}}});
  OpRegistration(
      OpSchema{.name = "CastLike", .since_opset = 15, .min_inputs = 2, .max_inputs = 2, .infer = [](InferContext& c) {
                 return infer_cast_to(c, c.input_dtype(1));
               }});
  OpRegistration(
      OpSchema{.name = "BitCast", .since_opset = 26, .min_inputs = 1, .max_inputs = 1, .infer = infer_bitcast});
  return true;
}();

}  // namespace
}  // namespace kiln
