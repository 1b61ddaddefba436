// Convolutions and pools: Conv, ConvTranspose, ConvInteger, DeformConv,
// QLinearConv, kiln::FusedConv, MaxPool, AveragePool, LpPool, the global pools and MaxUnpool.
// All take [N, C, spatial...] inputs (kiln::FusedConv and the 2-D max and
// average pools [N, H, W, C] too, with channels_last=1); the window rules
// live in window_geometry.h, shared with the CPU kernels.
#include <fmt/format.h>

#include "ops/fused_activation.h"
#include "ops/fused_pool.h"
#include "ops/infer_util.h"
#include "ops/op_rows.h"
#include "ops/window_geometry.h"

namespace kiln {
namespace {

// Input `i` as a tensor of rank >= 3 ([N, C, spatial...]); error otherwise.
Expected<const Dims*> spatial_input(const InferContext& ctx, size_t i) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, i, ctx.node().op_type.c_str()));
  const Shape& s = ctx.input_shape(i);
  if (!s.has_rank()) return static_cast<const Dims*>(nullptr);
  if (s.rank() < 3)
    return invalid_model("{}: input {} has shape {}, expected [N, C, spatial...] of rank >= 3", ctx.node().op_type, i,
                         s.to_string());
  return &*s.dims;
}

// The kernel size from the weight's spatial dims when all fixed; empty otherwise.
std::vector<int64_t> kernel_from_weight(const InferContext& ctx, size_t w) {
  const Shape& s = ctx.input_shape(w);
  std::vector<int64_t> k;
  if (!s.has_rank()) return k;
  for (size_t d = 2; d < s.dims->size(); ++d) {
    if (!(*s.dims)[d].is_fixed()) return {};
    k.push_back((*s.dims)[d].value);
  }
  return k;
}

// Output [N, channels, window dims...] for window ops reading X at input `x`.
Status set_window_output(InferContext& ctx, size_t x, const Dim& channels, std::vector<int64_t> kernel, DType dtype,
                         size_t out = 0) {
  KILN_ASSIGN_OR_RETURN(const Dims* in, spatial_input(ctx, x));
  if (!in) {
    ctx.set_output(out, dtype, Shape());
    return Status::ok();
  }
  size_t spatial = in->size() - 2;
  Dims dims{(*in)[0], channels};
  if (kernel.empty() && !ctx.node().has_attr("kernel_shape")) {
    for (size_t i = 0; i < spatial; ++i) dims.push_back(Dim::unknown());
    ctx.set_output(out, dtype, Shape(std::move(dims)));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(ctx.node(), spatial, std::move(kernel)));
  for (size_t i = 0; i < spatial; ++i) {
    KILN_ASSIGN_OR_RETURN(Dim d, window_dim_symbolic(a, i, (*in)[i + 2]));
    dims.push_back(d);
  }
  ctx.set_output(out, dtype, Shape(std::move(dims)));
  return Status::ok();
}

Dim weight_dim(const InferContext& ctx, size_t w, size_t d) {
  const Shape& s = ctx.input_shape(w);
  return s.has_rank() && static_cast<size_t>(s.rank()) > d ? (*s.dims)[d] : Dim::unknown();
}

// Whether C input channels split into `group` groups of `wc` (the weight's
// channel dim); divides rather than multiplies, so a huge group cannot overflow.
bool group_channels_match(const Dim& c, const Dim& wc, int64_t group) {
  if (!c.is_fixed() || !wc.is_fixed()) return true;
  return c.value % group == 0 && c.value / group == wc.value;
}

// `c`: the input's channel dim (dim 1 in NCHW, the last in NHWC).
Status check_group(const InferContext& ctx, const Dim& c, const Dim& wc, int64_t group) {
  if (group < 1) return invalid_model("{}: group is {}, must be >= 1", ctx.node().op_type, group);
  if (!group_channels_match(c, wc, group))
    return invalid_model("{}: input has {} channels but the weight expects {} per group x group {}", ctx.node().op_type,
                         c.value, wc.value, group);
  return Status::ok();
}

Status check_group(const InferContext& ctx, size_t x, size_t w, int64_t group) {
  const Shape& xs = ctx.input_shape(x);
  Dim c = xs.has_rank() && xs.rank() >= 2 ? (*xs.dims)[1] : Dim::unknown();
  return check_group(ctx, c, weight_dim(ctx, w, 1), group);
}

Status infer_conv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 1, "Conv"));
  KILN_RETURN_IF_ERROR(check_group(ctx, 0, 1, ctx.attr_int("group", 1)));
  return set_window_output(ctx, 0, weight_dim(ctx, 1, 0), kernel_from_weight(ctx, 1), ctx.input_dtype(0));
}

