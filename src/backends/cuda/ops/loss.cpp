// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (with its optional
// log_prob output).
#include "backends/cuda/kernels/loss.cuh"

#include "backends/cuda/kernels/softmax.cuh"
#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

Expected<LossParams> loss_params(const Node& node, DType dtype, const std::vector<int64_t>& dims, bool softmax) {
  if (dims.size() < 2) return invalid_model("{}: input must be [N, C, ...]", node.op_type);
  LossParams p;
  p.dtype = dtype;
  p.n = dims[0], p.c = dims[1];
  p.d = dims_product(dims, 2, dims.size());
  p.softmax = softmax;
  p.has_ignore_index = node.has_attr("ignore_index");
  p.ignore_index = node.attr_int("ignore_index", 0);
  const std::string reduction = node.attr_string("reduction", "mean");
  if (reduction == "none")
    p.reduction = LossReduction::kNone;
  else if (reduction == "sum")
    p.reduction = LossReduction::kSum;
  else if (reduction == "mean")
    p.reduction = LossReduction::kMean;
  else
    return invalid_model("{}: reduction '{}' (none, sum or mean)", node.op_type, reduction);
  return p;
}

KernelDef loss_def(bool softmax) {
  KernelDef def;
  def.run = [softmax](KernelContext& ctx) -> Status {
    const DeviceTensor& x = ctx.input(0);
    KILN_ASSIGN_OR_RETURN(LossParams p, loss_params(ctx.node(), x.dtype, x.dims, softmax));
    const DeviceTensor& target = ctx.input(1);
    if (target.numel() != p.n * p.d)
      return invalid_model("{}: target has {} elements, expected {}", ctx.node().op_type, target.numel(), p.n * p.d);
    if (ctx.has_input(2) && ctx.input(2).numel() != p.c)
      return invalid_model("{}: weight has {} elements, C is {}", ctx.node().op_type, ctx.input(2).numel(), p.c);
    p.x = x.data;
    p.target = target.data;
    p.target_i64 = target.dtype == DType::kI64;
    p.weight = ctx.has_input(2) ? ctx.input(2).data : nullptr;
    p.loss = ctx.output(0).data;
    p.workspace = ctx.workspace();
    p.workspace_bytes = ctx.workspace_bytes();
    if (softmax && ctx.has_output(1)) {
      SoftmaxParams sp;
      sp.dtype = x.dtype;
      sp.x = x.data;
      sp.y = ctx.output(1).data;
      sp.rows = p.n, sp.cols = p.c, sp.inner = p.d;
      sp.kind = SoftmaxKind::kLogSoftmax;
      KILN_RETURN_IF_ERROR(launch_softmax(sp, ctx.stream()));
    }
    return launch_loss(p, ctx.stream());
  };
  def.workspace = [softmax](const KernelQuery& q) -> size_t {
    const std::vector<int64_t>* dims = q.input_dims(0);
    if (!dims) return 0;
    auto p = loss_params(q.node(), q.input_dtype(0), *dims, softmax);
    return p.is_ok() ? loss_workspace_bytes(*p) : 0;
  };
  def.supports = [](const Node& node) -> Status {
    KILN_RETURN_IF_ERROR(require_float(node, 0, "scores"));
    const DType t = input_dtype(node, 1);
    if (t != DType::kUndefined && t != DType::kI32 && t != DType::kI64)
      return unsupported("{}: target dtype {} (i32 or i64)", node.op_type, dtype_name(t));
    const DType w = input_dtype(node, 2);
    if (w != DType::kUndefined && w != input_dtype(node, 0))
      return unsupported("{}: weight dtype {} differs from the scores' {}", node.op_type, dtype_name(w),
                         dtype_name(input_dtype(node, 0)));
    return Status::ok();
  };
  return def;
}

KILN_CUDA_KERNEL("", "NegativeLogLikelihoodLoss", loss_def(false));
KILN_CUDA_KERNEL("", "SoftmaxCrossEntropyLoss", loss_def(true));

}  // namespace
}  // namespace kiln::cuda
