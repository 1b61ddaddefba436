// LayerNormalization, RMSNormalization, GroupNormalization,
// InstanceNormalization (row normalizations, normalization.cuh),
// BatchNormalization (inference and training), LpNormalization,
// MeanVarianceNormalization and LRN (norm_misc.cuh), and
// kiln.SkipLayerNormalization (skip_layer_norm.cuh). Parameters may have any
// float dtype, as on the CPU, except SkipLayerNormalization's (X's dtype, as
// its schema says).
#include "backends/cuda/kernels/normalization.cuh"

#include "backends/cuda/kernels/norm_misc.cuh"
#include "backends/cuda/kernels/reduce.cuh"
#include "backends/cuda/kernels/skip_layer_norm.cuh"
#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

Status supports_float_inputs(const Node& node) {
  for (size_t i = 0; i < node.inputs.size(); ++i)
    KILN_RETURN_IF_ERROR(require_float(node, i, i == 0 ? "input" : "parameter"));
  return Status::ok();
}

// The CPU kernel's rule: right-aligned, each dim 1 or the normalized dim.
Status check_broadcastable(const Node& node, const std::vector<int64_t>& param, const std::vector<int64_t>& inner,
                           const char* what) {
  bool ok = param.size() <= inner.size();
  for (size_t i = 0; ok && i < param.size(); ++i) {
    const int64_t pd = param[param.size() - 1 - i], xd = inner[inner.size() - 1 - i];
    ok = pd == 1 || pd == xd;
  }
  if (!ok) return invalid_model("{}: {} does not broadcast to the normalized dims", node.op_type, what);
  if (inner.size() > 8)
    return unsupported("{}: {} normalized dims (the CUDA kernel takes up to 8)", node.op_type, inner.size());
  return Status::ok();
}

// LayerNormalization (center) and RMSNormalization.
Status run_layer_norm(KernelContext& ctx, bool center) {
  const Node& node = ctx.node();
  const DeviceTensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, resolve_axis(node, node.attr_int("axis", -1), x.rank()));
  const std::vector<int64_t> inner(x.dims.begin() + axis, x.dims.end());
  NormParams p;
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = ctx.output(0).data;
  p.cols = dims_product(inner, 0, inner.size());
  p.rows = p.cols == 0 ? 0 : x.numel() / p.cols;
  p.epsilon = node.attr_float("epsilon", 1e-5f);
  p.rms = !center;
  const DeviceTensor& scale = ctx.input(1);
  KILN_RETURN_IF_ERROR(check_broadcastable(node, scale.dims, inner, "scale"));
  p.scale = scale.data, p.scale_dtype = scale.dtype;
  p.scale_map = broadcast_param_map(scale.dims, inner);
  if (center && ctx.has_input(2)) {
    const DeviceTensor& bias = ctx.input(2);
    KILN_RETURN_IF_ERROR(check_broadcastable(node, bias.dims, inner, "B"));
    p.bias = bias.data, p.bias_dtype = bias.dtype;
    p.bias_map = broadcast_param_map(bias.dims, inner);
  }
  p.workspace = ctx.workspace(), p.workspace_bytes = ctx.workspace_bytes();
  if (center && ctx.has_output(1)) p.mean = ctx.output(1).data, p.stat_dtype = ctx.output(1).dtype;
  if (center && ctx.has_output(2)) p.inv_std_dev = ctx.output(2).data, p.stat_dtype = ctx.output(2).dtype;
  return launch_normalization(p, ctx.stream());
}

size_t layer_norm_workspace(const KernelQuery& q) {
  const std::vector<int64_t>* dims = q.input_dims(0);
  if (!dims) return 0;
  auto axis = resolve_axis(q.node(), q.node().attr_int("axis", -1), static_cast<int64_t>(dims->size()));
  if (!axis.is_ok()) return 0;
  const int64_t cols = dims_product(*dims, size_t(*axis), dims->size());
  const int64_t rows = cols == 0 ? 0 : dims_product(*dims, 0, dims->size()) / cols;
  return normalization_workspace_bytes(q.input_dtype(0), rows, cols);
}

