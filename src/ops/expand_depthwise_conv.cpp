// kiln.ExpandDepthwiseConv (expand_depthwise_conv.h): its two FusedConv
// layers and its shape and type inference, which checks what the pair would
// and names the input that does not fit.
#include "ops/expand_depthwise_conv.h"

#include "ops/fused_activation.h"
#include "ops/op_schema.h"
#include "ops/window_geometry.h"

namespace kiln {
namespace {

// Copies attribute `from` of `src` to `to` of `dst` where present.
void copy_attr(const Node& src, const char* from, Node& dst, const char* to) {
  if (const Attribute* a = src.attr(from)) dst.attrs[to] = *a;
}

Status check_rank4(const InferContext& ctx, size_t i, const char* what, const char* layout) {
  const Shape& s = ctx.input_shape(i);
  if (s.has_rank() && s.rank() != 4)
    return invalid_model("kiln.ExpandDepthwiseConv: {} must be {}, got {}", what, layout,
                         ctx.input_type(i).to_string());
  return Status::ok();
}

bool known_differ(const Dim& a, const Dim& b) { return a.is_fixed() && b.is_fixed() && a.value != b.value; }

// B (input i) is [E] when given.
Status check_bias(const InferContext& ctx, size_t i, const char* what, const Dim& e) {
  if (!ctx.has_input(i)) return Status::ok();
  const Shape& s = ctx.input_shape(i);
  if (!s.has_rank()) return Status::ok();
  if (s.rank() != 1 || known_differ(s[0], e))
    return invalid_model("kiln.ExpandDepthwiseConv: {} must be [E] with E = {}, got {}", what, e.to_string(),
                         ctx.input_type(i).to_string());
  return Status::ok();
}

Status infer_expand_depthwise(InferContext& ctx) {
  const Node& n = ctx.node();
  const DType dtype = ctx.input_dtype(kEdX);
  for (size_t i : {kEdW1, kEdB1, kEdW2, kEdB2}) {
    const DType t = ctx.has_input(i) ? ctx.input_dtype(i) : DType::kUndefined;
    if (t != DType::kUndefined && dtype != DType::kUndefined && t != dtype)
      return invalid_model("kiln.ExpandDepthwiseConv: input {} has dtype {}, X has {}", i, dtype_name(t),
                           dtype_name(dtype));
  }
  if (!ctx.has_input(kEdW2)) return invalid_model("kiln.ExpandDepthwiseConv: W2 (input 3) is required");
  if (n.has_attr("auto_pad") && n.attr_string("auto_pad", "NOTSET") != "NOTSET")
    return invalid_model("kiln.ExpandDepthwiseConv: auto_pad is not taken; pads must be explicit");
  for (int64_t d : n.attr_ints("dilations"))
    if (d != 1) return invalid_model("kiln.ExpandDepthwiseConv: dilations must be 1");
  KILN_RETURN_IF_ERROR(check_rank4(ctx, kEdX, "X", "[N, H, W, C]"));
  KILN_RETURN_IF_ERROR(check_rank4(ctx, kEdW1, "W1", "[E, 1, 1, C]"));
  KILN_RETURN_IF_ERROR(check_rank4(ctx, kEdW2, "W2", "[E, KH, KW, 1]"));
  const Shape &xs = ctx.input_shape(kEdX), &w1 = ctx.input_shape(kEdW1), &w2 = ctx.input_shape(kEdW2);
  const std::string xt = ctx.input_type(kEdX).to_string(), w1t = ctx.input_type(kEdW1).to_string(),
                    w2t = ctx.input_type(kEdW2).to_string();
  Dim e = Dim::unknown();
  if (w1.has_rank()) {
    if (known_differ(w1[1], Dim(1)) || known_differ(w1[2], Dim(1)))
      return invalid_model("kiln.ExpandDepthwiseConv: W1 must be a 1x1 kernel [E, 1, 1, C], got {}", w1t);
    if (xs.has_rank() && known_differ(w1[3], xs[3]))
      return invalid_model("kiln.ExpandDepthwiseConv: W1 {} reads {} channels, X {} has {}", w1t, w1[3].to_string(), xt,
                           xs[3].to_string());
    e = w1[0];
  }
  std::vector<int64_t> kernel;
  if (w2.has_rank()) {
    if (known_differ(w2[3], Dim(1)))
      return invalid_model(
          "kiln.ExpandDepthwiseConv: W2 must be depthwise [E, KH, KW, 1] (group = E, one channel each), got {}", w2t);
    if (known_differ(w2[0], e))
      return invalid_model("kiln.ExpandDepthwiseConv: W2 {} has {} channels, W1 {} expands to {}", w2t,
                           w2[0].to_string(), w1t, e.to_string());
    if (!e.is_fixed()) e = w2[0];
    if (w2[1].is_fixed() && w2[2].is_fixed()) kernel = {w2[1].value, w2[2].value};
  }
  KILN_RETURN_IF_ERROR(check_bias(ctx, kEdB1, "B1", e));
  KILN_RETURN_IF_ERROR(check_bias(ctx, kEdB2, "B2", e));
  ExpandDepthwiseParts parts = expand_depthwise_parts(n, e.is_fixed() ? e.value : 1, nullptr);
  KILN_RETURN_IF_ERROR(read_fused_activation(parts.expand).status());
  KILN_RETURN_IF_ERROR(read_fused_activation(parts.depthwise).status());
  if (!xs.has_rank()) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  if (kernel.empty()) {
    ctx.set_output(0, dtype, Shape(Dims{xs[0], Dim::unknown(), Dim::unknown(), e}));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(parts.depthwise, 2, std::move(kernel)));
  KILN_ASSIGN_OR_RETURN(Dim h, window_dim_symbolic(a, 0, xs[1]));
  KILN_ASSIGN_OR_RETURN(Dim w, window_dim_symbolic(a, 1, xs[2]));
  ctx.set_output(0, dtype, Shape(Dims{xs[0], h, w, e}));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.domain = "kiln",
                          .name = "ExpandDepthwiseConv",
                          .min_inputs = 2,  // B1 may be omitted before W2; W2 is checked by name
                          .max_inputs = 5,
                          .min_outputs = 1,
                          .max_outputs = 1,
                          .infer = infer_expand_depthwise,
                          .summary = "a 1x1 expansion and a depthwise convolution, channels-last, as one layer"});
  return true;
}();

}  // namespace

ExpandDepthwiseParts expand_depthwise_parts(const Node& node, int64_t e, Value* expanded) {
  ExpandDepthwiseParts p;
  for (Node* part : {&p.expand, &p.depthwise}) {
    part->op_type = "FusedConv";
    part->domain = "kiln";
    part->opset = 1;
    part->attrs["channels_last"] = Attribute::of_int(1);
  }
  p.expand.name = node.name + "/expand";
  p.depthwise.name = node.name + "/depthwise";
  copy_attr(node, "expand_activation", p.expand, "activation");
  copy_attr(node, "expand_activation_params", p.expand, "activation_params");
  copy_attr(node, "activation", p.depthwise, "activation");
  copy_attr(node, "activation_params", p.depthwise, "activation_params");
  copy_attr(node, "strides", p.depthwise, "strides");
  copy_attr(node, "pads", p.depthwise, "pads");
  p.depthwise.attrs["group"] = Attribute::of_int(e);
  p.expand.inputs = {node.input(kEdX), node.input(kEdW1), node.input(kEdB1)};
  p.expand.outputs = {expanded};
  p.depthwise.inputs = {expanded, node.input(kEdW2), node.input(kEdB2)};
  p.depthwise.outputs = {node.output(0)};
  return p;
}

}  // namespace kiln
