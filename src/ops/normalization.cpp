// Normalizations: BatchNormalization, InstanceNormalization,
// LayerNormalization, GroupNormalization, RMSNormalization, LpNormalization,
// MeanVarianceNormalization and LRN. Y always has X's type; the extra outputs
// (BatchNormalization's running stats, LayerNormalization's Mean/InvStdDev)
// get the shapes ONNX defines.
#include <fmt/format.h>

#include "ops/infer_util.h"

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

void add(const char* name, int min_in, int max_in, InferFn fn, int max_out = 1, std::vector<OpUpgrade> up = {},
         int since = 1) {
  OpRegistration(OpSchema{.name = name,
                          .since_opset = since,
                          .min_inputs = min_in,
                          .max_inputs = max_in,
                          .min_outputs = 1,
                          .max_outputs = max_out,
                          .infer = std::move(fn),
                          .upgrades = std::move(up)});
}

[[maybe_unused]] const bool registered = [] {
  add("BatchNormalization", 5, 5, infer_batch_norm, 5, {{14, upgrade_batch_norm_before_14}});
  add("InstanceNormalization", 3, 3, infer_same_as_input0);
  add("LayerNormalization", 2, 3, infer_layer_norm, 3, {}, 17);
  // Opset 18's per-group scale/bias is read as such by the kernel (its size is num_groups, not C).
  add("GroupNormalization", 3, 3, infer_group_norm, 1, {}, 18);
  add(
      "RMSNormalization", 2, 2, [](InferContext& c) { return infer_axis_checked(c, "RMSNormalization"); }, 1, {}, 23);
  add("LpNormalization", 1, 1, [](InferContext& c) { return infer_axis_checked(c, "LpNormalization"); });
  add("MeanVarianceNormalization", 1, 1, infer_same_as_input0, 1, {}, 9);
  add("LRN", 1, 1, infer_lrn);
  return true;
}();

}  // namespace
}  // namespace kiln
