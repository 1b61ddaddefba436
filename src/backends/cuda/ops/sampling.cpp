// GridSample, AffineGrid, RoiAlign, DeformConv and CausalConvWithState. The
// checks mirror the CPU kernels' (src/backends/cpu/kernels/sampling.cpp,
// causal_conv_with_state.cpp); the kernels are in kernels/sampling.cu and
// kernels/conv.cu.
#include "backends/cuda/kernels/sampling.cuh"

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/window_ops.h"

namespace kiln::cuda {
namespace {

// Inputs `same` (when given) share input 0's float dtype.
Status supports_floats(const Node& node, std::initializer_list<size_t> same) {
  const DType t = input_dtype(node, 0);
  if (!is_float_dtype(t))
    return unsupported("{}: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", node.op_type, dtype_name(t));
  for (size_t i : same)
    if (node.input(i) && input_dtype(node, i) != t)
      return unsupported("{}: input {} has dtype {}, input 0 {}", node.op_type, i, dtype_name(input_dtype(node, i)),
                         dtype_name(t));
  return Status::ok();
}

std::string shape_string(const std::vector<int64_t>& d) { return Shape::of(d).to_string(); }

Status run_grid_sample(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &grid = ctx.input(1), &y = ctx.output(0);
  const Node& node = ctx.node();
  const std::string mode = node.attr_string("mode", "linear"), padding = node.attr_string("padding_mode", "zeros");
  GridSampleParams p;
  p.dtype = x.dtype;
  if (mode == "linear")
    p.mode = GridMode::kLinear;
  else if (mode == "nearest")
    p.mode = GridMode::kNearest;
  else if (mode == "cubic")
    p.mode = GridMode::kCubic;
  else
    return invalid_model("GridSample: mode '{}' is not linear, nearest or cubic", mode);
  if (padding == "zeros")
    p.padding = GridPadding::kZeros;
  else if (padding == "border")
    p.padding = GridPadding::kBorder;
  else if (padding == "reflection")
    p.padding = GridPadding::kReflection;
  else
    return invalid_model("GridSample: padding_mode '{}' is not zeros, border or reflection", padding);
  p.align_corners = node.attr_int("align_corners", 0) != 0;
  const int64_t r = x.rank() - 2;
  if (x.rank() < 3 || grid.rank() != x.rank() || grid.dims.back() != r || grid.dims[0] != x.dims[0])
    return invalid_model("GridSample: X {} and grid {} do not fit", shape_string(x.dims), shape_string(grid.dims));
  if (r > 3) return unsupported("GridSample: {} spatial dims (the CUDA kernel takes 1 to 3)", r);
  p.spatial = static_cast<int>(r);
  for (int d = 0; d < p.spatial; ++d) p.in[d] = x.dims[d + 2];
  p.batch = x.dims[0], p.channels = x.dims[1];
  p.points = p.batch * r == 0 ? 0 : grid.numel() / (p.batch * r);
  p.x = x.data, p.grid = grid.data, p.y = y.data;
  return launch_grid_sample(p, ctx.stream());
}

Status run_affine_grid(KernelContext& ctx) {
  const DeviceTensor& theta = ctx.input(0);
  const Tensor* size_input = ctx.host_input(1);
  if (!size_input) return invalid_model("AffineGrid: size is not known when planning");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> size, size_input->to_i64_vector());
  if (size.size() != 4 && size.size() != 5) return invalid_model("AffineGrid: size has {} values", size.size());
  AffineGridParams p;
  p.dtype = theta.dtype;
  p.align_corners = ctx.node().attr_int("align_corners", 0) != 0;
  p.spatial = static_cast<int>(size.size()) - 2;
  p.batch = size[0];
  if (theta.rank() != 3 || theta.dims[0] != p.batch || theta.dims[1] != p.spatial || theta.dims[2] != p.spatial + 1)
    return invalid_model("AffineGrid: theta {} does not fit size of {} spatial dims", shape_string(theta.dims),
                         p.spatial);
  for (int d = 0; d < p.spatial; ++d) {
    p.size[d] = size[d + 2];
    if (p.size[d] < 0) return invalid_model("AffineGrid: size {} has a negative dim", shape_string(size));
  }
  p.theta = theta.data, p.y = ctx.output(0).data;
  return launch_affine_grid(p, ctx.stream());
}

Status supports_roi_align(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_floats(node, {1}));
  if (input_dtype(node, 2) != DType::kI64)
    return unsupported("RoiAlign: batch_indices of dtype {} (int64 only)", dtype_name(input_dtype(node, 2)));
  return Status::ok();
}

Status run_roi_align(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &rois = ctx.input(1), &batch = ctx.input(2);
  const Node& node = ctx.node();
  if (x.rank() != 4 || rois.rank() != 2 || rois.dims[1] != 4 || batch.numel() != rois.dims[0])
    return invalid_model("RoiAlign: X must be 4-D, rois [R, 4] and batch_indices [R]");
  RoiAlignParams p;
  p.dtype = x.dtype;
  p.half_pixel = node.attr_string("coordinate_transformation_mode", "half_pixel") == "half_pixel";
  p.max_mode = node.attr_string("mode", "avg") == "max";
  p.out_h = node.attr_int("output_height", 1), p.out_w = node.attr_int("output_width", 1);
  p.sampling_ratio = node.attr_int("sampling_ratio", 0);
  p.spatial_scale = node.attr_float("spatial_scale", 1.0f);
  p.batch = x.dims[0], p.channels = x.dims[1], p.height = x.dims[2], p.width = x.dims[3], p.rois = rois.dims[0];
  p.x = x.data, p.roi = rois.data, p.batch_indices = batch.as<int64_t>(), p.y = ctx.output(0).data;
  return launch_roi_align(p, ctx.stream());
}

