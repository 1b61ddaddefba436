// Conv, ConvTranspose and kiln::FusedConv (cuDNN's graph API for
// f32/f16/bf16, the direct kernel for f64 and for whatever cuDNN declines;
// FusedConv also kiln's own kernels and, for 1x1 layers, cuBLASLt as tactics),
// ConvInteger and
// QLinearConv (the direct integer kernel). Geometry comes from the CPU
// backend's window plan, so both backends agree on every padding rule.
#include "backends/cuda/kernels/conv.cuh"

#include <fmt/ranges.h>

#include <algorithm>
#include <any>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/kernels/depthwise_conv.cuh"
#include "backends/cuda/kernels/stem_conv.cuh"
#include "backends/cuda/ops/cudnn_conv.h"
#include "backends/cuda/ops/matmul_plan.h"
#include "backends/cuda/ops/window_ops.h"
#include "ops/fused_activation.h"

namespace kiln::cuda {
namespace {

// cuDNN's own scratch is capped here when the workspace is sized at plan
// time; engines that want more are passed over.
constexpr size_t kMaxCudnnWorkspace = size_t(256) << 20;

// What cuDNN may use beside the route's staging buffer under the engine's
// workspace limit; none when the staging alone exceeds it (the direct kernel,
// which needs no workspace, then runs).
std::optional<size_t> cudnn_limit(size_t workspace_limit, size_t staging_bytes) {
  if (staging_bytes > workspace_limit) return std::nullopt;
  return std::min(kMaxCudnnWorkspace, workspace_limit - staging_bytes);
}

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// The tactic families of cuDNN's engine configs (parse_cudnn_tactic): the
// plain convolution's ("cudnn:<i>", "cudnn_all:<id>") and FusedConv's fused
// graph's ("cudnn_fused:<i>", "cudnn_fused_all:<id>").
constexpr std::string_view kPlainFamily = "cudnn";
constexpr std::string_view kFusedFamily = "cudnn_fused";

struct ConvShape {
  WindowGeometry g;
  int spatial = 2;
};

// The geometry of a convolution with input dims x and weight dims w, checked
// as the CPU kernel checks it.
Expected<ConvShape> conv_shape(const Node& node, const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                               bool transpose) {
  const char* op = node.op_type.c_str();
  if (w.size() != x.size())
    return invalid_model("{}: weight rank {} does not match input rank {}", op, w.size(), x.size());
  std::vector<int64_t> kernel(w.begin() + 2, w.end());
  KILN_ASSIGN_OR_RETURN(WindowPlan p,
                        transpose ? plan_transpose_window(node, x, kernel) : plan_window(node, x, kernel));
  ConvShape s;
  s.g = geometry_of(p);
  s.spatial = static_cast<int>(p.spatial);
  const int64_t group = node.attr_int("group", 1), c = p.channels;
  s.g.group = group;
  if (transpose) {
    if (group < 1 || w[0] != c || c % group != 0)
      return invalid_model("{}: weight has {} input channels, input {} with group {}", op, w[0], c, group);
    s.g.out_channels = w[1] * group;
  } else {
    if (group < 1 || c % group != 0 || w[0] % group != 0 || w[1] * group != c)
      return invalid_model("{}: weight [{}, {}, ...] does not fit {} input channels with group {}", op, w[0], w[1], c,
                           group);
    s.g.out_channels = w[0];
  }
  return s;
}

bool symmetric_pads(const WindowGeometry& g) {
  return g.pad_begin[0] == g.pad_end[0] && g.pad_begin[1] == g.pad_end[1] && g.pad_begin[2] == g.pad_end[2];
}

// ConvTranspose's output_shape can make a pad negative (the output extends
// past the full result); cuDNN takes no such pads.
bool nonnegative_pads(const WindowGeometry& g) {
  for (int a = 0; a < 3; ++a)
    if (g.pad_begin[a] < 0 || g.pad_end[a] < 0) return false;
  return true;
}

// How a float convolution runs on cuDNN: the spec and, at the start of the
// workspace, a staging buffer: Conv with asymmetric pads reads an explicitly
// zero-padded copy of X; ConvTranspose with asymmetric pads writes a larger
// result (the smaller pad of each dim on both sides) that is then cropped.
struct CudnnRoute {
  enum class Staging { kNone, kPaddedInput, kFullOutput };
  CudnnConvSpec spec;
  Staging staging = Staging::kNone;
  size_t staging_bytes = 0;
  int64_t crop_offset[3] = {0, 0, 0};
};

// ConvTranspose: cuDNN's backward data needs X to be exactly the forward
// convolution of Y's shape (true when output_padding < stride).
bool transpose_fits_backward_data(const WindowGeometry& g) {
  for (int a = 0; a < 3; ++a) {
    const int64_t extent = (g.kernel[a] - 1) * g.dilation[a] + 1;
    const int64_t span = g.out[a] + g.pad_begin[a] + g.pad_end[a] - extent;
    if (span < 0 || span / g.stride[a] + 1 != g.in[a]) return false;
  }
  return true;
}

std::optional<CudnnRoute> cudnn_route(const ConvShape& s, DType dtype, bool transpose, bool bias) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) return std::nullopt;
  if (!nonnegative_pads(s.g)) return std::nullopt;
  if (transpose && !transpose_fits_backward_data(s.g)) return std::nullopt;
  CudnnRoute r;
  r.spec.dtype = dtype;
  r.spec.transpose = transpose;
  r.spec.accumulate = bias;
  r.spec.spatial = s.spatial;
  r.spec.g = s.g;
  if (symmetric_pads(s.g)) return r;
  WindowGeometry& g = r.spec.g;
  int64_t staged = s.g.batch * (transpose ? s.g.out_channels : s.g.in_channels);
  for (int a = 0; a < 3; ++a) {
    const int64_t pad = transpose ? std::min(g.pad_begin[a], g.pad_end[a]) : 0;
    (transpose ? g.out[a] : g.in[a]) += g.pad_begin[a] + g.pad_end[a] - 2 * pad;
    r.crop_offset[a] = g.pad_begin[a] - pad;
    g.pad_begin[a] = g.pad_end[a] = pad;
    staged *= transpose ? g.out[a] : g.in[a];
  }
  r.staging = transpose ? CudnnRoute::Staging::kFullOutput : CudnnRoute::Staging::kPaddedInput;
  r.staging_bytes = round_up(dtype_storage_bytes(dtype, staged), 256);
  return r;
}

