// Adagrad, Momentum (standard and nesterov) and Adam of the
// ai.onnx.preview.training domain: one elementwise launch per tensor group
// (kernels/training.cu). Inputs: R, T, then the groups X..., G..., states...;
// outputs: the new X... and the new states..., as the CPU kernel lays them out.
#include "backends/cuda/kernels/training.cuh"

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

constexpr const char* kTraining = "ai.onnx.preview.training";

// `groups`: the tensor groups after R and T (3, or 4 for Adam).
Status supports_optimizer(const Node& node, size_t groups) {
  const DType r = input_dtype(node, 0), t = input_dtype(node, 1);
  if (r != DType::kF32 && r != DType::kF64 && r != DType::kF16 && r != DType::kBF16)
    return unsupported("{}: R of dtype {} (the CUDA kernel takes a float type)", node.op_type, dtype_name(r));
  if (t != DType::kI64 && t != DType::kI32)
    return unsupported("{}: T of dtype {} (the CUDA kernel takes i64 or i32)", node.op_type, dtype_name(t));
  if (node.inputs.size() < 2 + groups || (node.inputs.size() - 2) % groups != 0)
    return invalid_model("{}: takes R, T and {} groups of equal size, got {} inputs", node.op_type, groups,
                         node.inputs.size());
  const size_t n = (node.inputs.size() - 2) / groups;
  for (size_t k = 0; k < n; ++k) {
    const DType x = input_dtype(node, 2 + k);
    if (!is_float(x))
      return unsupported("{}: X{} of dtype {} (the CUDA kernel takes f32, f16, bf16 or f64)", node.op_type, k,
                         dtype_name(x));
    for (size_t g = 1; g < groups; ++g)
      if (input_dtype(node, 2 + g * n + k) != x)
        return unsupported("{}: tensor group {} mixes dtypes {} and {} (the CUDA kernel takes one)", node.op_type, k,
                           dtype_name(x), dtype_name(input_dtype(node, 2 + g * n + k)));
  }
  if (node.op_type == "Momentum") {
    const std::string mode = node.attr_string("mode", "standard");
    if (mode != "standard" && mode != "nesterov")
      return invalid_model("Momentum: mode '{}' must be standard or nesterov", mode);
  }
  return Status::ok();
}

OptimizerParams attributes(const Node& node) {
  OptimizerParams p;
  p.norm_coefficient = node.attr_float("norm_coefficient", 0);
  if (node.op_type == "Adagrad") {
    p.kind = OptimizerKind::kAdagrad;
    p.decay_factor = node.attr_float("decay_factor", 0);
    p.epsilon = node.attr_float("epsilon", 1e-6f);
  } else if (node.op_type == "Momentum") {
    p.kind = node.attr_string("mode", "standard") == "nesterov" ? OptimizerKind::kNesterov : OptimizerKind::kMomentum;
    p.alpha = node.attr_float("alpha", 0);
    p.beta = node.attr_float("beta", 0);
  } else {
    p.kind = OptimizerKind::kAdam;
    p.alpha = node.attr_float("alpha", 0.9f);
    p.beta = node.attr_float("beta", 0.999f);
    p.epsilon = node.attr_float("epsilon", 1e-6f);
    p.norm_coefficient_post = node.attr_float("norm_coefficient_post", 0);
  }
  return p;
}

Status run_optimizer(KernelContext& ctx, size_t groups) {
  const Node& node = ctx.node();
  if (ctx.input(0).numel() != 1 || ctx.input(1).numel() != 1)
    return invalid_argument("{}: R and T must be scalars", node.op_type);
  const size_t n = (ctx.num_inputs() - 2) / groups;
  for (size_t k = 0; k < n; ++k) {
    OptimizerParams p = attributes(node);
    p.r = ctx.input(0).data, p.r_dtype = ctx.input(0).dtype;
    p.t = ctx.input(1).data, p.t_dtype = ctx.input(1).dtype;
    const DeviceTensor& x = ctx.input(2 + k);
    for (size_t g = 1; g < groups; ++g)
      if (ctx.input(2 + g * n + k).dims != x.dims)
        return invalid_argument("{}: tensor group {} must hold float tensors of one shape", node.op_type, k);
    p.dtype = x.dtype;
    p.n = x.numel();
    p.x = x.data;
    p.g = ctx.input(2 + n + k).data;
    p.s1 = ctx.input(2 + 2 * n + k).data;
    p.s2 = groups == 4 ? ctx.input(2 + 3 * n + k).data : nullptr;
    p.x_out = ctx.output(k).data;
    p.s1_out = ctx.output(n + k).data;
    p.s2_out = groups == 4 ? ctx.output(2 * n + k).data : nullptr;
    KILN_RETURN_IF_ERROR(launch_optimizer(p, ctx.stream()));
  }
  return Status::ok();
}

KernelDef optimizer_def(size_t groups) {
  return {.run = [groups](KernelContext& ctx) { return run_optimizer(ctx, groups); },
          .supports = [groups](const Node& node) { return supports_optimizer(node, groups); }};
}

}  // namespace

KILN_CUDA_KERNEL(kTraining, "Adagrad", optimizer_def(3));
KILN_CUDA_KERNEL(kTraining, "Momentum", optimizer_def(3));
KILN_CUDA_KERNEL(kTraining, "Adam", optimizer_def(4));

}  // namespace kiln::cuda
