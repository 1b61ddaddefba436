// Transpose, Concat, Split, Slice, Expand, Tile, Pad, CenterCropPad,
// DepthToSpace, SpaceToDepth, Trilu and ReverseSequence: element moves by
// element size (every dtype of 1, 2, 4 or 8 bytes; 16 where the kernel is an
// index map), parameters resolved on the host as the CPU kernels do. And
// kiln.SpaceToDepthPad, the stems' cast, pad and 2x2 blocks in one pass
// (f32, f16 and bf16).
#include <algorithm>

#include "backends/cuda/kernels/data_movement.cuh"
#include "backends/cuda/kernels/space_to_depth_pad.cuh"
#include "backends/cuda/ops/data_movement_support.h"
#include "ops/space_to_depth_pad.h"

namespace kiln::cuda {
namespace {

int elem_size(const DeviceTensor& t) { return dm::element_size(t.dtype); }

Status run_transpose(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.rank());
  std::vector<int64_t> perm = ctx.node().attr_ints("perm");
  if (perm.empty())
    for (int64_t i = rank; i-- > 0;) perm.push_back(i);
  for (int64_t& p : perm) p = dm::positive_axis(p, rank);
  return launch_transpose({elem_size(x), x.data, ctx.output(0).data, x.dims, perm}, ctx.stream());
}

Status run_concat(KernelContext& ctx) {
  ConcatParams p;
  p.elem_size = elem_size(ctx.output(0));
  p.axis = ctx.node().attr_int("axis", 0);
  p.y = ctx.output(0).data;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    p.inputs.push_back(ctx.input(i).data);
    p.dims.push_back(ctx.input(i).dims);
  }
  if (ctx.output(0).numel() == 0) return Status::ok();
  return launch_concat(p, ctx.stream());
}

// Each output is a step-1 slice of the input along the axis. Omitted outputs
// still take their part: the split input, or ONNX's equal chunks (the last
// one shorter).
Status run_split(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  const auto axis = static_cast<size_t>(dm::positive_axis(ctx.node().attr_int("axis", 0), x.rank()));
  KILN_ASSIGN_OR_RETURN(auto split, dm::host_ints(ctx, 1));
  const auto outputs = static_cast<int64_t>(ctx.num_outputs());
  const int64_t dim = x.dims[axis], chunk = outputs > 0 ? (dim + outputs - 1) / outputs : 0;
  int64_t offset = 0;
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    int64_t len = i < split.size() ? split[i] : std::clamp<int64_t>(dim - static_cast<int64_t>(i) * chunk, 0, chunk);
    if (ctx.has_output(i)) {
      const DeviceTensor& y = ctx.output(i);
      len = y.dims[axis];
      std::vector<int64_t> starts(x.dims.size(), 0), steps(x.dims.size(), 1);
      starts[axis] = offset;
      KILN_RETURN_IF_ERROR(launch_slice({elem_size(x), x.data, y.data, x.dims, starts, steps, y.dims}, ctx.stream()));
    }
    offset += len;
  }
  return Status::ok();
}

Status run_slice(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.rank());
  KILN_ASSIGN_OR_RETURN(auto starts, dm::host_ints(ctx, 1));
  KILN_ASSIGN_OR_RETURN(auto ends, dm::host_ints(ctx, 2));
  KILN_ASSIGN_OR_RETURN(auto axes, dm::host_ints(ctx, 3));
  KILN_ASSIGN_OR_RETURN(auto steps, dm::host_ints(ctx, 4));
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return invalid_argument("Slice: starts, ends, axes and steps differ in length");
  SliceParams p{elem_size(x),
                x.data,
                ctx.output(0).data,
                x.dims,
                std::vector<int64_t>(x.dims.size(), 0),
                std::vector<int64_t>(x.dims.size(), 1),
                x.dims};
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t a = dm::positive_axis(axes[i], rank);
    if (a < 0 || a >= rank) return invalid_argument("Slice: axis {} for rank {}", axes[i], rank);
    const auto axis = static_cast<size_t>(a);
    const int64_t dim = x.dims[axis], s = steps[i];
    if (s == 0) return invalid_argument("Slice: step 0 on axis {}", a);
    int64_t b = starts[i] < 0 ? starts[i] + dim : starts[i], e = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (s > 0) {
      b = std::clamp<int64_t>(b, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      p.out_dims[axis] = std::max<int64_t>(0, (e - b + s - 1) / s);
    } else if (dim == 0) {
      p.out_dims[axis] = 0;
    } else {
      b = std::clamp<int64_t>(b, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      p.out_dims[axis] = std::max<int64_t>(0, (b - e - s - 1) / -s);
    }
    p.starts[axis] = b;
    p.steps[axis] = s;
  }
  if (p.out_dims != ctx.output(0).dims) return internal_error("Slice: output dims differ from shape inference");
  return launch_slice(p, ctx.stream());
}