size_t conv_workspace(const KernelQuery& q, bool transpose) {
  const std::vector<int64_t>*x = q.input_dims(0), *w = q.input_dims(1);
  if (!x || !w) return 0;
  Expected<ConvShape> s = conv_shape(q.node(), *x, *w, transpose);
  if (!s.is_ok()) return 0;
  std::optional<CudnnRoute> r = cudnn_route(*s, q.input_dtype(0), transpose, q.has_input(2));
  const std::optional<size_t> limit = r ? cudnn_limit(q.workspace_limit(), r->staging_bytes) : std::nullopt;
  if (!limit) return 0;
  r->spec.allow_tf32 = q.allow_tf32();
  select_cudnn_engine(q.tactic(), kPlainFamily, r->spec);
  r->spec.workspace_limit = *limit;
  std::shared_ptr<const CudnnConvPlan> plan = cudnn_conv_plan(r->spec);
  return plan ? r->staging_bytes + workspace_size(*plan) : 0;
}

// cuDNN's engine configs for `spec` as tactics of `family`: "<family>:<i>"
// for the first `limit` of the heuristic list, and with `exhaustive`
// (--builderOptimizationLevel 5) "<family>_all:<id>" for every other usable
// config, kept apart so a caller can list them after its whole default list.
struct CudnnTactics {
  std::vector<std::string> listed, extra;
};

CudnnTactics cudnn_tactics(const CudnnConvSpec& spec, std::string_view family, size_t limit, bool exhaustive) {
  CudnnTactics out;
  for (const CudnnEngineCandidate& c : cudnn_conv_engine_candidates(spec, limit, exhaustive))
    (c.heuristic_index >= 0 ? out.listed : out.extra).push_back(cudnn_candidate_tactic(family, c));
  return out;
}

// cuDNN's usable engine configs for this convolution, as "cudnn:<i>" (then,
// exhaustive, "cudnn_all:<id>").
std::vector<std::string> conv_tactics(const KernelQuery& q, bool transpose, size_t limit) {
  const std::vector<int64_t>*x = q.input_dims(0), *w = q.input_dims(1);
  if (!x || !w) return {};
  Expected<ConvShape> s = conv_shape(q.node(), *x, *w, transpose);
  if (!s.is_ok()) return {};
  std::optional<CudnnRoute> r = cudnn_route(*s, q.input_dtype(0), transpose, q.has_input(2));
  const std::optional<size_t> ws_limit = r ? cudnn_limit(q.workspace_limit(), r->staging_bytes) : std::nullopt;
  if (!ws_limit) return {};
  r->spec.allow_tf32 = q.allow_tf32();
  r->spec.workspace_limit = *ws_limit;
  CudnnTactics t = cudnn_tactics(r->spec, kPlainFamily, limit, q.exhaustive());
  t.listed.insert(t.listed.end(), t.extra.begin(), t.extra.end());
  return t.listed;
}

// What a convolution node's first run decided: a cuDNN plan and its route,
// or no plan (the direct kernel).
struct ConvState {
  std::shared_ptr<const CudnnConvPlan> plan;
  CudnnRoute route;
  bool fused = false;  // the plan applies FusedConv's whole epilogue
};