// kiln::FusedConv(X, W, B?, Z?): Y = act(Conv(X, W, B) + Z), Z of Y's shape
// and dtype (see fused_activation.h for the activations). With pool
// attributes (fused_pool.h), Y = MaxPool(act(Conv(X, W, B))): the pooled
// shape, and no Z.
// channels_last=1 (set by the CUDA build's layout pass): X [N, H, W, C],
// W [K, R, S, C/group], Y and Z [N, H', W', K]; 2-D only.
Status infer_channels_last_conv(InferContext& ctx) {
  const Shape &xs = ctx.input_shape(0), &ws = ctx.input_shape(1);
  const DType dtype = ctx.input_dtype(0);
  if (!xs.has_rank() || !ws.has_rank()) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  if (xs.rank() != 4 || ws.rank() != 4)
    return invalid_model("FusedConv: channels_last takes X [N,H,W,C] and W [K,R,S,C/group], got {} and {}",
                         xs.to_string(), ws.to_string());
  KILN_RETURN_IF_ERROR(check_group(ctx, xs[3], ws[3], ctx.attr_int("group", 1)));
  std::vector<int64_t> kernel;
  if (ws[1].is_fixed() && ws[2].is_fixed()) kernel = {ws[1].value, ws[2].value};
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(ctx.node(), 2, std::move(kernel)));
  KILN_ASSIGN_OR_RETURN(Dim h, window_dim_symbolic(a, 0, xs[1]));
  KILN_ASSIGN_OR_RETURN(Dim w, window_dim_symbolic(a, 1, xs[2]));
  ctx.set_output(0, dtype, Shape(Dims{xs[0], h, w, ws[0]}));
  return Status::ok();
}

// The pooled output: the pool's window over the convolution's spatial dims
// (1 and 2 channels-last, 2 and 3 NCHW).
Status apply_fused_pool(InferContext& ctx, const WindowAttrs& pool) {
  if (ctx.has_input(3)) return invalid_model("FusedConv: a pooled convolution takes no residual Z");
  const Type& y = ctx.output_types()[0];
  if (!y.shape.has_rank()) return Status::ok();
  if (y.shape.rank() != 4)
    return invalid_model("FusedConv: pool attributes need a 2-D convolution, the output is {}", y.shape.to_string());
  Dims dims = *y.shape.dims;
  const size_t first = ctx.attr_int("channels_last", 0) != 0 ? 1 : 2;
  for (size_t i = 0; i < 2; ++i) {
    KILN_ASSIGN_OR_RETURN(Dim d, window_dim_symbolic(pool, i, dims[first + i]));
    dims[first + i] = d;
  }
  ctx.set_output(0, y.dtype, Shape(std::move(dims)));
  return Status::ok();
}

Status infer_fused_conv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(read_fused_activation(ctx.node()).status());
  KILN_ASSIGN_OR_RETURN(std::optional<WindowAttrs> pool, read_fused_pool(ctx.node()));
  if (ctx.attr_int("channels_last", 0) != 0) {
    KILN_RETURN_IF_ERROR(infer_channels_last_conv(ctx));
  } else {
    KILN_RETURN_IF_ERROR(infer_conv(ctx));
  }
  if (pool) return apply_fused_pool(ctx, *pool);
  if (!ctx.has_input(3)) return Status::ok();
  const Type& z = ctx.input_type(3);
  if (z.dtype != DType::kUndefined && ctx.input_dtype(0) != DType::kUndefined && z.dtype != ctx.input_dtype(0))
    return invalid_model("FusedConv: residual Z has dtype {}, X has {}", dtype_name(z.dtype),
                         dtype_name(ctx.input_dtype(0)));
  const Shape& y = ctx.output_types()[0].shape;
  if (!z.shape.has_rank() || !y.has_rank()) return Status::ok();
  bool same = z.shape.rank() == y.rank();
  for (int64_t d = 0; same && d < y.rank(); ++d) {
    const Dim &a = (*z.shape.dims)[d], &b = (*y.dims)[d];
    if (a.is_fixed() && b.is_fixed() && a.value != b.value) same = false;
  }
  if (!same)
    return invalid_model("FusedConv: residual Z has shape {}, the convolution's output {}", z.shape.to_string(),
                         y.to_string());
  return Status::ok();
}

Status infer_conv_integer(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(check_group(ctx, 0, 1, ctx.attr_int("group", 1)));
  return set_window_output(ctx, 0, weight_dim(ctx, 1, 0), kernel_from_weight(ctx, 1), DType::kI32);
}