Status run_expand_or_tile(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  if (x.dims.size() > y.dims.size()) return internal_error("{}: output rank below the input's", ctx.node().op_type);
  std::vector<int64_t> in_dims(y.dims.size() - x.dims.size(), 1);  // Expand broadcasts from the right
  in_dims.insert(in_dims.end(), x.dims.begin(), x.dims.end());
  return launch_tile({elem_size(x), x.data, y.data, in_dims, y.dims}, ctx.stream());
}

Status run_padded(KernelContext& ctx, std::vector<int64_t> before, PadMode mode, ElemBits fill) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  for (size_t k = 0; k < x.dims.size(); ++k)
    if (x.dims[k] == 0 && y.dims[k] > 0 && mode != PadMode::kConstant && y.numel() > 0)
      return invalid_argument("Pad: cannot pad an empty axis {} in this mode", k);
  return launch_pad({elem_size(x), x.data, y.data, x.dims, y.dims, std::move(before), mode, fill}, ctx.stream());
}

Status run_pad(KernelContext& ctx) {
  const auto rank = static_cast<int64_t>(ctx.input(0).rank());
  KILN_ASSIGN_OR_RETURN(auto pads, dm::host_ints(ctx, 1));
  KILN_ASSIGN_OR_RETURN(auto axes, dm::host_ints(ctx, 3));
  if (!ctx.has_input(3))
    for (int64_t k = 0; k < rank; ++k) axes.push_back(k);
  if (pads.size() != 2 * axes.size())
    return invalid_argument("Pad: pads has {} entries for {} axes", pads.size(), axes.size());
  std::vector<int64_t> before(static_cast<size_t>(rank), 0);
  for (size_t i = 0; i < axes.size(); ++i) before[static_cast<size_t>(dm::positive_axis(axes[i], rank))] = pads[i];
  const std::string m = ctx.node().attr_string("mode", "constant");
  const PadMode mode = m == "reflect" ? PadMode::kReflect
                       : m == "edge"  ? PadMode::kEdge
                       : m == "wrap"  ? PadMode::kWrap
                                      : PadMode::kConstant;
  ElemBits fill;
  const Tensor* value = ctx.host_input(2);
  if (value && value->numel() > 0) fill = dm::converted_bits(ctx.output(0).dtype, *value);
  return run_padded(ctx, std::move(before), mode, fill);
}

Status run_center_crop_pad(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.rank());
  KILN_ASSIGN_OR_RETURN(auto shape, dm::host_ints(ctx, 1));
  std::vector<int64_t> axes = ctx.node().attr_ints("axes");
  if (axes.empty())
    for (int64_t k = 0; k < rank; ++k) axes.push_back(k);
  if (shape.size() != axes.size())
    return invalid_argument("CenterCropPad: shape has {} entries for {} axes", shape.size(), axes.size());
  std::vector<int64_t> before(static_cast<size_t>(rank), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const auto a = static_cast<size_t>(dm::positive_axis(axes[i], rank));
    const int64_t diff = shape[i] - x.dims[a];
    before[a] = diff >= 0 ? diff / 2 : -((-diff) / 2);  // the odd element goes to the end
  }
  return run_padded(ctx, std::move(before), PadMode::kConstant, {});
}

Status run_depth_space(KernelContext& ctx, bool to_space) {
  const DeviceTensor& x = ctx.input(0);
  if (x.rank() != 4) return invalid_argument("{}: input must be 4-D", ctx.node().op_type);
  DepthSpaceParams p{elem_size(x),
                     x.data,
                     ctx.output(0).data,
                     x.dims,
                     ctx.node().attr_int("blocksize", 1),
                     ctx.node().attr_string("mode", "DCR") == "CRD",
                     to_space};
  return launch_depth_space(p, ctx.stream());
}

Status run_space_to_depth_pad(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(SpaceToDepthPadAttrs a, space_to_depth_pad_attrs(ctx.node(), x.dtype));
  KILN_ASSIGN_OR_RETURN(auto dims, space_to_depth_pad_dims(a, x.dims));
  if (y.dims != std::vector<int64_t>(dims.begin(), dims.end()))
    return internal_error("kiln.SpaceToDepthPad: output dims differ from shape inference");
  SpaceToDepthPadParams p;
  p.x_dtype = x.dtype, p.y_dtype = y.dtype, p.x = x.data, p.y = y.data;
  p.n = x.dims[0], p.c = x.dims[1], p.h = x.dims[2], p.w = x.dims[3];
  p.channels = a.channels, p.top = a.top, p.left = a.left, p.hb = dims[1], p.wb = dims[2];
  return launch_space_to_depth_pad(p, ctx.stream());
}