ConvState choose_route(KernelContext& ctx, const ConvShape& s, bool transpose) {
  std::optional<CudnnRoute> r = cudnn_route(s, ctx.input(0).dtype, transpose, ctx.has_input(2));
  if (!r || ctx.workspace_bytes() < r->staging_bytes) return {};
  const std::optional<size_t> limit = cudnn_limit(ctx.workspace_limit(), r->staging_bytes);
  if (!limit) return {};
  const size_t available = ctx.workspace_bytes() - r->staging_bytes;
  r->spec.allow_tf32 = ctx.allow_tf32();
  select_cudnn_engine(ctx.tactic(), kPlainFamily, r->spec);
  r->spec.workspace_limit = *limit;  // the plan `workspace` built
  std::shared_ptr<const CudnnConvPlan> plan = cudnn_conv_plan(r->spec);
  if (plan && workspace_size(*plan) > available) {
    r->spec.workspace_limit = available;
    plan = cudnn_conv_plan(r->spec);
  }
  return {std::move(plan), *r};
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

Expected<const void*> checked_bias(const KernelContext& ctx, const ConvShape& s) {
  if (!ctx.has_input(2)) return nullptr;
  const DeviceTensor& b = ctx.input(2);
  if (b.numel() != s.g.out_channels)
    return invalid_model("{}: bias has {} values for {} output channels", ctx.node().op_type, b.numel(),
                         s.g.out_channels);
  return b.data;
}

// Runs the plan, staging through the workspace where the route says so.
// A fused plan reads `graph_bias` and `graph_z` itself.
Status run_cudnn_conv(KernelContext& ctx, const ConvState& state, const WindowGeometry& g, const void* bias,
                      const void* graph_bias = nullptr, const void* graph_z = nullptr) {
  using Staging = CudnnRoute::Staging;
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(1), &y = ctx.output(0);
  const CudnnRoute& r = state.route;
  KILN_ASSIGN_OR_RETURN(const Cudnn* cudnn, ctx.cudnn());
  void* staging = ctx.workspace();
  const void* xin = r.staging == Staging::kPaddedInput ? staging : x.data;
  void* yout = r.staging == Staging::kFullOutput ? staging : y.data;
  if (r.staging == Staging::kPaddedInput)
    KILN_RETURN_IF_ERROR(launch_zero_pad(x.dtype, x.data, staging, g, ctx.stream()));
  if (bias)  // the plan adds the convolution to it
    KILN_RETURN_IF_ERROR(
        launch_fill_channel_bias(y.dtype, yout, bias, g.batch, g.out_channels, r.spec.g.out_size(), ctx.stream()));
  void* cudnn_ws = static_cast<char*>(staging) + r.staging_bytes;
  KILN_RETURN_IF_ERROR(
      execute_cudnn_conv(cudnn->get(), ctx.stream(), *state.plan, xin, w.data, yout, cudnn_ws, graph_bias, graph_z));
  if (r.staging != Staging::kFullOutput) return Status::ok();
  CropParams crop;
  crop.dtype = y.dtype;
  crop.full = staging, crop.y = y.data;
  crop.planes = g.batch * g.out_channels;
  for (int a = 0; a < 3; ++a)
    crop.full_dims[a] = r.spec.g.out[a], crop.y_dims[a] = g.out[a], crop.offset[a] = r.crop_offset[a];
  return launch_crop(crop, ctx.stream());
}

Status run_float_conv(KernelContext& ctx, bool transpose) {
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(1), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(ConvShape s, conv_shape(ctx.node(), x.dims, w.dims, transpose));
  KILN_ASSIGN_OR_RETURN(const void* bias, checked_bias(ctx, s));
  if (y.numel() == 0) return Status::ok();
  std::any& state = ctx.state();
  if (!state.has_value()) state = choose_route(ctx, s, transpose);
  const ConvState& decided = std::any_cast<const ConvState&>(state);
  void* ws = ctx.workspace();
  if (decided.plan && aligned16(x.data) && aligned16(w.data) && aligned16(y.data) && aligned16(ws))
    return run_cudnn_conv(ctx, decided, s.g, bias);
  DirectConvParams p;
  p.dtype = x.dtype;
  p.g = s.g;
  p.transpose = transpose;
  p.x = x.data, p.w = w.data, p.bias = bias, p.y = y.data;
  return launch_direct_conv(p, ctx.stream());
}

Status supports_float_conv(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_window_rank(node));
  for (size_t i = 0; i < 3; ++i) {
    const DType t = input_dtype(node, i);
    if (i == 2 && t == DType::kUndefined) continue;
    if (!is_float_dtype(t))
      return unsupported("{}: input {} has dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", node.op_type, i,
                         dtype_name(t));
    if (t != input_dtype(node, 0)) return unsupported("{}: inputs of different dtypes", node.op_type);
  }
  return Status::ok();
}

// ---- kiln::FusedConv: y = act(conv(x, w) + b + z) ----
//
// channels_last=1 (assign_conv_layout): X, Y, Z are [N, H, W, C] and W is
// [K, R, S, C/group] (grouped and depthwise too); cuDNN reads them through
// NHWC strides, the direct kernel has a channels-last form for what cuDNN
// declines, and the geometry comes from the same dims in NCHW order.

bool channels_last(const Node& node) { return node.attr_int("channels_last", 0) != 0; }

// [N, H, W, C] -> [N, C, H, W] for the geometry (any rank: the last dim moves to 1).
std::vector<int64_t> nchw_dims(const std::vector<int64_t>& d, bool from_channels_last) {
  if (!from_channels_last || d.size() < 3) return d;
  std::vector<int64_t> out{d[0], d.back()};
  out.insert(out.end(), d.begin() + 1, d.end() - 1);
  return out;
}
//
// Tactics "cudnn_fused:<i>" run one cuDNN graph with the whole epilogue (the
// i-th usable engine of the fused graph; runtime fusion engines mostly want
// NHWC and 16-bit types, so NCHW graphs often get none); "cudnn:<i>" run the
// plain convolution then kiln's one-pass epilogue kernel. "" takes the first
// fused engine, else the first plain one; the direct kernel plus the
// epilogue backs up both, so the layer never fails for want of an engine.
// "cudnn_fused_all:<id>" and "cudnn_all:<id>" (--builderOptimizationLevel 5
// only) name an engine config by its id (cudnn_engine_config.h) instead of
// its place in the heuristic list; they are listed after every other
// tactic, and where the config has no plan they run as "cudnn_fused:<i>" and
// "cudnn:<i>" past the list's end do (the plain convolution's first engine,
// and the direct kernel).
// "kiln_dw" runs kiln's own depthwise kernel (depthwise_conv.cuh), epilogue
// included, where the layer qualifies (kiln_depthwise_workspace); where it
// does not at run time, the layer runs as under "". A qualifying layer that
// cuDNN has no plan for runs that kernel in place of the direct one.
// "kiln_dw_strip" is the same kernel with R outputs a thread along W: same
// workspace and results, offered after "kiln_dw" where more than two
// candidates are asked for and the strip kernel applies
// (depthwise_conv_strip_applies: 3x3 or 5x5 at W stride 1 or 2); elsewhere
// it runs as "kiln_dw".
// "kiln_igemm" runs kiln's implicit-GEMM tensor-core kernel (stem_conv.cuh),
// epilogue included, for small-channel layers such as the stems that
// space_to_depth_stem leaves (kiln_igemm_fits); it needs no workspace, and
// where the layer does not qualify at run time it runs as under "".
// "cublaslt:<i>" runs a 1x1 layer as one cuBLASLt GEMM with the whole
// epilogue (conv_gemm_shape): channels-last, x [N, H, W, Cin] is A [N*H*W,
// Cin], w [Cout, 1, 1, Cin] is B stored [Cout, Cin] (trans_b), y is D and z
// is C (beta 1), the bias and Relu are cuBLASLt's epilogue, all applied to
// the f32 accumulator before the one rounding to y's type; i is the i-th
// algorithm of cuBLASLt's heuristic for that GEMM, as matmul.cpp numbers
// them. Offered after kiln's own kernels and before cuDNN's, about a third of
// the candidates (1 to 4, none where a single one is asked for). Its
// workspace is cuBLASLt's scratch or, if larger, what "" asks for; where the
// layer does not qualify at run time (an operand off 256-byte alignment,
// cuBLASLt declining the GEMM or having no algorithm i) it runs as under "".
// The algorithm and the "" route's state are kept apart in ctx.state()
// (CublasLtConvState).