Status infer_qlinear_conv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(check_group(ctx, 0, 3, ctx.attr_int("group", 1)));
  return set_window_output(ctx, 0, weight_dim(ctx, 3, 0), kernel_from_weight(ctx, 3), ctx.input_dtype(7));
}

Status infer_deform_conv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(check_group(ctx, 0, 1, ctx.attr_int("group", 1)));
  return set_window_output(ctx, 0, weight_dim(ctx, 1, 0), kernel_from_weight(ctx, 1), ctx.input_dtype(0));
}

Status infer_conv_transpose(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Dims* in, spatial_input(ctx, 0));
  int64_t group = ctx.attr_int("group", 1);
  if (group < 1) return invalid_model("ConvTranspose: group is {}, must be >= 1", group);
  Dim channels = dim_mul(weight_dim(ctx, 1, 1), Dim(group));
  DType dtype = ctx.input_dtype(0);
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  size_t spatial = in->size() - 2;
  Dims dims{(*in)[0], channels};
  std::vector<int64_t> kernel = kernel_from_weight(ctx, 1);
  std::vector<int64_t> output_shape = ctx.attr_ints("output_shape");
  // output_shape may list only the spatial dims or all of them.
  if (output_shape.size() == spatial + 2) output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
  if (!output_shape.empty() && output_shape.size() != spatial)
    return invalid_model("ConvTranspose: output_shape has {} values for {} spatial dims", output_shape.size(), spatial);
  if (kernel.empty() && !ctx.node().has_attr("kernel_shape") && output_shape.empty()) {
    for (size_t i = 0; i < spatial; ++i) dims.push_back(Dim::unknown());
    ctx.set_output(0, dtype, Shape(std::move(dims)));
    return Status::ok();
  }
  if (kernel.empty() && !ctx.node().has_attr("kernel_shape")) kernel.assign(spatial, 1);
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(ctx.node(), spatial, kernel));
  std::vector<int64_t> output_padding = ctx.attr_ints("output_padding");
  if (!output_padding.empty() && output_padding.size() != spatial)
    return invalid_model("ConvTranspose: output_padding has {} values for {} spatial dims", output_padding.size(),
                         spatial);
  for (size_t i = 0; i < spatial; ++i) {
    const Dim& d = (*in)[i + 2];
    if (!output_shape.empty()) {
      dims.push_back(Dim(output_shape[i]));
    } else if (d.is_fixed()) {
      KILN_ASSIGN_OR_RETURN(WindowDim w, transpose_window_dim(a, i, d.value, output_padding, output_shape));
      dims.push_back(Dim(w.out));
    } else if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
      dims.push_back(dim_mul(d, Dim(a.strides[i])));
    } else {
      dims.push_back(Dim::unknown());
    }
  }
  ctx.set_output(0, dtype, Shape(std::move(dims)));
  return Status::ok();
}

Dim input_channels(const InferContext& ctx, size_t x) {
  const Shape& s = ctx.input_shape(x);
  return s.has_rank() && s.rank() >= 2 ? (*s.dims)[1] : Dim::unknown();
}

// channels_last=1 (set by the CUDA build's assign_pool_layout) on MaxPool
// without Indices, AveragePool, GlobalAveragePool and GlobalMaxPool: X and Y
// are [N, H, W, C]; 2-D only. The window attributes keep their meaning.
Status infer_channels_last_pool(InferContext& ctx, bool global) {
  const Node& n = ctx.node();
  if (n.op_type != "MaxPool" && n.op_type != "AveragePool" && n.op_type != "GlobalAveragePool" &&
      n.op_type != "GlobalMaxPool")
    return invalid_model("{}: has no channels_last form", n.op_type);
  if (n.outputs.size() > 1 && n.outputs[1]) return invalid_model("{}: channels_last has no Indices output", n.op_type);
  const Shape& xs = ctx.input_shape(0);
  const DType dtype = ctx.input_dtype(0);
  if (!xs.has_rank()) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  if (xs.rank() != 4) return invalid_model("{}: channels_last takes X [N,H,W,C], got {}", n.op_type, xs.to_string());
  if (global) {
    ctx.set_output(0, dtype, Shape(Dims{xs[0], Dim(1), Dim(1), xs[3]}));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(n, 2));
  KILN_ASSIGN_OR_RETURN(Dim h, window_dim_symbolic(a, 0, xs[1]));
  KILN_ASSIGN_OR_RETURN(Dim w, window_dim_symbolic(a, 1, xs[2]));
  ctx.set_output(0, dtype, Shape(Dims{xs[0], h, w, xs[3]}));
  return Status::ok();
}

