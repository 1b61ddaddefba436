// Reduce* (axes as a host input), ArgMax/ArgMin and TopK (K as a host input).
#include "backends/cuda/kernels/reduce.cuh"

#include "backends/cuda/kernels/arg_topk.cuh"
#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

Expected<ReduceParams> reduce_params(const Node& node, ReduceOp op, DType dtype, const std::vector<int64_t>& dims,
                                     const Tensor* axes) {
  ReduceParams p;
  p.op = op;
  p.dtype = dtype;
  p.dims = dims;
  if (axes) {
    KILN_ASSIGN_OR_RETURN(p.axes, axes->to_i64_vector());
  }
  p.noop_with_empty_axes = node.attr_int("noop_with_empty_axes", 0) != 0;
  return p;
}

KernelDef reduce_def(ReduceOp op) {
  KernelDef def;
  def.host_inputs = {1};
  def.run = [op](KernelContext& ctx) -> Status {
    const DeviceTensor& x = ctx.input(0);
    KILN_ASSIGN_OR_RETURN(ReduceParams p, reduce_params(ctx.node(), op, x.dtype, x.dims, ctx.host_input(1)));
    p.x = x.data;
    p.y = ctx.output(0).data;
    p.workspace = ctx.workspace();
    p.workspace_bytes = ctx.workspace_bytes();
    return launch_reduce(p, ctx.stream());
  };
  def.workspace = [op](const KernelQuery& q) -> size_t {
    const std::vector<int64_t>* dims = q.input_dims(0);
    if (!dims) return 0;
    auto p = reduce_params(q.node(), op, q.input_dtype(0), *dims, q.has_input(1) ? q.host_input(1) : nullptr);
    return p.is_ok() ? reduce_workspace_bytes(*p) : 0;
  };
  def.supports = [op](const Node& node) -> Status {
    const DType t = input_dtype(node, 0);
    const bool min_max = op == ReduceOp::kMax || op == ReduceOp::kMin;
    if (is_float(t) || is_integer(t) || (min_max && t == DType::kBool)) return Status::ok();
    return unsupported("{}: dtype {} (the CUDA kernel takes the float and integer types{})", node.op_type,
                       dtype_name(t), min_max ? ", and bool" : "");
  };
  return def;
}

KILN_CUDA_KERNEL("", "ReduceSum", reduce_def(ReduceOp::kSum));
KILN_CUDA_KERNEL("", "ReduceMean", reduce_def(ReduceOp::kMean));
KILN_CUDA_KERNEL("", "ReduceMax", reduce_def(ReduceOp::kMax));
KILN_CUDA_KERNEL("", "ReduceMin", reduce_def(ReduceOp::kMin));
KILN_CUDA_KERNEL("", "ReduceProd", reduce_def(ReduceOp::kProd));
KILN_CUDA_KERNEL("", "ReduceL1", reduce_def(ReduceOp::kL1));
KILN_CUDA_KERNEL("", "ReduceL2", reduce_def(ReduceOp::kL2));
KILN_CUDA_KERNEL("", "ReduceLogSum", reduce_def(ReduceOp::kLogSum));
KILN_CUDA_KERNEL("", "ReduceLogSumExp", reduce_def(ReduceOp::kLogSumExp));
KILN_CUDA_KERNEL("", "ReduceSumSquare", reduce_def(ReduceOp::kSumSquare));

Status supports_numeric(const Node& node) {
  const DType t = input_dtype(node, 0);
  if (is_float(t) || is_integer(t)) return Status::ok();
  return unsupported("{}: dtype {} (the CUDA kernel takes the float and integer types)", node.op_type, dtype_name(t));
}

KernelDef arg_def(bool is_max) {
  KernelDef def;
  def.run = [is_max](KernelContext& ctx) -> Status {
    const DeviceTensor& x = ctx.input(0);
    KILN_ASSIGN_OR_RETURN(AxisView v, axis_view(ctx.node(), x.dims, ctx.node().attr_int("axis", 0)));
    ArgReduceParams p;
    p.dtype = x.dtype;
    p.x = x.data;
    p.y = ctx.output(0).as<int64_t>();
    p.outer = v.outer, p.n = v.n, p.inner = v.inner;
    p.is_max = is_max;
    p.select_last_index = ctx.node().attr_int("select_last_index", 0) != 0;
    return launch_arg_reduce(p, ctx.stream());
  };
  def.supports = supports_numeric;
  return def;
}

KILN_CUDA_KERNEL("", "ArgMax", arg_def(true));
KILN_CUDA_KERNEL("", "ArgMin", arg_def(false));

Expected<TopKParams> topk_params(const Node& node, DType dtype, const std::vector<int64_t>& dims, const Tensor* k) {
  if (!k) return invalid_argument("TopK: K is not known on the host");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kv, k->to_i64_vector());
  if (kv.size() != 1) return invalid_argument("TopK: K must have one element");
  if (dims.empty()) return invalid_model("TopK: the input is a scalar");
  KILN_ASSIGN_OR_RETURN(AxisView v, axis_view(node, dims, node.attr_int("axis", -1)));
  if (kv[0] < 0 || kv[0] > v.n) return invalid_argument("TopK: K = {} is outside [0, {}]", kv[0], v.n);
  TopKParams p;
  p.dtype = dtype;
  p.outer = v.outer, p.n = v.n, p.inner = v.inner, p.k = kv[0];
  p.largest = node.attr_int("largest", 1) != 0;
  return p;
}

KILN_CUDA_KERNEL("", "TopK",
                 {.run = [](KernelContext& ctx) -> Status {
                    const DeviceTensor& x = ctx.input(0);
                    KILN_ASSIGN_OR_RETURN(TopKParams p, topk_params(ctx.node(), x.dtype, x.dims, ctx.host_input(1)));
                    p.x = x.data;
                    p.values = ctx.has_output(0) ? ctx.output(0).data : nullptr;
                    p.indices = ctx.has_output(1) ? ctx.output(1).as<int64_t>() : nullptr;
                    p.workspace = ctx.workspace();
                    p.workspace_bytes = ctx.workspace_bytes();
                    return launch_topk(p, ctx.stream());
                  },
                  .host_inputs = {1},
                  .workspace = [](const KernelQuery& q) -> size_t {
                    const std::vector<int64_t>* dims = q.input_dims(0);
                    if (!dims) return 0;
                    auto p = topk_params(q.node(), q.input_dtype(0), *dims, q.host_input(1));
                    return p.is_ok() ? topk_workspace_bytes(*p) : 0;
                  },
                  .supports = supports_numeric});

}  // namespace
}  // namespace kiln::cuda