constexpr std::string_view kDepthwiseTactic = "kiln_dw";
constexpr std::string_view kDepthwiseStripTactic = "kiln_dw_strip";
constexpr std::string_view kIgemmTactic = "kiln_igemm";
constexpr std::string_view kCublasLtPrefix = "cublaslt:";

bool is_cublaslt_tactic(const std::string& tactic) { return tactic.rfind(kCublasLtPrefix, 0) == 0; }

// The workspace of the "kiln_dw" and "kiln_dw_strip" tactics (the
// transposed weights) where the layer qualifies: channels-last, 2-D, one channel per group (multiplier 1),
// dilation 1, f32/f16/bf16, 32-bit indexable, the workspace within `limit`.
std::optional<size_t> kiln_depthwise_workspace(const Node& node, const ConvShape& s, DType dtype, size_t limit) {
  if (!channels_last(node) || s.spatial != 2 || !depthwise_conv_fits(dtype, s.g)) return std::nullopt;
  const size_t bytes = depthwise_conv_workspace(dtype, s.g);
  if (bytes > limit) return std::nullopt;
  return bytes;
}

// Whether the "kiln_igemm" tactic takes the layer: channels-last, 2-D, and
// what stem_conv_fits admits (f16/bf16, group 1, stride 1, dilation 1,
// Cin % 16 == 0 with Cin * KH * KW <= 1024, Cout % 16 == 0 up to 128).
bool kiln_igemm_fits(const Node& node, const ConvShape& s, DType dtype) {
  return channels_last(node) && s.spatial == 2 && stem_conv_fits(dtype, s.g);
}

EpilogueActivation epilogue_activation(const FusedActivation& a) {
  switch (a.kind) {
    case FusedActivation::Kind::kRelu: return EpilogueActivation::kRelu;
    case FusedActivation::Kind::kClip: return EpilogueActivation::kClip;
    case FusedActivation::Kind::kSigmoid: return EpilogueActivation::kSigmoid;
    case FusedActivation::Kind::kSilu: return EpilogueActivation::kSilu;
    default: return EpilogueActivation::kNone;
  }
}

// Whether cuDNN's pointwise ops express the activation (RELU_FWD clips to [0, hi]).
bool cudnn_expresses(const FusedActivation& a) {
  return a.kind != FusedActivation::Kind::kClip || (a.lo == 0 && a.hi >= 0);
}

// The spec of the fused graph for a route (plain: `fused` stays false).
CudnnConvSpec fused_spec(CudnnConvSpec spec, const FusedActivation& act, bool bias, bool residual) {
  spec.accumulate = false;
  spec.fused = bias || residual || act.kind != FusedActivation::Kind::kNone;
  spec.fused_bias = bias;
  spec.fused_residual = residual;
  spec.activation = epilogue_activation(act);
  spec.clip_hi = act.kind == FusedActivation::Kind::kClip ? act.hi : 0.f;
  return spec;
}

// What a tactic asks for: whether to try the fused graph first ("",
// "cudnn_fused:<i>" and "cudnn_fused_all:<id>"), and which engine. Whatever
// it names, a missing engine falls back to the plain convolution's first.
struct FusedTactic {
  bool fused_first = true;
  CudnnEngineChoice engine;
};

FusedTactic parse_fused_tactic(const std::string& tactic) {
  if (std::optional<CudnnEngineChoice> fused = parse_cudnn_tactic(tactic, kFusedFamily)) return {true, *fused};
  if (tactic.empty() || tactic == kDepthwiseTactic || tactic == kDepthwiseStripTactic || tactic == kIgemmTactic ||
      is_cublaslt_tactic(tactic))
    return {};
  return {false, parse_cudnn_tactic(tactic, kPlainFamily).value_or(CudnnEngineChoice{})};
}