Status infer_pool(InferContext& ctx) {
  if (!ctx.node().has_attr("kernel_shape"))
    return invalid_model("{}: the kernel_shape attribute is required", ctx.node().op_type);
  if (ctx.attr_int("channels_last", 0) != 0) return infer_channels_last_pool(ctx, false);
  KILN_RETURN_IF_ERROR(set_window_output(ctx, 0, input_channels(ctx, 0), {}, ctx.input_dtype(0)));
  if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kI64, ctx.output_types()[0].shape);
  return Status::ok();
}

Status infer_global_pool(InferContext& ctx) {
  if (ctx.attr_int("channels_last", 0) != 0) return infer_channels_last_pool(ctx, true);
  KILN_ASSIGN_OR_RETURN(const Dims* in, spatial_input(ctx, 0));
  if (!in) {
    ctx.set_output(0, ctx.input_type(0));
    return Status::ok();
  }
  Dims dims = *in;
  for (size_t i = 2; i < dims.size(); ++i) dims[i] = Dim(1);
  ctx.set_output(0, ctx.input_dtype(0), Shape(std::move(dims)));
  return Status::ok();
}

Status infer_max_unpool(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Dims* in, spatial_input(ctx, 0));
  DType dtype = ctx.input_dtype(0);
  if (ctx.has_input(2)) {
    auto v = ctx.input_dims_value(2);
    if (v) {
      ctx.set_output(0, dtype, Shape(*v));
    } else {
      const Shape& s = ctx.input_shape(2);
      if (s.has_rank() && s.rank() == 1 && s[0].is_fixed())
        ctx.set_output(0, dtype, Shape(Dims(static_cast<size_t>(s[0].value), Dim::unknown())));
      else
        ctx.set_output(0, dtype, Shape());
    }
    return Status::ok();
  }
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  if (!ctx.node().has_attr("kernel_shape")) return invalid_model("MaxUnpool: the kernel_shape attribute is required");
  size_t spatial = in->size() - 2;
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(ctx.node(), spatial));
  Dims dims{(*in)[0], (*in)[1]};
  for (size_t i = 0; i < spatial; ++i) {
    const Dim& d = (*in)[i + 2];
    if (!d.is_fixed()) {
      dims.push_back(Dim::unknown());
      continue;
    }
    dims.push_back(Dim((d.value - 1) * a.strides[i] + a.kernel[i] - a.pads[i] - a.pads[i + spatial]));
  }
  ctx.set_output(0, dtype, Shape(std::move(dims)));
  return Status::ok();
}

// LpPool and GlobalLpPool before opset 2 took p as a float.
Status upgrade_float_p(UpgradeContext& ctx) {
  Node& n = ctx.node();
  auto it = n.attrs.find("p");
  if (it == n.attrs.end() || it->second.kind != Attribute::Kind::kFloat) return Status::ok();
  float p = it->second.f;
  if (p != static_cast<float>(static_cast<int64_t>(p)))
    return unsupported("{}: p = {} is not an integer; kiln supports integer p only", n.op_type, p);
  it->second = Attribute::of_int(static_cast<int64_t>(p));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  add_op("Conv", 2, 3, infer_conv);
  add_op("ConvTranspose", 2, 3, infer_conv_transpose);
  OpRegistration(OpSchema{.domain = "kiln",
                          .name = "FusedConv",
                          .min_inputs = 2,
                          .max_inputs = 4,
                          .min_outputs = 1,
                          .max_outputs = 1,
                          .infer = infer_fused_conv});
  add_op("ConvInteger", 2, 4, infer_conv_integer, 1, {}, 10);
  add_op("DeformConv", 3, 5, infer_deform_conv, 1, {}, 19);
  add_op("QLinearConv", 8, 9, infer_qlinear_conv, 1, {}, 10);
  add_op("MaxPool", 1, 1, infer_pool, 2);
  add_op("AveragePool", 1, 1, infer_pool);
  add_op("LpPool", 1, 1, infer_pool, 1, {{2, upgrade_float_p}});
  add_op("GlobalAveragePool", 1, 1, infer_global_pool);
  add_op("GlobalMaxPool", 1, 1, infer_global_pool);
  add_op("GlobalLpPool", 1, 1, infer_global_pool, 1, {{2, upgrade_float_p}});
  add_op("MaxUnpool", 2, 3, infer_max_unpool, 1, {}, 9);
  return true;
}();

}  // namespace
}  // namespace kiln