KILN_CUDA_KERNEL("", "LayerNormalization",
                 {.run = [](KernelContext& c) { return run_layer_norm(c, true); },
                  .workspace = layer_norm_workspace,
                  .supports = supports_float_inputs});
KILN_CUDA_KERNEL("", "RMSNormalization",
                 {.run = [](KernelContext& c) { return run_layer_norm(c, false); },
                  .workspace = layer_norm_workspace,
                  .supports = supports_float_inputs});

// kiln.SkipLayerNormalization(X, Skip, Scale, B?) -> (Y, Sum?) over the last
// axis; the schema has checked the shapes and dtypes, the run checks what the
// kernel relies on.
Status run_skip_layer_norm(KernelContext& ctx) {
  const Node& node = ctx.node();
  const DeviceTensor &x = ctx.input(0), &skip = ctx.input(1), &scale = ctx.input(2);
  if (x.rank() == 0) return invalid_model("SkipLayerNormalization: X is a scalar");
  const int64_t cols = x.dims.back();
  auto param_ok = [&](const DeviceTensor& t) { return t.dtype == x.dtype && t.rank() == 1 && t.dims[0] == cols; };
  if (skip.dims != x.dims || skip.dtype != x.dtype)
    return invalid_model("SkipLayerNormalization: Skip differs from X in shape or dtype (no broadcasting)");
  if (!param_ok(scale) || (ctx.has_input(3) && !param_ok(ctx.input(3))))
    return invalid_model("SkipLayerNormalization: Scale and B must be [{}] vectors of {}", cols, dtype_name(x.dtype));
  SkipNormParams p;
  p.dtype = x.dtype;
  p.x = x.data, p.skip = skip.data;
  p.scale = scale.data;
  p.bias = ctx.has_input(3) ? ctx.input(3).data : nullptr;
  p.y = ctx.output(0).data;
  p.sum = ctx.has_output(1) ? ctx.output(1).data : nullptr;
  p.cols = cols;
  p.rows = cols == 0 ? 0 : x.numel() / cols;
  p.epsilon = node.attr_float("epsilon", 1e-5f);
  return launch_skip_layer_norm(p, ctx.stream());
}

KILN_CUDA_KERNEL("kiln", "SkipLayerNormalization",
                 {.run = run_skip_layer_norm, .supports = [](const Node& node) -> Status {
                    const int64_t axis = node.attr_int("axis", -1);
                    const Value* x = node.input(0);
                    const bool last = axis == -1 || (x && x->type.shape.has_rank() && axis == x->type.shape.rank() - 1);
                    if (!last)
                      return unsupported("SkipLayerNormalization: axis {} is not the last axis; only -1 is supported",
                                         axis);
                    return supports_float_inputs(node);
                  }});

// [n, c, inner] of an NC... input.
struct ChannelView {
  int64_t n = 0, c = 0, inner = 0;
};

Expected<ChannelView> channel_view(const Node& node, const DeviceTensor& x, int64_t min_rank) {
  if (x.rank() < min_rank) return invalid_model("{}: input rank {} < {}", node.op_type, x.rank(), min_rank);
  ChannelView v{x.dims[0], x.dims[1], 0};
  v.inner = v.n * v.c == 0 ? 0 : x.numel() / (v.n * v.c);
  return v;
}

// Group/InstanceNormalization: rows of `groups` per sample, scale and bias
// per channel (or per group) picked by the row and the column.
Status run_grouped_norm(KernelContext& ctx, const ChannelView& v, int64_t groups) {
  const Node& node = ctx.node();
  const DeviceTensor &scale = ctx.input(1), &bias = ctx.input(2);
  // Opset 18's GroupNormalization has per-group parameters (the sizes tell them apart).
  const bool per_group = scale.numel() == groups && groups != v.c;
  const int64_t want = per_group ? groups : v.c;
  if (scale.numel() != want || bias.numel() != want)
    return invalid_model("{}: scale/bias have {}/{} values for {} channels", node.op_type, scale.numel(), bias.numel(),
                         v.c);
  NormParams p;
  p.dtype = ctx.input(0).dtype;
  p.x = ctx.input(0).data;
  p.y = ctx.output(0).data;
  p.rows = v.n * groups;
  p.cols = v.c / groups * v.inner;
  p.epsilon = node.attr_float("epsilon", 1e-5f);
  p.scale = scale.data, p.scale_dtype = scale.dtype;
  p.bias = bias.data, p.bias_dtype = bias.dtype;
  ParamMap m;
  m.kind = ParamMap::Kind::kChannel;
  m.row_mod = groups;
  m.row_mul = per_group ? 1 : v.c / groups;
  m.col_div = per_group ? std::max<int64_t>(p.cols, 1) : std::max<int64_t>(v.inner, 1);
  p.scale_map = p.bias_map = m;
  p.workspace = ctx.workspace(), p.workspace_bytes = ctx.workspace_bytes();
  return launch_normalization(p, ctx.stream());
}

