// Softmax, LogSoftmax and Hardmax along any axis.
#include "backends/cuda/kernels/softmax.cuh"

#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

KernelDef softmax_def(SoftmaxKind kind) {
  KernelDef def;
  def.run = [kind](KernelContext& ctx) -> Status {
    const DeviceTensor& x = ctx.input(0);
    KILN_ASSIGN_OR_RETURN(AxisView v, axis_view(ctx.node(), x.dims, ctx.node().attr_int("axis", -1)));
    SoftmaxParams p;
    p.dtype = x.dtype;
    p.x = x.data;
    p.y = ctx.output(0).data;
    p.rows = v.outer, p.cols = v.n, p.inner = v.inner;
    p.kind = kind;
    if (x.numel() == 0) return Status::ok();
    return launch_softmax(p, ctx.stream());
  };
  def.supports = [](const Node& node) { return require_float(node, 0, "input"); };
  return def;
}

KILN_CUDA_KERNEL("", "Softmax", softmax_def(SoftmaxKind::kSoftmax));
KILN_CUDA_KERNEL("", "LogSoftmax", softmax_def(SoftmaxKind::kLogSoftmax));
KILN_CUDA_KERNEL("", "Hardmax", softmax_def(SoftmaxKind::kHardmax));

}  // namespace
}  // namespace kiln::cuda