// The cuDNN route and plan of a FusedConv for `tactic`: engine i is the i-th
// whose workspace fits `limit` beyond the route's staging, as
// fused_conv_tactics numbered them.
ConvState fused_route(const ConvShape& s, DType dtype, const FusedActivation& act, bool bias, bool residual,
                      bool allow_tf32, bool nhwc, const std::string& tactic, size_t limit) {
  std::optional<CudnnRoute> r = cudnn_route(s, dtype, false, false);
  // The staged (asymmetric pads) route copies NCHW planes: channels-last has none.
  if (!r || (nhwc && r->staging != CudnnRoute::Staging::kNone)) return {};
  r->spec.allow_tf32 = allow_tf32;
  r->spec.channels_last = nhwc;
  const FusedTactic t = parse_fused_tactic(tactic);
  auto plan_within = [&](CudnnConvSpec spec) {
    spec.workspace_limit = limit;
    return cudnn_conv_plan(spec);
  };
  const CudnnConvSpec fused = fused_spec(r->spec, act, bias, residual);
  if (t.fused_first && fused.fused && cudnn_expresses(act)) {
    CudnnConvSpec spec = fused;
    use_cudnn_engine(t.engine, spec);
    if (auto plan = plan_within(spec)) return {std::move(plan), *r, true};
  }
  CudnnConvSpec plain = r->spec;
  plain.accumulate = false;
  if (!t.fused_first) use_cudnn_engine(t.engine, plain);
  return {plan_within(plain), *r, false};
}

struct FusedInputs {
  FusedActivation act;
  bool bias = false, residual = false;
};

Expected<FusedInputs> fused_inputs(const Node& node, bool bias, bool residual) {
  KILN_ASSIGN_OR_RETURN(FusedActivation act, read_fused_activation(node));
  return FusedInputs{act, bias, residual};
}

// The "cublaslt:<i>" tactics' GEMM where the layer is one: channels-last, 2-D,
// a 1x1 kernel at stride 1, dilation 1, pads 0 and group 1, f32 (TF32 as the
// build allows, as MatMul), f16 or bf16, and an activation cuBLASLt's
// epilogue applies exactly: none or Relu (a Clip to [0, +inf) is Relu).
std::optional<MatmulShape> conv_gemm_shape(const Node& node, const ConvShape& s, DType dtype, const FusedInputs& in,
                                           bool allow_tf32) {
  if (!channels_last(node) || s.spatial != 2 || !cublaslt_dtype(dtype)) return std::nullopt;
  const WindowGeometry& g = s.g;
  if (g.group != 1) return std::nullopt;
  for (int a = 0; a < 3; ++a)
    if (g.kernel[a] != 1 || g.stride[a] != 1 || g.dilation[a] != 1 || g.pad_begin[a] != 0 || g.pad_end[a] != 0)
      return std::nullopt;
  MatmulShape m;
  switch (in.act.kind) {
    case FusedActivation::Kind::kNone: break;
    case FusedActivation::Kind::kRelu: m.activation = MatmulActivation::kRelu; break;
    case FusedActivation::Kind::kClip:
      if (in.act.lo != 0.f || !(std::isinf(in.act.hi) && in.act.hi > 0)) return std::nullopt;
      m.activation = MatmulActivation::kRelu;
      break;
    default: return std::nullopt;
  }
  m.dtype = dtype;
  m.m = g.batch * g.out_size(), m.n = g.out_channels, m.k = g.in_channels;
  if (m.m <= 0 || m.n <= 0 || m.k <= 0 || g.in_size() != g.out_size()) return std::nullopt;
  m.trans_b = true;  // w [Cout, 1, 1, Cin] is B stored [n, k]
  m.has_c = in.residual;
  m.has_bias = in.bias;
  m.allow_tf32 = allow_tf32;
  return m;
}

// How many "cublaslt:<i>" candidates a layer gets when `remaining` of the
// builder's are left after kiln's own kernels: about a third, 1 to 4, and
// none where only one is left (cuDNN's first stays the single guess).
size_t cublaslt_candidates(size_t remaining) {
  if (remaining < 2) return 0;
  return std::clamp<size_t>(remaining / 3, 1, 4);
}

// A "cublaslt:<i>" layer's ctx.state(): cuBLASLt's algorithm (try_run_cublaslt's)
// and, for runs it does not take, the "" route's ConvState, never one in place of the other.
struct CublasLtConvState {
  std::any algo;
  std::any route;
};

bool aligned256(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 255u) == 0; }

size_t fused_conv_workspace(const KernelQuery& q) {
  const std::vector<int64_t>*x = q.input_dims(0), *w = q.input_dims(1);
  if (!x || !w) return 0;
  const bool nhwc = channels_last(q.node());
  Expected<ConvShape> s = conv_shape(q.node(), nchw_dims(*x, nhwc), nchw_dims(*w, nhwc), false);
  Expected<FusedInputs> in = fused_inputs(q.node(), q.has_input(2), q.has_input(3));
  if (!s.is_ok() || !in.is_ok()) return 0;
  const std::optional<size_t> depthwise = kiln_depthwise_workspace(q.node(), *s, q.input_dtype(0), q.workspace_limit());
  if ((q.tactic() == kDepthwiseTactic || q.tactic() == kDepthwiseStripTactic) && depthwise) return *depthwise;
  if (q.tactic() == kIgemmTactic && kiln_igemm_fits(q.node(), *s, q.input_dtype(0))) return 0;
  std::optional<CudnnRoute> r = cudnn_route(*s, q.input_dtype(0), false, false);
  const std::optional<size_t> limit = r ? cudnn_limit(q.workspace_limit(), r->staging_bytes) : std::nullopt;
  ConvState st;
  if (limit)
    st = fused_route(*s, q.input_dtype(0), in->act, in->bias, in->residual, q.allow_tf32(), nhwc, q.tactic(), *limit);
  // What "" needs (a cublaslt tactic parses as "" there); without a cuDNN
  // plan a depthwise layer runs kiln_dw's kernel.
  const size_t route_bytes = st.plan ? st.route.staging_bytes + workspace_size(*st.plan) : depthwise.value_or(0);
  if (is_cublaslt_tactic(q.tactic()) && conv_gemm_shape(q.node(), *s, q.input_dtype(0), *in, q.allow_tf32()))
    return std::max(cublaslt_workspace_bytes(q.workspace_limit()), route_bytes);
  return route_bytes;
}