// Rows of N * groups (groups 0: C, InstanceNormalization), C / groups * spatial columns.
size_t grouped_norm_workspace(const KernelQuery& q, int64_t groups) {
  const std::vector<int64_t>* dims = q.input_dims(0);
  if (!dims || dims->size() < 2) return 0;
  const int64_t n = (*dims)[0], c = (*dims)[1], g = groups == 0 ? c : groups;
  if (g < 1 || c % g != 0) return 0;
  const int64_t rows = n * g, cols = c / g * dims_product(*dims, 2, dims->size());
  return normalization_workspace_bytes(q.input_dtype(0), rows, cols);
}

KILN_CUDA_KERNEL("", "GroupNormalization",
                 {.run = [](KernelContext& ctx) -> Status {
                    KILN_ASSIGN_OR_RETURN(ChannelView v, channel_view(ctx.node(), ctx.input(0), 2));
                    const int64_t groups = ctx.node().attr_int("num_groups", 1);
                    if (groups < 1 || v.c % groups != 0)
                      return invalid_model("GroupNormalization: {} channels, {} groups", v.c, groups);
                    return run_grouped_norm(ctx, v, groups);
                  },
                  .workspace = [](const KernelQuery& q) -> size_t {
                    return grouped_norm_workspace(q, q.node().attr_int("num_groups", 1));
                  },
                  .supports = supports_float_inputs});

KILN_CUDA_KERNEL("", "InstanceNormalization",
                 {.run = [](KernelContext& ctx) -> Status {
                    KILN_ASSIGN_OR_RETURN(ChannelView v, channel_view(ctx.node(), ctx.input(0), 3));
                    return run_grouped_norm(ctx, v, v.c);
                  },
                  .workspace = [](const KernelQuery& q) -> size_t { return grouped_norm_workspace(q, 0); },
                  .supports = supports_float_inputs});

// BatchNormalization's statistics: per channel, or per activation (C x
// spatial parameters, the old spatial=0 form).
struct BatchNormShape {
  ChannelView v;
  int64_t per = 1;
};

Expected<BatchNormShape> batch_norm_shape(const Node& node, const std::vector<int64_t>& x_dims, int64_t scale_numel) {
  if (x_dims.size() < 2) return invalid_model("BatchNormalization: input rank {} < 2", x_dims.size());
  BatchNormShape s;
  s.v = {x_dims[0], x_dims[1], 0};
  const int64_t nc = s.v.n * s.v.c;
  s.v.inner = nc == 0 ? 0 : dims_product(x_dims, 0, x_dims.size()) / nc;
  s.per = scale_numel == s.v.c ? 1 : s.v.inner;
  (void)node;
  return s;
}

// The dims and axes launch_mean_var reduces for the batch statistics.
void batch_stat_view(const BatchNormShape& s, std::vector<int64_t>& dims, std::vector<int64_t>& axes) {
  if (s.per == 1) {
    dims = {s.v.n, s.v.c, s.v.inner};
    axes = {0, 2};
  } else {
    dims = {s.v.n, s.v.c * s.v.inner};
    axes = {0};
  }
}

