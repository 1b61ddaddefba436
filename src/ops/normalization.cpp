// Normalizations: BatchNormalization, InstanceNormalization,
// LayerNormalization, GroupNormalization, RMSNormalization, LpNormalization,
// MeanVarianceNormalization and LRN, and kiln.SkipLayerNormalization (a
// residual Add and a LayerNormalization in one). Y always has X's type; the
// extra outputs (BatchNormalization's running stats, LayerNormalization's
// Mean/InvStdDev) get the shapes ONNX defines.
#include <fmt/format.h>

#include "ops/infer_util.h"
#include "ops/op_rows.h"

namespace kiln {
namespace {

Status infer_batch_norm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "BatchNormalization"));
  ctx.set_output(0, ctx.input_type(0));
  bool training = ctx.attr_int("training_mode", 0) != 0;
  if (!training && ctx.num_outputs() > 1 && (ctx.node().output(1) || ctx.node().output(2)))
    return invalid_model("BatchNormalization: running_mean/running_var outputs need training_mode=1");
  for (size_t i = 1; i < ctx.num_outputs() && i < 3; ++i) ctx.set_output(i, ctx.input_type(i + 2));
  return Status::ok();
}

// Drops attributes of old forms whose meaning the current form has built in.
Status upgrade_batch_norm_before_14(UpgradeContext& ctx) {
  Node& n = ctx.node();
  bool old_training = n.has_attr("is_test") && n.attr_int("is_test", 0) == 0;
  n.attrs.erase("consumed_inputs");
  n.attrs.erase("is_test");
  // spatial=0 (per-activation statistics) needs no flag: the kernel reads
  // statistics of C x D1 x ... elements as per-activation.
  n.attrs.erase("spatial");
  bool has_stat_outputs = false;
  for (size_t i = 1; i < n.outputs.size(); ++i) has_stat_outputs |= n.outputs[i] != nullptr;
  if (n.outputs.size() > 3) {
    for (size_t i = 3; i < n.outputs.size(); ++i)
      if (n.outputs[i])
        return unsupported("BatchNormalization: the saved_mean/saved_var training outputs (opset {}) are not supported",
                           n.opset);
    n.outputs.resize(3);
  }
  if (has_stat_outputs || old_training) n.attrs["training_mode"] = Attribute::of_int(1);
  return Status::ok();
}

Status infer_layer_norm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "LayerNormalization"));
  ctx.set_output(0, ctx.input_type(0));
  DType stash = ctx.attr_int("stash_type", 1) == 1 ? DType::kF32 : ctx.input_dtype(0);
  const Shape& s = ctx.input_shape(0);
  Shape stat;
  if (s.has_rank()) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.attr_int("axis", -1), s.rank()));
    Dims d = *s.dims;
    for (size_t i = static_cast<size_t>(axis); i < d.size(); ++i) d[i] = Dim(1);
    stat = Shape(std::move(d));
  }
  for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set_output(i, stash, stat);
  return Status::ok();
}

bool dims_clash(const Dim& a, const Dim& b) { return a.is_fixed() && b.is_fixed() && a.value != b.value; }

bool is_float_or_unknown(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64 || t == DType::kUndefined;
}

