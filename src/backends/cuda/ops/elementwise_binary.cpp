// Binary, variadic and ternary elementwise ops on the GPU: arithmetic, Pow,
// comparisons, logic and bitwise ops with numpy broadcasting, PRelu, SwiGLU,
// Sum/Mean/Max/Min and Where (kernels/elementwise_{arith,compare,nary}.cu).
// Dtypes are those of the CPU kernels (src/backends/cpu/kernels/
// binary_math.cpp, activation.cpp, swiglu.cpp, where_trilu.cpp).
#include <fmt/ranges.h>

#include "backends/cuda/kernels/elementwise_ops.cuh"
#include "backends/cuda/ops/elementwise_common.h"

namespace kiln::cuda {
namespace {

BinaryFnParams binary_params(KernelContext& ctx, BinaryFn fn) {
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output(0);
  BinaryFnParams p;
  p.fn = fn;
  p.dtype = a.dtype;
  p.b_dtype = b.dtype;
  p.a = a.data;
  p.a_dims = a.dims;
  p.b = b.data;
  p.b_dims = b.dims;
  p.y = y.data;
  p.y_dims = y.dims;
  return p;
}

// Both inputs in `types` and of one dtype.
KernelDef binary_def(BinaryFn fn, DTypeMask types) {
  return {.run = [fn](KernelContext& ctx) { return launch_binary_fn(binary_params(ctx, fn), ctx.stream()); },
          .supports =
              [types](const Node& node) {
                KILN_RETURN_IF_ERROR(require_input_dtype(node, 0, types));
                if (node_input_dtype(node, 1) != node_input_dtype(node, 0))
                  return unsupported("{}: inputs of dtypes {} and {}", node.op_type,
                                     dtype_name(node_input_dtype(node, 0)), dtype_name(node_input_dtype(node, 1)));
                return Status::ok();
              }};
}

Status run_mod(KernelContext& ctx) {
  const bool fmod = ctx.node().attr_int("fmod", 0) != 0;
  return launch_binary_fn(binary_params(ctx, fmod ? BinaryFn::kFmod : BinaryFn::kMod), ctx.stream());
}

Status run_bitshift(KernelContext& ctx) {
  const bool left = ctx.node().attr_string("direction", "") == "LEFT";
  return launch_binary_fn(binary_params(ctx, left ? BinaryFn::kShiftLeft : BinaryFn::kShiftRight), ctx.stream());
}

Status run_prelu(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &slope = ctx.input(1);
  if (ctx.output(0).dims != x.dims)
    return invalid_model("PRelu: slope {} does not broadcast to X {}", fmt::join(slope.dims, "x"),
                         fmt::join(x.dims, "x"));
  return launch_binary_fn(binary_params(ctx, BinaryFn::kPRelu), ctx.stream());
}

Status run_swiglu(KernelContext& ctx) {
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1);
  if (a.dims != b.dims)
    return invalid_model("SwiGLU: A [{}] and B [{}] must have one shape", fmt::join(a.dims, ","),
                         fmt::join(b.dims, ","));
  BinaryFnParams p = binary_params(ctx, BinaryFn::kSwiGLU);
  p.alpha = ctx.node().attr_float("alpha", 1.0f);
  return launch_binary_fn(p, ctx.stream());
}

Status supports_pow(const Node& node) {
  KILN_RETURN_IF_ERROR(require_input_dtype(node, 0, kEwNumeric));
  return require_input_dtype(node, 1, kEwNumeric);
}

// ---- Sum, Mean, Max, Min ---------------------------------------------------------

KernelDef fold_def(FoldFn fn, DTypeMask types) {
  return {.run =
              [fn](KernelContext& ctx) {
                FoldParams p;
                p.fn = fn;
                for (size_t i = 0; i < ctx.num_inputs(); ++i) {
                  if (!ctx.has_input(i)) continue;
                  p.inputs.push_back(ctx.input(i).data);
                  p.dims.push_back(ctx.input(i).dims);
                  p.dtype = ctx.input(i).dtype;
                }
                p.y = ctx.output(0).data;
                p.y_dims = ctx.output(0).dims;
                return launch_fold(p, ctx.stream());
              },
          .supports =
              [fn, types](const Node& node) {
                size_t count = 0;
                for (size_t i = 0; i < node.num_inputs(); ++i) {
                  if (!node.input(i)) continue;
                  ++count;
                  KILN_RETURN_IF_ERROR(require_input_dtype(node, i, types));
                  if (node_input_dtype(node, i) != node_input_dtype(node, 0))
                    return unsupported("{}: inputs of dtypes {} and {}", node.op_type,
                                       dtype_name(node_input_dtype(node, 0)), dtype_name(node_input_dtype(node, i)));
                }
                const DType t = node_input_dtype(node, 0);
                const bool rounds_between_passes =
                    (fn == FoldFn::kSum || fn == FoldFn::kMean) && (t == DType::kF16 || t == DType::kBF16);
                if (count > static_cast<size_t>(kMaxFoldInputs) && rounds_between_passes)
                  return unsupported("{}: {} inputs of {} (the CUDA kernel folds up to {} 16-bit inputs)", node.op_type,
                                     count, dtype_name(t), kMaxFoldInputs);
                return Status::ok();
              }};
}

// ---- Where -------------------------------------------------------------------------

Status run_where(KernelContext& ctx) {
  const DeviceTensor &c = ctx.input(0), &x = ctx.input(1), &o = ctx.input(2), &y = ctx.output(0);
  WhereParams p;
  p.elem_size = dtype_bits(x.dtype) / 8;
  p.cond = c.data;
  p.cond_dims = c.dims;
  p.x = x.data;
  p.x_dims = x.dims;
  p.other = o.data;
  p.other_dims = o.dims;
  p.y = y.data;
  p.y_dims = y.dims;
  return launch_where(p, ctx.stream());
}

Status supports_where(const Node& node) {
  KILN_RETURN_IF_ERROR(require_input_dtype(node, 0, kEwBool));
  const DType t = node_input_dtype(node, 1);
  if (t == DType::kString || dtype_is_packed(t) || dtype_bits(t) == 0 || dtype_bits(t) > 64)
    return unsupported("Where: dtype {} (the CUDA kernel takes elements of 1, 2, 4 or 8 bytes)", dtype_name(t));
  if (node_input_dtype(node, 2) != t)
    return unsupported("Where: X and Y of dtypes {} and {}", dtype_name(t), dtype_name(node_input_dtype(node, 2)));
  return Status::ok();
}

constexpr DTypeMask kEqualTypes = kEwNumeric | kEwBool;

}  // namespace