Status supports_deform_conv(const Node& node) {
  const Value* x = node.input(0);
  if (x && x->type.shape.has_rank() && x->type.shape.rank() != 4)
    return unsupported("DeformConv: input of rank {} (only 2-D inputs are supported)", x->type.shape.rank());
  return supports_floats(node, {1, 2, 3, 4});
}

Status run_deform_conv(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(1), &offset = ctx.input(2);
  const Node& node = ctx.node();
  if (x.rank() != 4) return unsupported("DeformConv: only 2-D inputs are supported, got rank {}", x.rank());
  if (w.rank() != 4) return invalid_model("DeformConv: weight rank {} is not 4", w.rank());
  KILN_ASSIGN_OR_RETURN(WindowPlan plan, plan_window(node, x.dims, {w.dims.begin() + 2, w.dims.end()}));
  DeformConvParams p;
  p.dtype = x.dtype;
  WindowGeometry& g = p.g;
  g = geometry_of(plan);
  g.out_channels = w.dims[0];
  g.group = node.attr_int("group", 1);
  p.offset_group = node.attr_int("offset_group", 1);
  const int64_t c = g.in_channels, m = g.out_channels, og = p.offset_group, taps = g.kernel[1] * g.kernel[2];
  if (g.group < 1 || og < 1 || c % g.group || m % g.group || c % og || w.dims[1] * g.group != c)
    return invalid_model("DeformConv: channels {} / weight {} do not fit group {} and offset_group {}", c,
                         shape_string(w.dims), g.group, og);
  const int64_t planes = g.batch * og * taps * g.out[1] * g.out[2];
  if (offset.numel() != planes * 2)
    return invalid_model("DeformConv: offset {} does not fit [N, {}, {}, {}]", shape_string(offset.dims), og * taps * 2,
                         g.out[1], g.out[2]);
  if (ctx.has_input(4) && ctx.input(4).numel() != planes) return invalid_model("DeformConv: mask shape does not fit");
  if (ctx.has_input(3) && ctx.input(3).numel() != m)
    return invalid_model("DeformConv: B has {} values for {} output channels", ctx.input(3).numel(), m);
  p.x = x.data, p.w = w.data, p.offset = offset.data, p.y = ctx.output(0).data;
  if (ctx.has_input(3)) p.bias = ctx.input(3).data;
  if (ctx.has_input(4)) p.mask = ctx.input(4).data;
  return launch_deform_conv(p, ctx.stream());
}

Status supports_causal_conv(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_floats(node, {1, 2, 3}));
  const std::string act = node.attr_string("activation", "none");
  if (act != "none" && act != "silu" && act != "swish")
    return unsupported("CausalConvWithState: activation '{}' is not none, silu or swish", act);
  return Status::ok();
}

Status run_causal_conv(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(1);
  if (x.rank() != 3) return invalid_model("CausalConvWithState: input has rank {}; it must be 3", x.rank());
  CausalConvParams p;
  p.dtype = x.dtype;
  p.batch = x.dims[0], p.channels = x.dims[1], p.length = x.dims[2];
  if (w.rank() != 3 || w.dims[0] != p.channels || w.dims[1] != 1 || w.dims[2] < 1)
    return invalid_model("CausalConvWithState: weight has shape {}, expected [{},1,k] with k >= 1",
                         shape_string(w.dims), p.channels);
  p.kernel = w.dims[2];
  if (ctx.has_input(2) && ctx.input(2).dims != std::vector<int64_t>{p.channels})
    return invalid_model("CausalConvWithState: bias has shape {}, expected [{}]", shape_string(ctx.input(2).dims),
                         p.channels);
  if (ctx.has_input(3) && ctx.input(3).dims != std::vector<int64_t>{p.batch, p.channels, p.kernel - 1})
    return invalid_model("CausalConvWithState: past_state has shape {}, expected [{},{},{}]",
                         shape_string(ctx.input(3).dims), p.batch, p.channels, p.kernel - 1);
  const std::string act = ctx.node().attr_string("activation", "none");
  if (act != "none" && act != "silu" && act != "swish")
    return unsupported("CausalConvWithState: activation '{}' is not none, silu or swish", act);
  p.silu = act != "none";
  p.x = x.data, p.w = w.data, p.y = ctx.output(0).data;
  if (ctx.has_input(2)) p.bias = ctx.input(2).data;
  if (ctx.has_input(3)) p.past = ctx.input(3).data;
  if (ctx.has_output(1)) p.present = ctx.output(1).data;
  return launch_causal_conv(p, ctx.stream());
}

KILN_CUDA_KERNEL("", "GridSample",
                 {.run = run_grid_sample, .supports = [](const Node& n) { return supports_floats(n, {1}); }});
// size (input 1) gives the output's dims; the kernel reads it on the host.
KILN_CUDA_KERNEL("", "AffineGrid", {.run = run_affine_grid, .host_inputs = {1}, .supports = [](const Node& n) {
                                      return supports_floats(n, {});
                                    }});
KILN_CUDA_KERNEL("", "RoiAlign", {.run = run_roi_align, .supports = supports_roi_align});
KILN_CUDA_KERNEL("", "DeformConv", {.run = run_deform_conv, .supports = supports_deform_conv});
KILN_CUDA_KERNEL("", "CausalConvWithState", {.run = run_causal_conv, .supports = supports_causal_conv});

}  // namespace
}  // namespace kiln::cuda