// kiln.SkipLayerNormalization(X, Skip, Scale, B?) -> (Y, Sum?) {epsilon, axis}:
// Sum = X + Skip (rounded to X's dtype), Y = LayerNormalization(Sum, Scale, B)
// over the last axis. X and Skip have one shape (no broadcasting); Scale and B
// are [C] vectors of X's dtype, C the last dim.
Status infer_skip_layer_norm(InferContext& ctx) {
  constexpr const char* op = "SkipLayerNormalization";
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, op));
  const DType t = ctx.input_dtype(0);
  if (!is_float_or_unknown(t)) return invalid_model("{}: X is {}, not a float type", op, dtype_name(t));
  const Shape& x = ctx.input_shape(0);
  const Shape& skip = ctx.input_shape(1);
  const DType st = ctx.input_dtype(1);
  if (st != t && st != DType::kUndefined && t != DType::kUndefined)
    return invalid_model("{}: Skip is {} but X is {}", op, dtype_name(st), dtype_name(t));
  if (x.has_rank()) {
    if (x.rank() == 0) return invalid_model("{}: X is a scalar; it needs a last axis to normalize", op);
    const int64_t axis = ctx.attr_int("axis", -1);
    if (axis != -1 && axis != x.rank() - 1)
      return unsupported("{}: axis {} is not the last axis of rank {}; only the last axis (-1) is supported", op, axis,
                         x.rank());
    if (skip.has_rank()) {
      bool same = skip.rank() == x.rank();
      for (int64_t d = 0; same && d < x.rank(); ++d) same = !dims_clash(x[d], skip[d]);
      if (!same)
        return invalid_model("{}: Skip {} does not have X's shape {} (no broadcasting)", op, skip.to_string(),
                             x.to_string());
    }
  }
  for (size_t i : {size_t(2), size_t(3)}) {
    if (i == 3 && !ctx.has_input(3)) continue;
    const char* what = i == 2 ? "Scale" : "B";
    const DType pt = ctx.input_dtype(i);
    if (pt != t && pt != DType::kUndefined && t != DType::kUndefined)
      return invalid_model("{}: {} is {} but X is {}", op, what, dtype_name(pt), dtype_name(t));
    const Shape& p = ctx.input_shape(i);
    if (p.has_rank() && p.rank() != 1) return invalid_model("{}: {} must be 1-D, got {}", op, what, p.to_string());
    if (p.has_rank() && x.has_rank() && dims_clash(p[0], x[x.rank() - 1]))
      return invalid_model("{}: {} {} does not match the last dim of X {}", op, what, p.to_string(), x.to_string());
  }
  ctx.set_output(0, ctx.input_type(0));
  if (ctx.num_outputs() > 1) ctx.set_output(1, ctx.input_type(0));
  return Status::ok();
}

Status infer_axis_checked(InferContext& ctx, const char* op) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, op));
  const Shape& s = ctx.input_shape(0);
  if (s.has_rank()) KILN_RETURN_IF_ERROR(normalize_axis(ctx.attr_int("axis", -1), s.rank()).status());
  ctx.set_output(0, ctx.input_type(0));
  return Status::ok();
}

Status infer_group_norm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "GroupNormalization"));
  int64_t groups = ctx.attr_int("num_groups", -1);
  if (groups < 1) return invalid_model("GroupNormalization: num_groups is {}, must be >= 1", groups);
  const Shape& s = ctx.input_shape(0);
  if (s.has_rank() && s.rank() >= 2 && s[1].is_fixed() && s[1].value % groups != 0)
    return invalid_model("GroupNormalization: {} channels are not divisible into {} groups", s[1].value, groups);
  ctx.set_output(0, ctx.input_type(0));
  return Status::ok();
}

Status infer_lrn(InferContext& ctx) {
  if (ctx.attr_int("size", 0) < 1) return invalid_model("LRN: size is {}, must be >= 1", ctx.attr_int("size", 0));
  return infer_same_as_input0(ctx);
}

[[maybe_unused]] const bool registered = [] {
  add_op("BatchNormalization", 5, 5, infer_batch_norm, 5, {{14, upgrade_batch_norm_before_14}});
  add_op("InstanceNormalization", 3, 3, infer_same_as_input0);
  add_op("LayerNormalization", 2, 3, infer_layer_norm, 3, {}, 17);
  // Opset 18's per-group scale/bias is read as such by the kernel (its size is num_groups, not C).
  add_op("GroupNormalization", 3, 3, infer_group_norm, 1, {}, 18);
  add_op(
      "RMSNormalization", 2, 2, [](InferContext& c) { return infer_axis_checked(c, "RMSNormalization"); }, 1, {}, 23);
  add_op("LpNormalization", 1, 1, [](InferContext& c) { return infer_axis_checked(c, "LpNormalization"); });
  add_op("MeanVarianceNormalization", 1, 1, infer_same_as_input0, 1, {}, 9);
  add_op("LRN", 1, 1, infer_lrn);
  OpRegistration(OpSchema{.domain = "kiln",
                          .name = "SkipLayerNormalization",
                          .min_inputs = 3,
                          .max_inputs = 4,
                          .min_outputs = 1,
                          .max_outputs = 2,
                          .infer = infer_skip_layer_norm,
                          .summary = "LayerNormalization(X + Skip, Scale, B) over the last axis, and optionally the "
                                     "sum: a residual Add fused into the LayerNorm"});
  return true;
}();

}  // namespace
}  // namespace kiln