KILN_CUDA_KERNEL("", "Add", binary_def(BinaryFn::kAdd, kEwNumeric));
KILN_CUDA_KERNEL("", "Sub", binary_def(BinaryFn::kSub, kEwNumeric));
KILN_CUDA_KERNEL("", "Mul", binary_def(BinaryFn::kMul, kEwNumeric));
KILN_CUDA_KERNEL("", "Div", binary_def(BinaryFn::kDiv, kEwNumeric));
KILN_CUDA_KERNEL("", "Mod", {.run = run_mod, .supports = binary_def(BinaryFn::kMod, kEwNumeric).supports});
KILN_CUDA_KERNEL(
    "", "Pow",
    {.run = [](KernelContext& ctx) { return launch_binary_fn(binary_params(ctx, BinaryFn::kPow), ctx.stream()); },
     .supports = supports_pow});
KILN_CUDA_KERNEL("", "PRelu", {.run = run_prelu, .supports = binary_def(BinaryFn::kPRelu, kEwNumeric).supports});
KILN_CUDA_KERNEL("", "SwiGLU", {.run = run_swiglu, .supports = binary_def(BinaryFn::kSwiGLU, kEwFloat).supports});
KILN_CUDA_KERNEL("", "Equal", binary_def(BinaryFn::kEqual, kEqualTypes));
KILN_CUDA_KERNEL("", "Less", binary_def(BinaryFn::kLess, kEwNumeric));
KILN_CUDA_KERNEL("", "Greater", binary_def(BinaryFn::kGreater, kEwNumeric));
KILN_CUDA_KERNEL("", "LessOrEqual", binary_def(BinaryFn::kLessOrEqual, kEwNumeric));
KILN_CUDA_KERNEL("", "GreaterOrEqual", binary_def(BinaryFn::kGreaterOrEqual, kEwNumeric));
KILN_CUDA_KERNEL("", "And", binary_def(BinaryFn::kAnd, kEwBool));
KILN_CUDA_KERNEL("", "Or", binary_def(BinaryFn::kOr, kEwBool));
KILN_CUDA_KERNEL("", "Xor", binary_def(BinaryFn::kXor, kEwBool));
KILN_CUDA_KERNEL("", "BitwiseAnd", binary_def(BinaryFn::kBitwiseAnd, kEwInt));
KILN_CUDA_KERNEL("", "BitwiseOr", binary_def(BinaryFn::kBitwiseOr, kEwInt));
KILN_CUDA_KERNEL("", "BitwiseXor", binary_def(BinaryFn::kBitwiseXor, kEwInt));
KILN_CUDA_KERNEL("", "BitShift", {.run = run_bitshift, .supports = binary_def(BinaryFn::kShiftLeft, kEwInt).supports});
KILN_CUDA_KERNEL("", "Sum", fold_def(FoldFn::kSum, kEwNumeric));
KILN_CUDA_KERNEL("", "Mean", fold_def(FoldFn::kMean, kEwFloat));
KILN_CUDA_KERNEL("", "Max", fold_def(FoldFn::kMax, kEwNumeric));
KILN_CUDA_KERNEL("", "Min", fold_def(FoldFn::kMin, kEwNumeric));
KILN_CUDA_KERNEL("", "Where", {.run = run_where, .supports = supports_where});

}  // namespace kiln::cuda