std::vector<std::string> fused_conv_tactics(const KernelQuery& q, size_t limit) {
  const std::vector<int64_t>*x = q.input_dims(0), *w = q.input_dims(1);
  if (!x || !w) return {};
  const bool nhwc = channels_last(q.node());
  Expected<ConvShape> s = conv_shape(q.node(), nchw_dims(*x, nhwc), nchw_dims(*w, nhwc), false);
  Expected<FusedInputs> in = fused_inputs(q.node(), q.has_input(2), q.has_input(3));
  if (!s.is_ok() || !in.is_ok()) return {};
  std::vector<std::string> out;
  // kiln's depthwise kernel first, so even a two-candidate build times it
  // against cuDNN's best guess; its strip variant second where more are asked for.
  if (limit > 0 && kiln_depthwise_workspace(q.node(), *s, q.input_dtype(0), q.workspace_limit())) {
    out.emplace_back(kDepthwiseTactic);
    if (limit > 2 && depthwise_conv_strip_applies(s->g)) out.emplace_back(kDepthwiseStripTactic);
  }
  // Then kiln's implicit GEMM (never with kiln_dw: that one needs group == Cin).
  if (limit > out.size() && kiln_igemm_fits(q.node(), *s, q.input_dtype(0))) out.emplace_back(kIgemmTactic);
  // Then cuBLASLt's algorithms for a 1x1 layer's GEMM, before cuDNN's.
  if (const size_t n = cublaslt_candidates(limit - out.size()); n > 0) {
    if (auto gemm = conv_gemm_shape(q.node(), *s, q.input_dtype(0), *in, q.allow_tf32())) {
      for (std::string& t : cublaslt_tactics(*gemm, n, cublaslt_workspace_bytes(q.workspace_limit())))
        out.push_back(std::move(t));
    }
  }
  const size_t cudnn_candidates = limit - out.size();
  std::optional<CudnnRoute> r = cudnn_route(*s, q.input_dtype(0), false, false);
  if (cudnn_candidates == 0 || (nhwc && r && r->staging != CudnnRoute::Staging::kNone)) return out;
  const std::optional<size_t> ws_limit = r ? cudnn_limit(q.workspace_limit(), r->staging_bytes) : std::nullopt;
  if (!ws_limit) return out;
  r->spec.allow_tf32 = q.allow_tf32();
  r->spec.channels_last = nhwc;
  r->spec.workspace_limit = *ws_limit;
  const CudnnConvSpec fused = fused_spec(r->spec, in->act, in->bias, in->residual);
  CudnnTactics fused_tactics;
  if (fused.fused && cudnn_expresses(in->act)) {
    // At most half cuDNN's candidates (one at least): runtime fusion engines
    // compile at plan time, and the plain convolution's best stay in the race.
    fused_tactics = cudnn_tactics(fused, kFusedFamily, std::max<size_t>(1, cudnn_candidates / 2), q.exhaustive());
  }
  CudnnConvSpec plain = r->spec;
  plain.accumulate = false;
  const size_t fused_count = fused_tactics.listed.size();
  CudnnTactics plain_tactics =
      cudnn_tactics(plain, kPlainFamily, cudnn_candidates - std::min(cudnn_candidates, fused_count), q.exhaustive());
  // The exhaustive search's extras last, so the default list stays a prefix.
  for (std::vector<std::string>* part :
       {&fused_tactics.listed, &plain_tactics.listed, &fused_tactics.extra, &plain_tactics.extra})
    out.insert(out.end(), part->begin(), part->end());
  return out;
}

