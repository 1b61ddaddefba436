// Range, ConstantOfShape, EyeLike and OneHot (values given by kernel
// arguments, never copied from host memory during the run) and CumSum /
// CumProd.
#include "backends/cuda/kernels/cumulative.cuh"
#include "backends/cuda/kernels/indexing.cuh"
#include "backends/cuda/ops/data_movement_support.h"
#include "ir/element_cast.h"

namespace kiln::cuda {
namespace {

Status run_range(KernelContext& ctx) {
  const Tensor *start = ctx.host_input(0), *delta = ctx.host_input(2);
  if (!start || !delta || start->numel() != 1 || delta->numel() != 1)
    return invalid_argument("Range: start and delta must be scalars known on the host");
  RangeParams p;
  p.dtype = ctx.output(0).dtype;
  p.y = ctx.output(0).data;
  p.n = ctx.output(0).numel();
  const Scalar s = read_scalar(start->dtype(), start->raw(), 0), d = read_scalar(delta->dtype(), delta->raw(), 0);
  p.f_start = s.as_double(), p.f_delta = d.as_double();
  // Integers keep every bit (u64 as its two's-complement int64).
  p.i_start = s.kind == Scalar::Kind::kUnsigned ? static_cast<int64_t>(s.u) : s.i;
  p.i_delta = d.kind == Scalar::Kind::kUnsigned ? static_cast<int64_t>(d.u) : d.i;
  return launch_range(p, ctx.stream());
}

Status run_constant_of_shape(KernelContext& ctx) {
  const DeviceTensor& y = ctx.output(0);
  const Attribute* value = ctx.node().attr("value");
  const ElemBits fill = value ? dm::element_bits(value->t, 0) : ElemBits{};  // no value: zeros
  return launch_fill(dm::element_size(y.dtype), y.data, y.numel(), fill, ctx.stream());
}

Status run_eye_like(KernelContext& ctx) {
  const DeviceTensor& y = ctx.output(0);
  if (y.rank() != 2) return invalid_argument("EyeLike: input must be 2-D, has rank {}", y.rank());
  EyeLikeParams p{dm::element_size(y.dtype), y.data, y.dims[0], y.dims[1], ctx.node().attr_int("k", 0),
                  dm::one_bits(y.dtype)};
  return launch_eye_like(p, ctx.stream());
}

Status run_one_hot(KernelContext& ctx) {
  const DeviceTensor &indices = ctx.input(0), &y = ctx.output(0);
  const Tensor *depth = ctx.host_input(1), *values = ctx.host_input(2);
  if (!depth || !values || values->numel() != 2)
    return invalid_argument("OneHot: depth and values ([off, on]) must be known on the host");
  OneHotParams p;
  p.elem_size = dm::element_size(y.dtype);
  p.indices = indices.data;
  p.index_dtype = indices.dtype;
  p.idx_dims = indices.dims;
  p.axis = dm::positive_axis(ctx.node().attr_int("axis", -1), indices.rank() + 1);
  p.depth = static_cast<int64_t>(read_scalar(depth->dtype(), depth->raw(), 0).as_double());
  p.off = dm::element_bits(*values, 0);
  p.on = dm::element_bits(*values, 1);
  p.y = y.data;
  if (p.depth * indices.numel() != y.numel()) return internal_error("OneHot: depth differs from shape inference");
  return launch_one_hot(p, ctx.stream());
}

Status run_cumulative(KernelContext& ctx, bool product) {
  const DeviceTensor& x = ctx.input(0);
  const std::string& name = ctx.node().op_type;
  KILN_ASSIGN_OR_RETURN(auto axis, dm::host_ints(ctx, 1));
  if (axis.size() != 1) return invalid_argument("{}: axis must hold one element, got {}", name, axis.size());
  const int64_t rank = x.rank();
  if (axis[0] < -rank || axis[0] >= rank) return invalid_argument("{}: axis {} for rank {}", name, axis[0], rank);
  CumulativeParams p;
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = ctx.output(0).data;
  p.dims = x.dims;
  p.axis = dm::positive_axis(axis[0], rank);
  p.product = product;
  p.exclusive = ctx.node().attr_int("exclusive", 0) != 0;
  p.reverse = ctx.node().attr_int("reverse", 0) != 0;
  return launch_cumulative(p, ctx.stream());
}

// The output dtype as the node states it (shape inference may not have typed
// the output when `supports` runs).
Status supports_writable(const Node& n, DType t) {
  if (dm::element_size(t) == 0)
    return unsupported("{}: output dtype {} (the CUDA kernel writes elements of 1 to 16 bytes)", n.op_type,
                       dtype_name(t));
  return Status::ok();
}

Status supports_constant_of_shape(const Node& n) {
  const Attribute* value = n.attr("value");
  return supports_writable(n, value ? value->t.dtype() : DType::kF32);
}

Status supports_eye_like(const Node& n) {
  const Value* x = n.input(0);
  const int64_t dtype = n.attr_int("dtype", x ? static_cast<int64_t>(x->type.dtype) : 0);
  return supports_writable(n, static_cast<DType>(dtype));
}

Status supports_one_hot(const Node& n) {
  KILN_RETURN_IF_ERROR(dm::supports_numeric(n, 0));
  const Value* values = n.input(2);
  return supports_writable(n, values ? values->type.dtype : DType::kUndefined);
}

}  // namespace

KILN_CUDA_KERNEL("", "Range", {.run = run_range, .host_inputs = {0, 1, 2}, .supports = [](const Node& n) {
                                 return dm::supports_numeric(n, 0);
                               }});
KILN_CUDA_KERNEL("", "ConstantOfShape",
                 {.run = run_constant_of_shape, .host_inputs = {0}, .supports = supports_constant_of_shape});
KILN_CUDA_KERNEL("", "EyeLike", {.run = run_eye_like, .supports = supports_eye_like});
KILN_CUDA_KERNEL("", "OneHot", {.run = run_one_hot, .host_inputs = {1, 2}, .supports = supports_one_hot});
KILN_CUDA_KERNEL("", "CumSum",
                 {.run = [](KernelContext& c) { return run_cumulative(c, false); },
                  .host_inputs = {1},
                  .supports = [](const Node& n) { return dm::supports_numeric(n, 0); }});
KILN_CUDA_KERNEL("", "CumProd",
                 {.run = [](KernelContext& c) { return run_cumulative(c, true); },
                  .host_inputs = {1},
                  .supports = [](const Node& n) { return dm::supports_numeric(n, 0); }});

}  // namespace kiln::cuda