Status supports_space_to_depth_pad(const Node& n) {
  const DType x = n.input(0) ? n.input(0)->type.dtype : DType::kUndefined;
  KILN_ASSIGN_OR_RETURN(SpaceToDepthPadAttrs a, space_to_depth_pad_attrs(n, x));
  const DType y = a.to != DType::kUndefined ? a.to : x;
  if (!space_to_depth_pad_takes(x, y))
    return unsupported("kiln.SpaceToDepthPad: {} to {} (the CUDA kernel takes f32, f16 and bf16)", dtype_name(x),
                       dtype_name(y));
  return Status::ok();
}

Status run_trilu(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(auto k, dm::host_ints(ctx, 1));
  if (ctx.has_input(1) && k.size() != 1) return invalid_argument("Trilu: k must have one element");
  const bool upper = ctx.node().attr_int("upper", 1) != 0;
  return launch_trilu({elem_size(x), x.data, ctx.output(0).data, x.dims, k.empty() ? 0 : k[0], upper}, ctx.stream());
}

Status run_reverse_sequence(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &lens = ctx.input(1);
  if (x.rank() < 2) return invalid_argument("ReverseSequence: input must have rank >= 2");
  const auto batch_axis = static_cast<int>(ctx.node().attr_int("batch_axis", 1));
  const auto time_axis = static_cast<int>(ctx.node().attr_int("time_axis", 0));
  if (batch_axis < 0 || batch_axis > 1 || lens.numel() != x.dims[static_cast<size_t>(batch_axis)])
    return invalid_argument("ReverseSequence: sequence_lens has {} entries for the batch", lens.numel());
  ReverseSequenceParams p{elem_size(x), x.data,           ctx.output(0).data, x.dims,
                          lens.data,    dm::is_i64(lens), batch_axis,         time_axis};
  return launch_reverse_sequence(p, ctx.stream());
}

// Transpose, Slice and Split use the existing kernels (up to 8 bytes).
Status supports_up_to_8(const Node& n) { return dm::supports_movable(n, 0, 8); }
Status supports_any(const Node& n) { return dm::supports_movable(n, 0); }
Status supports_concat(const Node& n) {
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (n.input(i)) KILN_RETURN_IF_ERROR(dm::supports_movable(n, i));
  return Status::ok();
}
Status supports_reverse_sequence(const Node& n) { return dm::supports_movable_indexed(n, {1}); }

}  // namespace

KILN_CUDA_KERNEL("", "Transpose", {.run = run_transpose, .supports = supports_up_to_8});
KILN_CUDA_KERNEL("", "Concat", {.run = run_concat, .supports = supports_concat});
KILN_CUDA_KERNEL("", "Split", {.run = run_split, .host_inputs = {1}, .supports = supports_up_to_8});
KILN_CUDA_KERNEL("", "Slice", {.run = run_slice, .host_inputs = {1, 2, 3, 4}, .supports = supports_up_to_8});
KILN_CUDA_KERNEL("", "Expand", {.run = run_expand_or_tile, .host_inputs = {1}, .supports = supports_any});
KILN_CUDA_KERNEL("", "Tile", {.run = run_expand_or_tile, .host_inputs = {1}, .supports = supports_any});
KILN_CUDA_KERNEL("", "Pad", {.run = run_pad, .host_inputs = {1, 2, 3}, .supports = supports_any});
KILN_CUDA_KERNEL("", "CenterCropPad", {.run = run_center_crop_pad, .host_inputs = {1}, .supports = supports_any});
KILN_CUDA_KERNEL("", "DepthToSpace",
                 {.run = [](KernelContext& c) { return run_depth_space(c, true); }, .supports = supports_any});
KILN_CUDA_KERNEL("", "SpaceToDepth",
                 {.run = [](KernelContext& c) { return run_depth_space(c, false); }, .supports = supports_any});
KILN_CUDA_KERNEL("kiln", "SpaceToDepthPad", {.run = run_space_to_depth_pad, .supports = supports_space_to_depth_pad});
KILN_CUDA_KERNEL("", "Trilu", {.run = run_trilu, .host_inputs = {1}, .supports = supports_any});
KILN_CUDA_KERNEL("", "ReverseSequence", {.run = run_reverse_sequence, .supports = supports_reverse_sequence});

}  // namespace kiln::cuda
