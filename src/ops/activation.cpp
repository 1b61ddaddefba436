// Activation ops (elementwise with attributes), Clip, PRelu and the
// softmax family. Each row is the op's whole definition in kiln.
#include <fmt/format.h>

#include <limits>

#include "ops/infer_util.h"
#include "ops/op_rows.h"

namespace kiln {
namespace {

Status infer_gelu(InferContext& ctx) {
  std::string approximate = ctx.attr_string("approximate", "none");
  if (approximate != "none" && approximate != "tanh")
    return unsupported("Gelu: approximate=\"{}\" is not supported (\"none\" or \"tanh\")", approximate);
  return infer_same_as_input0(ctx);
}

// Clip before opset 11 took min and max as float attributes; they become
// scalar inputs (f32: the kernel reads bounds of any dtype).
Status upgrade_clip_attrs(UpgradeContext& ctx) {
  Node& n = ctx.node();
  n.attrs.erase("consumed_inputs");
  float lo = n.attr_float("min", std::numeric_limits<float>::lowest());
  float hi = n.attr_float("max", std::numeric_limits<float>::max());
  n.attrs.erase("min");
  n.attrs.erase("max");
  n.inputs.resize(3, nullptr);
  n.inputs[1] = ctx.add_constant(Tensor::from_vector<float>(DType::kF32, {}, {lo}), "min");
  n.inputs[2] = ctx.add_constant(Tensor::from_vector<float>(DType::kF32, {}, {hi}), "max");
  return Status::ok();
}

Status infer_clip(InferContext& ctx) {
  for (size_t i = 1; i < 3; ++i) {
    if (!ctx.has_input(i) || !ctx.input_shape(i).has_rank()) continue;
    auto numel = ctx.input_shape(i).numel();
    if (ctx.input_shape(i).rank() > 1 || (numel && *numel != 1))
      return invalid_model("Clip: {} must be a scalar, got shape {}", i == 1 ? "min" : "max",
                           ctx.input_shape(i).to_string());
  }
  return infer_same_as_input0(ctx);
}

Status infer_softmax(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, ctx.node().op_type.c_str()));
  int64_t rank = ctx.input_shape(0).rank();
  if (rank >= 0) KILN_RETURN_IF_ERROR(normalize_axis(ctx.attr_int("axis", -1), rank).status());
  return infer_same_as_input0(ctx);
}

// Before opset 13 the softmax family coerced the input to 2-D at `axis`
// (default 1) and normalized over all of the trailing dims. When the rank is
// known and axis is the last dim that is the opset-13 op; otherwise the node
// becomes Flatten(axis) -> op(axis=-1) -> Reshape(back to the input's shape).
Status upgrade_softmax_to_2d(UpgradeContext& ctx) {
  Node& n = ctx.node();
  int64_t axis = n.attr_int("axis", 1);
  Value* x = n.input(0);
  if (!x) return invalid_model("{}: input 0 is missing", n.op_type);
  if (x->type.shape.has_rank()) {
    int64_t rank = x->type.shape.rank();
    KILN_ASSIGN_OR_RETURN(int64_t a, normalize_axis(axis, rank));
    if (a == rank - 1 || rank == 0) {
      n.attrs["axis"] = Attribute::of_int(-1);
      return Status::ok();
    }
  }
  Value* y = n.outputs.at(0);
  std::string op = n.op_type;
  n.op_type = "Flatten";
  n.attrs.clear();
  n.attrs["axis"] = Attribute::of_int(axis);
  Value* flat = ctx.new_value("flat");
  flat->producer = &n;
  flat->producer_output = 0;
  n.outputs[0] = flat;
  Node* norm = ctx.append_node(op, {flat}, 1, "2d");
  norm->attrs["axis"] = Attribute::of_int(-1);
  Node* shape = ctx.append_node("Shape", {x}, 1, "shape");
  Node* back = ctx.append_node("Reshape", {norm->outputs[0], shape->outputs[0]}, 1, "reshape");
  back->outputs[0] = y;
  y->producer = back;
  y->producer_output = 0;
  return Status::ok();
}

// Before opset 7 a 1-D slope of X's channel count applied per channel (dim 1);
// from opset 7 it broadcasts numpy-style, so it is reshaped to [C, 1, ..., 1].
Status upgrade_prelu_channel_slope(UpgradeContext& ctx) {
  Node& n = ctx.node();
  Value* x = n.input(0);
  Value* slope = n.input(1);
  if (!x || !slope || !slope->constant || !x->type.shape.has_rank() || x->type.shape.rank() < 3) return Status::ok();
  const Tensor& s = *slope->constant;
  const Dim& channels = x->type.shape[1];
  if (s.rank() != 1 || s.numel() == 1 || !channels.is_fixed() || s.numel() != channels.value) return Status::ok();
  std::vector<int64_t> dims(static_cast<size_t>(x->type.shape.rank() - 1), 1);
  dims[0] = s.numel();
  n.inputs[1] = ctx.add_constant(s.reshaped(dims), "slope_per_channel");
  return Status::ok();
}

void softmax_like(const char* name) {
  OpRegistration(OpSchema{.name = name,
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .infer = infer_softmax,
                          .upgrades = {{13, upgrade_softmax_to_2d}}});
}

[[maybe_unused]] const bool registered = [] {
  for (const char* op : {"LeakyRelu", "Elu", "Selu", "HardSigmoid"}) add_unary_op(op);
  add_unary_op("Celu", 12);
  add_unary_op("HardSwish", 14);
  add_unary_op("Mish", 18);
  add_unary_op("Gelu", 20, infer_gelu);
  add_unary_op("ThresholdedRelu", 10);
  add_unary_op("Shrink", 9);
  add_unary_op("Swish", 24);
  OpRegistration(OpSchema{
      .name = "Clip", .min_inputs = 1, .max_inputs = 3, .infer = infer_clip, .upgrades = {{11, upgrade_clip_attrs}}});
  // The slope broadcasts to X (unidirectionally), so the output is X's shape.
  OpRegistration(OpSchema{.name = "PRelu",
                          .min_inputs = 2,
                          .max_inputs = 2,
                          .infer = infer_broadcast,
                          .upgrades = {{6, drop_consumed_inputs}, {7, upgrade_prelu_channel_slope}}});
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) softmax_like(op);
  return true;
}();

}  // namespace
}  // namespace kiln