size_t batch_norm_workspace(const KernelQuery& q) {
  if (q.node().attr_int("training_mode", 0) == 0) return 0;
  const std::vector<int64_t>*x_dims = q.input_dims(0), *s_dims = q.input_dims(1);
  if (!x_dims || !s_dims) return 0;
  auto s = batch_norm_shape(q.node(), *x_dims, dims_product(*s_dims, 0, s_dims->size()));
  if (!s.is_ok()) return 0;
  MeanVarParams mv;
  mv.dtype = q.input_dtype(0);
  batch_stat_view(*s, mv.dims, mv.axes);
  return 2 * align_up_bytes(size_t(s->v.c * s->per) * 8) + mean_var_workspace_bytes(mv);
}

Status run_batch_norm(KernelContext& ctx) {
  const Node& node = ctx.node();
  const DeviceTensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(BatchNormShape s, batch_norm_shape(node, x.dims, ctx.input(1).numel()));
  const int64_t count = s.v.c * s.per;
  for (size_t i = 1; i <= 4; ++i)
    if (ctx.input(i).numel() != count)
      return invalid_model("BatchNormalization: a parameter has {} values for {} channels", ctx.input(i).numel(),
                           s.v.c);
  BatchNormParams p;
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = ctx.output(0).data;
  p.n = s.v.n, p.c = s.v.c, p.inner = s.v.inner, p.per = s.per;
  p.scale = ctx.input(1).data, p.scale_dtype = ctx.input(1).dtype;
  p.bias = ctx.input(2).data, p.bias_dtype = ctx.input(2).dtype;
  p.mean = ctx.input(3).data, p.mean_dtype = ctx.input(3).dtype;
  p.var = ctx.input(4).data, p.var_dtype = ctx.input(4).dtype;
  p.epsilon = node.attr_float("epsilon", 1e-5f);
  if (node.attr_int("training_mode", 0) != 0) {
    // Batch statistics replace the inputs; the running ones blend them in.
    const DType stat = x.dtype == DType::kF64 ? DType::kF64 : DType::kF32;
    auto* ws = static_cast<char*>(ctx.workspace());
    const size_t stat_bytes = align_up_bytes(size_t(count) * 8);
    MeanVarParams mv;
    mv.dtype = x.dtype;
    mv.x = x.data;
    batch_stat_view(s, mv.dims, mv.axes);
    mv.mean = ws, mv.var = ws + stat_bytes;
    mv.workspace = ws + 2 * stat_bytes;
    mv.workspace_bytes = ctx.workspace_bytes() - 2 * stat_bytes;
    if (ctx.workspace_bytes() < 2 * stat_bytes + mean_var_workspace_bytes(mv))
      return invalid_argument("BatchNormalization: the training form needs its workspace");
    KILN_RETURN_IF_ERROR(launch_mean_var(mv, ctx.stream()));
    const float momentum = node.attr_float("momentum", 0.9f);
    for (size_t out = 1; out <= 2; ++out) {
      if (!ctx.has_output(out)) continue;
      RunningStatParams r;
      r.dtype = ctx.input(out + 2).dtype, r.b_dtype = stat;
      r.a = ctx.input(out + 2).data;
      r.b = out == 1 ? mv.mean : mv.var;
      r.out = ctx.output(out).data;
      r.count = count;
      r.momentum = momentum;
      KILN_RETURN_IF_ERROR(launch_running_stat(r, ctx.stream()));
    }
    p.mean = mv.mean, p.mean_dtype = stat;
    p.var = mv.var, p.var_dtype = stat;
  }
  return launch_batch_norm(p, ctx.stream());
}

KILN_CUDA_KERNEL("", "BatchNormalization",
                 {.run = run_batch_norm, .workspace = batch_norm_workspace, .supports = supports_float_inputs});

KILN_CUDA_KERNEL("", "LpNormalization",
                 {.run = [](KernelContext& ctx) -> Status {
                    const Node& node = ctx.node();
                    const DeviceTensor& x = ctx.input(0);
                    KILN_ASSIGN_OR_RETURN(int64_t axis, resolve_axis(node, node.attr_int("axis", -1), x.rank()));
                    LpNormParams p;
                    p.dtype = x.dtype;
                    p.x = x.data;
                    p.y = ctx.output(0).data;
                    p.outer = dims_product(x.dims, 0, size_t(axis));
                    p.n = x.dims[size_t(axis)];
                    p.inner = dims_product(x.dims, size_t(axis) + 1, x.dims.size());
                    p.p = static_cast<int>(node.attr_int("p", 2));
                    return launch_lp_norm(p, ctx.stream());
                  },
                  .supports = [](const Node& node) -> Status {
                    const int64_t p = node.attr_int("p", 2);
                    if (p != 1 && p != 2) return unsupported("LpNormalization: p = {}; ONNX allows 1 or 2", p);
                    return supports_float_inputs(node);
                  }});

