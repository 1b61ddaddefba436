// Unary elementwise ops and activations, IsNaN/IsInf/Not, Shrink and Clip on
// the GPU (kernels/elementwise_unary.cu). Each op takes the dtypes its CPU
// kernel takes (src/backends/cpu/kernels/unary_math.cpp, activation.cpp).
#include "backends/cuda/kernels/elementwise_ops.cuh"
#include "backends/cuda/ops/elementwise_common.h"

namespace kiln::cuda {
namespace {

// The op's attributes, with the CPU kernel's defaults.
void read_attributes(const Node& node, UnaryFnParams& p) {
  switch (p.fn) {
    case UnaryFn::kLeakyRelu: p.alpha = node.attr_float("alpha", 0.01f); break;
    case UnaryFn::kElu:
    case UnaryFn::kCelu:
    case UnaryFn::kThresholdedRelu:
    case UnaryFn::kSwish: p.alpha = node.attr_float("alpha", 1.0f); break;
    case UnaryFn::kSelu:
      p.alpha = node.attr_float("alpha", 1.67326319217681884765625f);
      p.gamma = node.attr_float("gamma", 1.05070102214813232421875f);
      break;
    case UnaryFn::kHardSigmoid:
      p.alpha = node.attr_float("alpha", 0.2f);
      p.beta = node.attr_float("beta", 0.5f);
      break;
    case UnaryFn::kShrink:
      p.alpha = node.attr_float("lambd", 0.5f);
      p.beta = node.attr_float("bias", 0.0f);
      break;
    case UnaryFn::kIsInf:
      p.detect_positive = node.attr_int("detect_positive", 1) != 0;
      p.detect_negative = node.attr_int("detect_negative", 1) != 0;
      break;
    case UnaryFn::kGelu:
      if (node.attr_string("approximate", "none") == "tanh") p.fn = UnaryFn::kGeluTanh;
      break;
    default: break;
  }
}

KernelDef unary_def(UnaryFn fn, DTypeMask types) {
  return {.run =
              [fn](KernelContext& ctx) {
                const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
                UnaryFnParams p;
                p.fn = fn;
                p.dtype = x.dtype;
                p.x = x.data;
                p.y = y.data;
                p.n = x.numel();
                read_attributes(ctx.node(), p);
                return launch_unary_fn(p, ctx.stream());
              },
          .supports = [types](const Node& node) { return require_input_dtype(node, 0, types); }};
}

Status run_clip(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  ClipParams p;
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = y.data;
  p.n = x.numel();
  for (size_t i : {1, 2}) {
    if (!ctx.has_input(i)) continue;
    const DeviceTensor& b = ctx.input(i);
    if (b.numel() != 1)
      return invalid_model("Clip: {} must hold one element, got {}", i == 1 ? "min" : "max", b.numel());
    (i == 1 ? p.min : p.max) = b.data;
    (i == 1 ? p.min_dtype : p.max_dtype) = b.dtype;
  }
  return launch_clip(p, ctx.stream());
}

Status supports_clip(const Node& node) {
  for (size_t i : {0, 1, 2}) KILN_RETURN_IF_ERROR(require_input_dtype(node, i, kEwNumeric));
  return Status::ok();
}

}  // namespace

KILN_CUDA_KERNEL("", "Reciprocal", unary_def(UnaryFn::kReciprocal, kEwFloat));
KILN_CUDA_KERNEL("", "Floor", unary_def(UnaryFn::kFloor, kEwFloat));
KILN_CUDA_KERNEL("", "Ceil", unary_def(UnaryFn::kCeil, kEwFloat));
KILN_CUDA_KERNEL("", "Sqrt", unary_def(UnaryFn::kSqrt, kEwFloat));
KILN_CUDA_KERNEL("", "Exp", unary_def(UnaryFn::kExp, kEwFloat));
KILN_CUDA_KERNEL("", "Log", unary_def(UnaryFn::kLog, kEwFloat));
KILN_CUDA_KERNEL("", "Tanh", unary_def(UnaryFn::kTanh, kEwFloat));
KILN_CUDA_KERNEL("", "Sigmoid", unary_def(UnaryFn::kSigmoid, kEwFloat));
KILN_CUDA_KERNEL("", "Sin", unary_def(UnaryFn::kSin, kEwFloat));
KILN_CUDA_KERNEL("", "Cos", unary_def(UnaryFn::kCos, kEwFloat));
KILN_CUDA_KERNEL("", "Tan", unary_def(UnaryFn::kTan, kEwFloat));
KILN_CUDA_KERNEL("", "Asin", unary_def(UnaryFn::kAsin, kEwFloat));
KILN_CUDA_KERNEL("", "Acos", unary_def(UnaryFn::kAcos, kEwFloat));
KILN_CUDA_KERNEL("", "Atan", unary_def(UnaryFn::kAtan, kEwFloat));
KILN_CUDA_KERNEL("", "Sinh", unary_def(UnaryFn::kSinh, kEwFloat));
KILN_CUDA_KERNEL("", "Cosh", unary_def(UnaryFn::kCosh, kEwFloat));
KILN_CUDA_KERNEL("", "Asinh", unary_def(UnaryFn::kAsinh, kEwFloat));
KILN_CUDA_KERNEL("", "Acosh", unary_def(UnaryFn::kAcosh, kEwFloat));
KILN_CUDA_KERNEL("", "Atanh", unary_def(UnaryFn::kAtanh, kEwFloat));
KILN_CUDA_KERNEL("", "Erf", unary_def(UnaryFn::kErf, kEwFloat));
KILN_CUDA_KERNEL("", "Round", unary_def(UnaryFn::kRound, kEwFloat));
KILN_CUDA_KERNEL("", "Softsign", unary_def(UnaryFn::kSoftsign, kEwFloat));
KILN_CUDA_KERNEL("", "Softplus", unary_def(UnaryFn::kSoftplus, kEwFloat));
KILN_CUDA_KERNEL("", "LeakyRelu", unary_def(UnaryFn::kLeakyRelu, kEwFloat));
KILN_CUDA_KERNEL("", "Elu", unary_def(UnaryFn::kElu, kEwFloat));
KILN_CUDA_KERNEL("", "Selu", unary_def(UnaryFn::kSelu, kEwFloat));
KILN_CUDA_KERNEL("", "Celu", unary_def(UnaryFn::kCelu, kEwFloat));
KILN_CUDA_KERNEL("", "HardSigmoid", unary_def(UnaryFn::kHardSigmoid, kEwFloat));
KILN_CUDA_KERNEL("", "HardSwish", unary_def(UnaryFn::kHardSwish, kEwFloat));
KILN_CUDA_KERNEL("", "Mish", unary_def(UnaryFn::kMish, kEwFloat));
KILN_CUDA_KERNEL("", "Gelu", unary_def(UnaryFn::kGelu, kEwFloat));  // approximate="tanh" -> kGeluTanh
KILN_CUDA_KERNEL("", "ThresholdedRelu", unary_def(UnaryFn::kThresholdedRelu, kEwFloat));
KILN_CUDA_KERNEL("", "Swish", unary_def(UnaryFn::kSwish, kEwFloat));
KILN_CUDA_KERNEL("", "Abs", unary_def(UnaryFn::kAbs, kEwNumeric));
KILN_CUDA_KERNEL("", "Neg", unary_def(UnaryFn::kNeg, kEwSignedNumeric));
KILN_CUDA_KERNEL("", "Sign", unary_def(UnaryFn::kSign, kEwNumeric));
KILN_CUDA_KERNEL("", "Relu", unary_def(UnaryFn::kRelu, kEwSignedNumeric));
KILN_CUDA_KERNEL("", "Shrink", unary_def(UnaryFn::kShrink, kEwNumeric));
KILN_CUDA_KERNEL("", "BitwiseNot", unary_def(UnaryFn::kBitwiseNot, kEwInt));
KILN_CUDA_KERNEL("", "IsNaN", unary_def(UnaryFn::kIsNaN, kEwFloat));
KILN_CUDA_KERNEL("", "IsInf", unary_def(UnaryFn::kIsInf, kEwFloat));
KILN_CUDA_KERNEL("", "Not", unary_def(UnaryFn::kNot, kEwBool));
KILN_CUDA_KERNEL("", "Clip", {.run = run_clip, .supports = supports_clip});

}  // namespace kiln::cuda
