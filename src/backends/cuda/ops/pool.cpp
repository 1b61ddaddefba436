// MaxPool, AveragePool, LpPool, the global pools and MaxUnpool. Geometry
// comes from the CPU backend's window plan (same ceil_mode and auto_pad
// rules); the kernels are in kernels/pool.cu. channels_last=1 (MaxPool
// without Indices, AveragePool, GlobalAveragePool, GlobalMaxPool; see
// ops/nn.cpp): X and Y are [N, H, W, C], the geometry comes from the same
// dims in NCHW order.
#include "backends/cuda/kernels/pool.cuh"

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/window_ops.h"

namespace kiln::cuda {
namespace {

bool is_integer(DType t) { return is_byte_integer(t); }

Status supports_float_input(const Node& node) {
  if (!is_float_dtype(input_dtype(node, 0)))
    return unsupported("{}: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", node.op_type,
                       dtype_name(input_dtype(node, 0)));
  return Status::ok();
}

Status supports_numeric_input(const Node& node) {
  const DType t = input_dtype(node, 0);
  if (!is_float_dtype(t) && !is_integer(t))
    return unsupported("{}: dtype {} (the CUDA kernel takes float and integer types)", node.op_type, dtype_name(t));
  return Status::ok();
}

Status supports_window_float(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_window_rank(node));
  return supports_float_input(node);
}

Status supports_window_numeric(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_window_rank(node));
  return supports_numeric_input(node);
}

bool channels_last(const Node& node) { return node.attr_int("channels_last", 0) != 0; }

// X's dims as [N, C, spatial...]: channels-last X is [N, H, W, C].
Expected<std::vector<int64_t>> nchw_dims(const KernelContext& ctx, const DeviceTensor& x) {
  if (!channels_last(ctx.node())) return x.dims;
  const std::string& op = ctx.node().op_type;
  if (op == "LpPool" || op == "GlobalLpPool") return invalid_model("{}: has no channels_last form", op);
  if (x.rank() != 4 || ctx.has_output(1))
    return invalid_model("{}: channels_last takes X [N,H,W,C] and no Indices output, got a {}-D input",
                         ctx.node().op_type, x.rank());
  return std::vector<int64_t>{x.dims[0], x.dims[3], x.dims[1], x.dims[2]};
}

Expected<PoolParams> pool_params(KernelContext& ctx, PoolKind kind) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, nchw_dims(ctx, x));
  KILN_ASSIGN_OR_RETURN(WindowPlan plan, plan_window(ctx.node(), dims));
  PoolParams p;
  p.channels_last = channels_last(ctx.node());
  p.kind = kind;
  p.dtype = x.dtype;
  p.g = geometry_of(plan);
  if (y.numel() != p.g.batch * p.g.in_channels * p.g.out_size())
    return internal_error("{}: output has {} elements, the window plan {}", ctx.node().op_type, y.numel(),
                          p.g.batch * p.g.in_channels * p.g.out_size());
  p.x = x.data;
  p.y = y.data;
  return p;
}

Status run_max_pool(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(PoolParams p, pool_params(ctx, PoolKind::kMax));
  if (ctx.has_output(1)) p.indices = ctx.output(1).as<int64_t>();
  p.column_major = ctx.node().attr_int("storage_order", 0) != 0;
  return launch_pool(p, ctx.stream());
}

Status run_average_pool(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(PoolParams p, pool_params(ctx, PoolKind::kAverage));
  p.count_include_pad = ctx.node().attr_int("count_include_pad", 0) != 0;
  return launch_pool(p, ctx.stream());
}

Status run_lp_pool(KernelContext& ctx) {
  const int64_t lp = ctx.node().attr_int("p", 2);
  if (lp < 1) return invalid_model("LpPool: p is {}, must be >= 1", lp);
  KILN_ASSIGN_OR_RETURN(PoolParams p, pool_params(ctx, PoolKind::kLp));
  p.p = lp;
  return launch_pool(p, ctx.stream());
}

