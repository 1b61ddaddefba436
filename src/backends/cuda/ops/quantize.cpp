// QuantizeLinear, DequantizeLinear (per tensor, per axis, blocked) and
// DynamicQuantizeLinear.
#include "backends/cuda/kernels/quantize.cuh"

#include "backends/cuda/cuda_kernel.h"

namespace kiln::cuda {
namespace {

DType value_type(const Value* v) { return v ? v->type.dtype : DType::kUndefined; }

// The CPU kernel's scale_index: which scale element each x element uses.
Expected<ScaleLayout> scale_layout(const KernelContext& ctx, const DeviceTensor& x, const DeviceTensor& scale,
                                   const char* op) {
  ScaleLayout s;
  const int64_t block = ctx.node().attr_int("block_size", 0);
  if (x.numel() == 0) return s;  // nothing to quantize (and an axis of size 0 to divide by)
  if (scale.numel() == 1 && (block == 0 || x.numel() <= 1)) return s;
  int64_t axis = ctx.node().attr_int("axis", 1);
  if (axis < -x.rank() || axis >= x.rank())
    return invalid_model("{}: axis {} out of range for rank {}", op, axis, x.rank());
  if (axis < 0) axis += x.rank();
  s.per_tensor = false;
  s.axis_dim = x.dims[axis];
  for (int64_t i = axis + 1; i < x.rank(); ++i) s.inner *= x.dims[i];
  s.block = block;
  if (block == 0) {
    if (scale.numel() != s.axis_dim)
      return invalid_model("{}: scale has {} values for axis size {}", op, scale.numel(), s.axis_dim);
    return s;
  }
  if (block < 0) return invalid_model("{}: block_size {} is negative", op, block);
  s.scale_blocks = (s.axis_dim + block - 1) / block;
  if (scale.rank() != x.rank() || scale.dims[axis] != s.scale_blocks ||
      scale.numel() != x.numel() / s.axis_dim * s.scale_blocks)
    return invalid_model("{}: blocked scale shape does not match x with block_size {}", op, block);
  return s;
}

// A dtype not yet known (a graph without inferred types) is checked when
// the kernel runs; `supports` refuses only known dtypes the kernels lack.
bool known_and(DType t, bool ok) { return t == DType::kUndefined || ok; }

// The output dtypes as shape inference gives them (output values may be untyped here).
DType quantize_output_type(const Node& node) {
  if (node.input(2)) return value_type(node.input(2));
  const int64_t attr = node.attr_int("output_dtype", 0);
  return attr != 0 ? static_cast<DType>(attr) : DType::kU8;
}

DType dequantize_output_type(const Node& node) {
  const int64_t attr = node.attr_int("output_dtype", 0);
  return attr != 0 ? static_cast<DType>(attr) : value_type(node.input(1));
}

Status supports_quantize(const Node& node) {
  const DType x = value_type(node.input(0)), s = value_type(node.input(1)), y = quantize_output_type(node);
  if (!known_and(x, real_dtype_supported(x) || x == DType::kI32))
    return unsupported("QuantizeLinear: input dtype {} (the CUDA kernel takes f32, f16, bf16, f64, i32)",
                       dtype_name(x));
  if (!known_and(s, real_dtype_supported(s))) return unsupported("QuantizeLinear: scale dtype {}", dtype_name(s));
  if (!known_and(y, quantized_dtype_supported(y)))
    return unsupported(
        "QuantizeLinear: output dtype {} (the CUDA kernel takes 2- to 32-bit integers, f8 kinds, "
        "f4e2m1)",
        dtype_name(y));
  return Status::ok();
}

Status run_quantize(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &scale = ctx.input(1), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(ScaleLayout layout, scale_layout(ctx, x, scale, "QuantizeLinear"));
  QuantizeParams p;
  if (ctx.has_input(2)) {
    if (ctx.input(2).numel() != scale.numel())
      return invalid_model("QuantizeLinear: y_zero_point and y_scale sizes differ");
    p.zero = ctx.input(2).data;
  }
  p.x_type = x.dtype, p.scale_type = scale.dtype, p.y_type = y.dtype;
  p.x = x.data, p.scale = scale.data, p.y = y.data;
  p.n = x.numel();
  p.layout = layout;
  p.saturate = ctx.node().attr_int("saturate", 1) != 0;
  const auto precision = static_cast<DType>(ctx.node().attr_int("precision", 0));
  p.precision = precision == DType::kUndefined ? scale.dtype : precision;
  return launch_quantize(p, ctx.stream());
}

Status supports_dequantize(const Node& node) {
  const DType x = value_type(node.input(0)), s = value_type(node.input(1)), y = dequantize_output_type(node);
  if (!known_and(x, quantized_dtype_supported(x)))
    return unsupported(
        "DequantizeLinear: input dtype {} (the CUDA kernel takes 2- to 32-bit integers, f8 kinds, "
        "f4e2m1)",
        dtype_name(x));
  if (!known_and(s, real_dtype_supported(s))) return unsupported("DequantizeLinear: scale dtype {}", dtype_name(s));
  if (!known_and(y, real_dtype_supported(y))) return unsupported("DequantizeLinear: output dtype {}", dtype_name(y));
  return Status::ok();
}

Status run_dequantize(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &scale = ctx.input(1), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(ScaleLayout layout, scale_layout(ctx, x, scale, "DequantizeLinear"));
  DequantizeParams p;
  if (ctx.has_input(2)) {
    const DeviceTensor& zp = ctx.input(2);
    if (zp.numel() != scale.numel()) return invalid_model("DequantizeLinear: x_zero_point and x_scale sizes differ");
    if (zp.dtype != x.dtype)
      return invalid_model("DequantizeLinear: x_zero_point is {} but x is {}", dtype_name(zp.dtype),
                           dtype_name(x.dtype));
    p.zero = zp.data;
  }
  p.x_type = x.dtype, p.scale_type = scale.dtype, p.y_type = y.dtype;
  p.x = x.data, p.scale = scale.data, p.y = y.data;
  p.n = x.numel();
  p.layout = layout;
  return launch_dequantize(p, ctx.stream());
}

Status supports_dynamic_quantize(const Node& node) {
  const DType x = value_type(node.input(0));
  if (!known_and(x, real_dtype_supported(x)))
    return unsupported("DynamicQuantizeLinear: input dtype {} (the CUDA kernel takes f32, f16, bf16, f64)",
                       dtype_name(x));
  if (!node.output(1) || !node.output(2))
    return unsupported("DynamicQuantizeLinear: the CUDA kernel needs the scale and zero point outputs");
  return Status::ok();
}

Status run_dynamic_quantize(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  DynamicQuantizeParams p;
  p.x_type = x.dtype;
  p.x = x.data;
  p.n = x.numel();
  p.y = ctx.output(0).data;
  p.scale = ctx.output(1).data;
  p.zero = ctx.output(2).data;
  return launch_dynamic_quantize(p, ctx.stream());
}

KILN_CUDA_KERNEL("", "QuantizeLinear", {.run = run_quantize, .supports = supports_quantize});
KILN_CUDA_KERNEL("", "DequantizeLinear", {.run = run_dequantize, .supports = supports_dequantize});
KILN_CUDA_KERNEL("", "DynamicQuantizeLinear", {.run = run_dynamic_quantize, .supports = supports_dynamic_quantize});

}  // namespace
}  // namespace kiln::cuda