Expected<MeanVarParams> mvn_stats(const Node& node, DType dtype, const std::vector<int64_t>& dims) {
  MeanVarParams mv;
  mv.dtype = dtype;
  mv.dims = dims;
  mv.axes = node.attr_ints("axes", {0, 2, 3});
  for (int64_t a : mv.axes) KILN_RETURN_IF_ERROR(resolve_axis(node, a, static_cast<int64_t>(dims.size())).status());
  if (mv.axes.empty()) return unsupported("MeanVarianceNormalization: empty axes");
  return mv;
}

size_t mvn_kept(const MeanVarParams& mv) {
  std::vector<bool> reduced(mv.dims.size(), false);
  for (int64_t a : mv.axes) reduced[size_t(a < 0 ? a + int64_t(mv.dims.size()) : a)] = true;
  size_t kept = 1;
  for (size_t d = 0; d < mv.dims.size(); ++d)
    if (!reduced[d]) kept *= size_t(mv.dims[d]);
  return kept;
}

KILN_CUDA_KERNEL("", "MeanVarianceNormalization",
                 {.run = [](KernelContext& ctx) -> Status {
                    const DeviceTensor& x = ctx.input(0);
                    KILN_ASSIGN_OR_RETURN(MeanVarParams mv, mvn_stats(ctx.node(), x.dtype, x.dims));
                    if (x.numel() == 0) return Status::ok();
                    const size_t stat_bytes = align_up_bytes(mvn_kept(mv) * 8);
                    auto* ws = static_cast<char*>(ctx.workspace());
                    mv.x = x.data;
                    mv.mean = ws, mv.var = ws + stat_bytes;
                    mv.workspace = ws + 2 * stat_bytes;
                    mv.workspace_bytes = ctx.workspace_bytes() - 2 * stat_bytes;
                    KILN_RETURN_IF_ERROR(launch_mean_var(mv, ctx.stream()));
                    MvnApplyParams a;
                    a.dtype = x.dtype;
                    a.x = x.data;
                    a.y = ctx.output(0).data;
                    a.dims = x.dims;
                    a.reduced.assign(x.dims.size(), false);
                    for (int64_t ax : mv.axes) a.reduced[size_t(ax < 0 ? ax + x.rank() : ax)] = true;
                    a.mean = mv.mean, a.var = mv.var;
                    return launch_mvn_apply(a, ctx.stream());
                  },
                  .workspace = [](const KernelQuery& q) -> size_t {
                    const std::vector<int64_t>* dims = q.input_dims(0);
                    if (!dims) return 0;
                    auto mv = mvn_stats(q.node(), q.input_dtype(0), *dims);
                    if (!mv.is_ok()) return 0;
                    return 2 * align_up_bytes(mvn_kept(*mv) * 8) + mean_var_workspace_bytes(*mv);
                  },
                  .supports = supports_float_inputs});

KILN_CUDA_KERNEL("", "LRN",
                 {.run = [](KernelContext& ctx) -> Status {
                    const Node& node = ctx.node();
                    KILN_ASSIGN_OR_RETURN(ChannelView v, channel_view(node, ctx.input(0), 3));
                    LrnParams p;
                    p.dtype = ctx.input(0).dtype;
                    p.x = ctx.input(0).data;
                    p.y = ctx.output(0).data;
                    p.n = v.n, p.c = v.c, p.inner = v.inner;
                    p.size = node.attr_int("size", 1);
                    p.alpha = node.attr_float("alpha", 1e-4f);
                    p.beta = node.attr_float("beta", 0.75f);
                    p.bias = node.attr_float("bias", 1.0f);
                    return launch_lrn(p, ctx.stream());
                  },
                  .supports = supports_float_inputs});

}  // namespace
}  // namespace kiln::cuda