Status run_global_pool(KernelContext& ctx, PoolKind kind) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  if (x.rank() < 3) return invalid_model("{}: input rank {} < 3", ctx.node().op_type, x.rank());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, nchw_dims(ctx, x));
  GlobalPoolParams p;
  p.kind = kind;
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = y.data;
  p.channels_last = channels_last(ctx.node());
  p.channels = dims[1];
  p.planes = dims[0] * dims[1];
  p.size = 1;
  for (size_t i = 2; i < dims.size(); ++i) p.size *= dims[i];
  p.p = ctx.node().attr_int("p", 2);
  return launch_global_pool(p, ctx.stream());
}

Status supports_max_unpool(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_window_numeric(node));
  if (input_dtype(node, 1) != DType::kI64)
    return unsupported("MaxUnpool: indices of dtype {} (int64 only)", dtype_name(input_dtype(node, 1)));
  return Status::ok();
}

Status run_max_unpool(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &ind = ctx.input(1), &y = ctx.output(0);
  if (ind.dims != x.dims) return invalid_model("MaxUnpool: indices shape differs from the input's");
  if (x.rank() < 3 || x.rank() > 5) return unsupported("MaxUnpool: input rank {} (3 to 5 supported)", x.rank());
  const size_t spatial = static_cast<size_t>(x.rank()) - 2;
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(ctx.node(), spatial));
  MaxUnpoolParams p;
  p.rank = static_cast<int>(x.rank());
  p.full_dims[0] = x.dims[0], p.full_dims[1] = x.dims[1];
  for (size_t i = 0; i < spatial; ++i) {
    p.full_dims[i + 2] = (x.dims[i + 2] - 1) * a.strides[i] + a.kernel[i] - a.pads[i] - a.pads[i + spatial];
    if (p.full_dims[i + 2] < 0) return invalid_model("MaxUnpool: unpooled dims are negative");
  }
  if (y.rank() != x.rank()) return invalid_model("MaxUnpool: output rank {} != input rank {}", y.rank(), x.rank());
  for (int d = 0; d < p.rank; ++d) {
    p.out_dims[d] = y.dims[d];
    if (y.dims[d] < p.full_dims[d])
      return unsupported("MaxUnpool: output_shape dim {} is {}, smaller than the unpooled size {}", d, y.dims[d],
                         p.full_dims[d]);
  }
  p.element_bytes = static_cast<int>(dtype_storage_bytes(x.dtype, 1));
  p.x = x.data;
  p.indices = ind.as<int64_t>();
  p.y = y.data;
  p.n = x.numel();
  return launch_max_unpool(p, ctx.stream());
}

KILN_CUDA_KERNEL("", "MaxPool", {.run = run_max_pool, .supports = supports_window_numeric});
KILN_CUDA_KERNEL("", "AveragePool", {.run = run_average_pool, .supports = supports_window_float});
KILN_CUDA_KERNEL("", "LpPool", {.run = run_lp_pool, .supports = supports_window_float});
KILN_CUDA_KERNEL("", "GlobalAveragePool",
                 {.run = [](KernelContext& c) { return run_global_pool(c, PoolKind::kAverage); },
                  .supports = supports_float_input});
KILN_CUDA_KERNEL("", "GlobalMaxPool",
                 {.run = [](KernelContext& c) { return run_global_pool(c, PoolKind::kMax); },
                  .supports = supports_float_input});
KILN_CUDA_KERNEL("", "GlobalLpPool",
                 {.run = [](KernelContext& c) { return run_global_pool(c, PoolKind::kLp); },
                  .supports = supports_float_input});
// output_shape (input 2) is read on the host: the output's dims come from it.
KILN_CUDA_KERNEL("", "MaxUnpool", {.run = run_max_unpool, .host_inputs = {2}, .supports = supports_max_unpool});

}  // namespace
}  // namespace kiln::cuda