Status run_fused_conv(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(1), &y = ctx.output(0);
  const bool nhwc = channels_last(ctx.node());
  KILN_ASSIGN_OR_RETURN(ConvShape s, conv_shape(ctx.node(), nchw_dims(x.dims, nhwc), nchw_dims(w.dims, nhwc), false));
  KILN_ASSIGN_OR_RETURN(const void* bias, checked_bias(ctx, s));
  KILN_ASSIGN_OR_RETURN(FusedInputs in, fused_inputs(ctx.node(), ctx.has_input(2), ctx.has_input(3)));
  const void* z = nullptr;
  if (ctx.has_input(3)) {
    const DeviceTensor& zt = ctx.input(3);
    if (zt.dims != y.dims || zt.dtype != y.dtype)
      return invalid_model("FusedConv: residual Z is {}[{}], the convolution's output {}[{}]", dtype_name(zt.dtype),
                           fmt::join(zt.dims, ","), dtype_name(y.dtype), fmt::join(y.dims, ","));
    z = zt.data;
  }
  if (y.numel() == 0) return Status::ok();
  // kiln's depthwise kernel, epilogue included, where the layer qualifies and
  // the workspace holds its transposed weights.
  const std::optional<size_t> dw_bytes = kiln_depthwise_workspace(ctx.node(), s, x.dtype, ctx.workspace_limit());
  const bool dw_ok = dw_bytes && ctx.workspace() && ctx.workspace_bytes() >= *dw_bytes;
  // The layer's operands for kiln's own kernels.
  FusedConvOperands operands;
  operands.dtype = x.dtype;
  operands.g = s.g;
  operands.x = x.data, operands.w = w.data, operands.bias = bias, operands.z = z, operands.y = y.data;
  operands.act = epilogue_activation(in.act);
  operands.lo = in.act.lo, operands.hi = in.act.hi;
  auto run_depthwise = [&](bool strip) {
    DepthwiseConvParams p;
    static_cast<FusedConvOperands&>(p) = operands;
    p.workspace = ctx.workspace();
    p.strip = strip;
    return launch_depthwise_conv(p, ctx.stream());
  };
  if (ctx.tactic() == kDepthwiseTactic && dw_ok) return run_depthwise(false);
  if (ctx.tactic() == kDepthwiseStripTactic && dw_ok) return run_depthwise(true);
  // kiln's implicit GEMM, epilogue included, where the layer qualifies and
  // x and w are 16-byte aligned.
  if (ctx.tactic() == kIgemmTactic && kiln_igemm_fits(ctx.node(), s, x.dtype) && aligned16(x.data) && aligned16(w.data))
    return launch_stem_conv(operands, ctx.stream());
  // cuBLASLt's GEMM, epilogue included, where the layer is one and every
  // operand has the 256-byte alignment its heuristic assumed; the "" route's
  // state then lives beside the algorithm.
  std::any* route_state = &ctx.state();
  if (is_cublaslt_tactic(ctx.tactic())) {
    std::any& held = ctx.state();
    if (!held.has_value()) held = CublasLtConvState{};
    auto* lt = std::any_cast<CublasLtConvState>(&held);
    if (!lt) return internal_error("FusedConv {}: kernel state is not the cublaslt tactic's", ctx.node().label());
    const std::optional<MatmulShape> gemm = conv_gemm_shape(ctx.node(), s, x.dtype, in, ctx.allow_tf32());
    const size_t lt_bytes = cublaslt_workspace_bytes(ctx.workspace_limit());
    const bool aligned = aligned256(x.data) && aligned256(w.data) && aligned256(y.data) &&
                         (!bias || aligned256(bias)) && (!z || aligned256(z)) &&
                         (lt_bytes == 0 || aligned256(ctx.workspace()));
    if (gemm && aligned && ctx.workspace_bytes() >= lt_bytes) {
      MatmulArgs args;
      args.a = x.data, args.b = w.data, args.c = z, args.bias = bias, args.d = y.data;
      args.beta = z ? 1.f : 0.f;
      KILN_ASSIGN_OR_RETURN(const bool ran, try_run_cublaslt(ctx, *gemm, args, 0, &lt->algo));
      if (ran) return Status::ok();
    }
    route_state = &lt->route;
  }
  std::any& state = *route_state;
  if (!state.has_value()) {
    ConvState st;
    std::optional<CudnnRoute> r = cudnn_route(s, x.dtype, false, false);
    const std::optional<size_t> limit = r ? cudnn_limit(ctx.workspace_limit(), r->staging_bytes) : std::nullopt;
    if (limit) st = fused_route(s, x.dtype, in.act, in.bias, in.residual, ctx.allow_tf32(), nhwc, ctx.tactic(), *limit);
    // The plan fused_conv_workspace sized the layer's workspace for; the direct kernel otherwise.
    if (st.plan && st.route.staging_bytes + workspace_size(*st.plan) > ctx.workspace_bytes()) st = ConvState{};
    state = std::move(st);
  }
  const ConvState& decided = std::any_cast<const ConvState&>(state);
  ConvEpilogueParams e;
  e.dtype = y.dtype;
  e.y = y.data;
  e.z = z;
  // Channels-last: channel c of element i is i % C (inner 1, batch N*H*W).
  e.batch = nhwc ? s.g.batch * s.g.out_size() : s.g.batch;
  e.channels = s.g.out_channels;
  e.inner = nhwc ? 1 : s.g.out_size();
  e.act = epilogue_activation(in.act);
  e.lo = in.act.lo, e.hi = in.act.hi;
  void* ws = ctx.workspace();
  const bool cudnn_ok = decided.plan && aligned16(x.data) && aligned16(w.data) && aligned16(y.data) && aligned16(ws) &&
                        (!bias || aligned16(bias)) && (!z || aligned16(z));
  if (cudnn_ok && decided.fused) return run_cudnn_conv(ctx, decided, s.g, nullptr, bias, z);
  if (cudnn_ok) {
    KILN_RETURN_IF_ERROR(run_cudnn_conv(ctx, decided, s.g, nullptr));
    e.bias = bias;
  } else {
    // No cuDNN plan (channels-last with asymmetric pads has none): a depthwise
    // layer takes kiln's kernel rather than the generic direct one.
    if (dw_ok) return run_depthwise(false);
    if (nhwc && s.spatial != 2)
      return unsupported("FusedConv {}: channels_last takes 2-D convolutions", ctx.node().label());
    DirectConvParams p;
    p.dtype = x.dtype;
    p.g = s.g;
    p.channels_last = nhwc;
    p.x = x.data, p.w = w.data, p.bias = bias, p.y = y.data;
    KILN_RETURN_IF_ERROR(launch_direct_conv(p, ctx.stream()));
  }
  if (!e.bias && !e.z && e.act == EpilogueActivation::kNone) return Status::ok();
  return launch_conv_epilogue(e, ctx.stream());
}

Status supports_fused_conv(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_float_conv(node));
  KILN_RETURN_IF_ERROR(read_fused_activation(node).status());
  const DType z = input_dtype(node, 3);
  if (z != DType::kUndefined && z != input_dtype(node, 0))
    return unsupported("FusedConv: residual Z has dtype {}, X {}", dtype_name(z), dtype_name(input_dtype(node, 0)));
  return Status::ok();
}

