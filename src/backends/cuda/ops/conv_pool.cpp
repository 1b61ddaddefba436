// kiln::FusedConv with a max pool (ops/fused_pool.h): the fused stem kernel
// as tactic "kiln_igemm_pool", and the unfused route beside it.
#include "backends/cuda/ops/conv_pool.h"

#include <cstdint>
#include <optional>

#include "backends/cuda/kernels/pool.cuh"
#include "backends/cuda/kernels/stem_conv.cuh"
#include "backends/cuda/kernels/stem_conv_pool.cuh"
#include "backends/cuda/ops/window_ops.h"
#include "ops/fused_activation.h"
#include "ops/fused_pool.h"

namespace kiln::cuda {
namespace {

constexpr std::string_view kPoolTactic = "kiln_igemm_pool";
constexpr std::string_view kUnfusedTactic = "kiln_igemm";

struct PooledShape {
  WindowGeometry conv, pool;
  bool nhwc = false;
};

// The convolution's and the pool's geometry for input dims x and weight dims
// w (the node's layout), checked as the CPU checks them.
Expected<PooledShape> pooled_shape(const Node& node, const std::vector<int64_t>& x, const std::vector<int64_t>& w) {
  PooledShape s;
  s.nhwc = node.attr_int("channels_last", 0) != 0;
  if (x.size() != 4 || w.size() != 4)
    return invalid_model("FusedConv {}: pool attributes need a 2-D convolution", node.label());
  const std::vector<int64_t> xn = s.nhwc ? std::vector<int64_t>{x[0], x[3], x[1], x[2]} : x;
  const std::vector<int64_t> kernel = s.nhwc ? std::vector<int64_t>{w[1], w[2]} : std::vector<int64_t>{w[2], w[3]};
  const int64_t wc = s.nhwc ? w[3] : w[1], group = node.attr_int("group", 1);
  KILN_ASSIGN_OR_RETURN(WindowPlan p, plan_window(node, xn, kernel));
  if (group < 1 || wc * group != p.channels || w[0] % group != 0)
    return invalid_model("FusedConv {}: weight of {} channels per group does not fit {} channels with group {}",
                         node.label(), wc, p.channels, group);
  s.conv = geometry_of(p);
  s.conv.group = group;
  s.conv.out_channels = w[0];
  KILN_ASSIGN_OR_RETURN(std::optional<WindowAttrs> a, read_fused_pool(node));
  if (!a) return invalid_model("FusedConv {}: no pool attributes", node.label());
  WindowGeometry& g = s.pool;
  g.batch = s.conv.batch;
  g.in_channels = g.out_channels = s.conv.out_channels;
  for (int i = 0; i < 2; ++i) {
    g.in[i + 1] = s.conv.out[i + 1];
    g.kernel[i + 1] = a->kernel[i], g.stride[i + 1] = a->strides[i];
    g.pad_begin[i + 1] = a->pads[i], g.pad_end[i + 1] = a->pads[i + 2];
    KILN_ASSIGN_OR_RETURN(WindowDim d, window_dim(*a, i, g.in[i + 1]));
    g.out[i + 1] = d.out;
  }
  return s;
}

size_t conv_bytes(DType t, const WindowGeometry& g) {
  const size_t bytes = dtype_storage_bytes(t, g.batch * g.out_size() * g.out_channels);
  return (bytes + 255) / 256 * 256;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

bool fused_fits(const Node& node, const PooledShape& s, DType t) {
  return s.nhwc && !node.input(3) && stem_conv_pool_fits(t, s.conv, s.pool);
}

}  // namespace

bool has_fused_pool(const Node& node) { return node.has_attr("pool_kernel"); }

std::vector<std::string> pooled_conv_tactics(const KernelQuery& q, size_t limit) {
  const std::vector<int64_t>*x = q.input_dims(0), *w = q.input_dims(1);
  if (!x || !w || limit < 2) return {};
  Expected<PooledShape> s = pooled_shape(q.node(), *x, *w);
  if (!s.is_ok() || !fused_fits(q.node(), *s, q.input_dtype(0))) return {};
  return {std::string(kPoolTactic), std::string(kUnfusedTactic)};
}

size_t pooled_conv_workspace(const KernelQuery& q) {
  const std::vector<int64_t>*x = q.input_dims(0), *w = q.input_dims(1);
  if (!x || !w) return 0;
  Expected<PooledShape> s = pooled_shape(q.node(), *x, *w);
  if (!s.is_ok()) return 0;
  if (q.tactic() == kPoolTactic && fused_fits(q.node(), *s, q.input_dtype(0))) return 0;
  return conv_bytes(q.input_dtype(0), s->conv);
}

Status run_pooled_conv(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(1), &y = ctx.output(0);
  if (ctx.has_input(3))
    return invalid_model("FusedConv {}: a pooled convolution takes no residual Z", ctx.node().label());
  KILN_ASSIGN_OR_RETURN(PooledShape s, pooled_shape(ctx.node(), x.dims, w.dims));
  KILN_ASSIGN_OR_RETURN(FusedActivation act, read_fused_activation(ctx.node()));
  const void* bias = nullptr;
  if (ctx.has_input(2)) {
    if (ctx.input(2).numel() != s.conv.out_channels)
      return invalid_model("FusedConv {}: bias has {} values for {} output channels", ctx.node().label(),
                           ctx.input(2).numel(), s.conv.out_channels);
    bias = ctx.input(2).data;
  }
  if (y.numel() == 0) return Status::ok();
  FusedConvOperands conv;
  conv.dtype = x.dtype;
  conv.g = s.conv;
  conv.x = x.data, conv.w = w.data, conv.bias = bias;
  conv.act = epilogue_activation(act);
  conv.lo = act.lo, conv.hi = act.hi;
  if (ctx.tactic() == kPoolTactic && fused_fits(ctx.node(), s, x.dtype) && aligned16(x.data) && aligned16(w.data)) {
    StemConvPoolParams p;
    static_cast<FusedConvOperands&>(p) = conv;
    p.pool = s.pool;
    p.y = y.data;
    return launch_stem_conv_pool(p, ctx.stream());
  }
  // Unfused: the convolution's output in the workspace, then the pool.
  const size_t bytes = conv_bytes(x.dtype, s.conv);
  if (!ctx.workspace() || ctx.workspace_bytes() < bytes)
    return invalid_argument("FusedConv {}: the pooled route needs {} bytes of workspace, has {}", ctx.node().label(),
                            bytes, ctx.workspace_bytes());
  conv.y = ctx.workspace();
  if (s.nhwc && stem_conv_fits(x.dtype, s.conv) && aligned16(x.data) && aligned16(w.data)) {
    KILN_RETURN_IF_ERROR(launch_stem_conv(conv, ctx.stream()));
  } else {
    DirectConvParams d;
    d.dtype = x.dtype;
    d.g = s.conv;
    d.channels_last = s.nhwc;
    d.x = x.data, d.w = w.data, d.y = conv.y;
    KILN_RETURN_IF_ERROR(launch_direct_conv(d, ctx.stream()));
    ConvEpilogueParams e;
    e.dtype = x.dtype;
    e.y = conv.y;
    e.bias = bias;
    e.batch = s.nhwc ? s.conv.batch * s.conv.out_size() : s.conv.batch;
    e.channels = s.conv.out_channels;
    e.inner = s.nhwc ? 1 : s.conv.out_size();
    e.act = conv.act;
    e.lo = conv.lo, e.hi = conv.hi;
    if (e.bias || e.act != EpilogueActivation::kNone) KILN_RETURN_IF_ERROR(launch_conv_epilogue(e, ctx.stream()));
  }
  PoolParams p;
  p.kind = PoolKind::kMax;
  p.dtype = x.dtype;
  p.g = s.pool;
  p.x = conv.y, p.y = y.data;
  p.channels_last = s.nhwc;
  return launch_pool(p, ctx.stream());
}

}  // namespace kiln::cuda