bool is_8bit(DType t) { return t == DType::kU8 || t == DType::kI8; }

// The 8-bit tensor `i` and its zero point `z` (absent, or of the same dtype).
Status check_8bit_pair(const Node& node, size_t i, size_t z) {
  const DType t = input_dtype(node, i), zt = input_dtype(node, z);
  if (!is_8bit(t))
    return unsupported("{}: input {} has dtype {} (uint8 and int8 only)", node.op_type, i, dtype_name(t));
  if (zt != DType::kUndefined && zt != t)
    return unsupported("{}: zero point {} has dtype {}, its tensor {}", node.op_type, z, dtype_name(zt), dtype_name(t));
  return Status::ok();
}

Status supports_conv_integer(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_window_rank(node));
  KILN_RETURN_IF_ERROR(check_8bit_pair(node, 0, 2));
  return check_8bit_pair(node, 1, 3);
}

Status supports_qlinear_conv(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_window_rank(node));
  KILN_RETURN_IF_ERROR(check_8bit_pair(node, 0, 2));
  KILN_RETURN_IF_ERROR(check_8bit_pair(node, 3, 5));
  KILN_RETURN_IF_ERROR(check_8bit_pair(node, 7, 7));
  for (size_t i : {1, 4, 6})
    if (input_dtype(node, i) != DType::kF32)
      return unsupported("QLinearConv: scale {} has dtype {} (f32 only, as on the CPU)", i,
                         dtype_name(input_dtype(node, i)));
  if (node.input(8) && input_dtype(node, 8) != DType::kI32)
    return unsupported("QLinearConv: bias has dtype {} (int32 only)", dtype_name(input_dtype(node, 8)));
  return Status::ok();
}

// A per-tensor or (when `channels` > 1) per-output-channel input's count.
Status check_count(const KernelContext& ctx, size_t i, int64_t channels) {
  if (!ctx.has_input(i)) return Status::ok();
  const int64_t n = ctx.input(i).numel();
  if (n != 1 && n != channels)
    return invalid_model("{}: input {} has {} values; expected 1 or {}", ctx.node().op_type, i, n, channels);
  return Status::ok();
}

// The integer conv's common part: x (input 0) and w (input w_index).
Expected<IntegerConvParams> integer_params(KernelContext& ctx, size_t w_index, size_t x_zero, size_t w_zero) {
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(w_index), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(ConvShape s, conv_shape(ctx.node(), x.dims, w.dims, false));
  KILN_RETURN_IF_ERROR(check_count(ctx, x_zero, 1));
  KILN_RETURN_IF_ERROR(check_count(ctx, w_zero, s.g.out_channels));
  IntegerConvParams p;
  p.g = s.g;
  p.x_type = x.dtype, p.w_type = w.dtype, p.y_type = y.dtype;
  p.x = x.data, p.w = w.data, p.y = y.data;
  if (ctx.has_input(x_zero)) p.x_zero = ctx.input(x_zero).data;
  if (ctx.has_input(w_zero)) p.w_zero = ctx.input(w_zero).data, p.w_zero_count = ctx.input(w_zero).numel();
  return p;
}

Status run_conv_integer(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(IntegerConvParams p, integer_params(ctx, 1, 2, 3));
  return launch_integer_conv(p, ctx.stream());
}

Status run_qlinear_conv(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(IntegerConvParams p, integer_params(ctx, 3, 2, 5));
  const int64_t m = p.g.out_channels;
  KILN_RETURN_IF_ERROR(check_count(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(check_count(ctx, 4, m));
  KILN_RETURN_IF_ERROR(check_count(ctx, 6, 1));
  KILN_RETURN_IF_ERROR(check_count(ctx, 7, 1));
  if (ctx.has_input(8) && ctx.input(8).numel() != m)
    return invalid_model("QLinearConv: bias has {} values for {} output channels", ctx.input(8).numel(), m);
  p.x_scale = ctx.input(1).as<float>();
  p.w_scale = ctx.input(4).as<float>(), p.w_scale_count = ctx.input(4).numel();
  p.y_scale = ctx.input(6).as<float>();
  if (ctx.has_input(7)) p.y_zero = ctx.input(7).data;
  if (ctx.has_input(8)) p.bias = ctx.input(8).as<int32_t>();
  return launch_integer_conv(p, ctx.stream());
}

KILN_CUDA_KERNEL("", "Conv",
                 {.run = [](KernelContext& c) { return run_float_conv(c, false); },
                  .workspace = [](const KernelQuery& q) { return conv_workspace(q, false); },
                  .supports = supports_float_conv,
                  .tactics = [](const KernelQuery& q, size_t n) { return conv_tactics(q, false, n); }});
KILN_CUDA_KERNEL("", "ConvTranspose",
                 {.run = [](KernelContext& c) { return run_float_conv(c, true); },
                  .workspace = [](const KernelQuery& q) { return conv_workspace(q, true); },
                  .supports = supports_float_conv,
                  .tactics = [](const KernelQuery& q, size_t n) { return conv_tactics(q, true, n); }});
KILN_CUDA_KERNEL("kiln", "FusedConv",
                 {.run = run_fused_conv,
                  .workspace = fused_conv_workspace,
                  .supports = supports_fused_conv,
                  .tactics = fused_conv_tactics});
KILN_CUDA_KERNEL("", "ConvInteger", {.run = run_conv_integer, .supports = supports_conv_integer});
KILN_CUDA_KERNEL("", "QLinearConv", {.run = run_qlinear_conv, .supports = supports_qlinear_conv});

}  // namespace
}  // namespace kiln::cuda
