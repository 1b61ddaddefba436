// kiln.ExpandDepthwiseConv on the GPU. Tactics:
//
// "kiln_expand_dw": the fused kernel (expand_depthwise_conv.cuh), where its
// plan takes the layer and x, w1, y are 16-byte aligned; no workspace.
// "unfused" and "unfused:<te>/<td>": the two FusedConv layers run through
// FusedConv's own kernel definition (conv.cpp), the expansion with FusedConv
// tactic te and the depthwise with td ("" for FusedConv's default), the
// expanded tensor in this layer's workspace ahead of theirs. This is the
// route the graph took before fuse_expand_depthwise, so the builder's timing
// keeps it wherever the fused kernel loses or fails its check.
// "" (the default) is "unfused", or the fused kernel where the expanded
// tensor does not fit the workspace limit (then nothing else can run).
// Where a tactic cannot run at run time (the fused kernel on misaligned
// pointers, a workspace smaller than asked), the layer runs unfused when its
// workspace holds the expanded tensor, else fused; an error only when neither can.
#include "backends/cuda/kernels/expand_depthwise_conv.cuh"

#include <algorithm>
#include <any>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/window_ops.h"
#include "ops/expand_depthwise_conv.h"
#include "ops/fused_activation.h"

namespace kiln::cuda {
namespace {

constexpr std::string_view kFusedTactic = "kiln_expand_dw";
constexpr std::string_view kUnfused = "unfused";

size_t round256(size_t n) { return (n + 255) / 256 * 256; }

const KernelDef& fused_conv_def() {
  static const KernelDef* def = KernelRegistry::instance().find("kiln", "FusedConv");
  return *def;
}

// The FusedConv tactics of the expansion and of the depthwise a tactic
// names; nullopt for "kiln_expand_dw".
struct UnfusedTactics {
  std::string expand, depthwise;
};
std::optional<UnfusedTactics> unfused_tactics(const std::string& t) {
  if (t.empty() || t == kUnfused) return UnfusedTactics{};
  const std::string prefix = std::string(kUnfused) + ":";
  if (t.rfind(prefix, 0) != 0) return std::nullopt;
  const size_t slash = t.find('/', prefix.size());
  if (slash == std::string::npos) return std::nullopt;
  return UnfusedTactics{t.substr(prefix.size(), slash - prefix.size()), t.substr(slash + 1)};
}
std::string unfused_name(const UnfusedTactics& t) {
  if (t.expand.empty() && t.depthwise.empty()) return std::string(kUnfused);
  return std::string(kUnfused) + ":" + t.expand + "/" + t.depthwise;
}

// The fused kernel's layer for input dims x, w2; nullopt where the node is
// no square kernel at equal strides (the kernel's only form).
std::optional<ExpandDwLayer> layer_of(const Node& node, const std::vector<int64_t>& x, const std::vector<int64_t>& w1,
                                      const std::vector<int64_t>& w2, DType dtype) {
  if (x.size() != 4 || w1.size() != 4 || w2.size() != 4 || w2[1] != w2[2]) return std::nullopt;
  const std::vector<int64_t> strides = node.attr_ints("strides", {1, 1});
  const std::vector<int64_t> pads = node.attr_ints("pads", {0, 0, 0, 0});
  if (strides.size() != 2 || strides[0] != strides[1] || pads.size() != 4) return std::nullopt;
  ExpandDwLayer l;
  l.f16_or_bf16 = dtype == DType::kF16 || dtype == DType::kBF16;
  l.n = x[0], l.h = x[1], l.w = x[2], l.c = x[3], l.e = w1[0], l.k = w2[1], l.s = strides[0];
  l.pt = pads[0], l.pl = pads[1], l.pb = pads[2], l.pr = pads[3];
  if (w1[3] != l.c || w2[0] != l.e) return std::nullopt;
  return l;
}

// The expanded tensor's dims [N, H, W, E] and its bytes in the workspace.
std::vector<int64_t> expanded_dims(const std::vector<int64_t>& x, const std::vector<int64_t>& w1) {
  return {x[0], x[1], x[2], w1[0]};
}
size_t expanded_bytes(DType t, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return round256(dtype_storage_bytes(t, n));
}

// The two FusedConv nodes with the expanded tensor as a value of their own,
// kept at one address (the parts point at it) for every query and run.
struct Parts {
  Value expanded;
  ExpandDepthwiseParts nodes;
};
std::shared_ptr<Parts> make_parts(const Node& node, DType dtype, int64_t e) {
  auto p = std::make_shared<Parts>();
  p->expanded.name = node.name + "/expanded";
  p->expanded.type = Type::tensor(dtype, Shape());
  p->nodes = expand_depthwise_parts(node, e, &p->expanded);
  return p;
}

// What FusedConv's `workspace` and `tactics` see of one part.
class PartQuery final : public KernelQuery {
 public:
  PartQuery(const KernelQuery& outer, const Node& part, std::vector<const std::vector<int64_t>*> dims,
            std::string tactic, size_t limit)
      : outer_(outer), part_(part), dims_(std::move(dims)), tactic_(std::move(tactic)), limit_(limit) {}
  const Node& node() const override { return part_; }
  DType input_dtype(size_t i) const override { return i < dims_.size() ? outer_.input_dtype(0) : DType::kUndefined; }
  const std::vector<int64_t>* input_dims(size_t i) const override { return i < dims_.size() ? dims_[i] : nullptr; }
  const Tensor* host_input(size_t) const override { return nullptr; }
  const std::string& tactic() const override { return tactic_; }
  bool allow_tf32() const override { return outer_.allow_tf32(); }
  size_t workspace_limit() const override { return limit_; }

 private:
  const KernelQuery& outer_;
  const Node& part_;
  std::vector<const std::vector<int64_t>*> dims_;
  std::string tactic_;
  size_t limit_;
};

// One part run through FusedConv's definition inside this layer's run.
class PartContext final : public KernelContext {
 public:
  PartContext(KernelContext& outer, const Node& part, std::vector<DeviceTensor> in, DeviceTensor out, void* ws,
              size_t ws_bytes, size_t ws_limit, std::any& state, const std::string& tactic)
      : outer_(outer),
        part_(part),
        in_(std::move(in)),
        out_(std::move(out)),
        ws_(ws),
        ws_bytes_(ws_bytes),
        ws_limit_(ws_limit),
        state_(state),
        tactic_(tactic) {}
  const Node& node() const override { return part_; }
  const DeviceTensor& input(size_t i) const override { return i < in_.size() ? in_[i] : none_; }
  const Tensor* host_input(size_t) const override { return nullptr; }
  const DeviceTensor& output(size_t) const override { return out_; }
  void* workspace() const override { return ws_bytes_ ? ws_ : nullptr; }
  size_t workspace_bytes() const override { return ws_bytes_; }
  size_t workspace_limit() const override { return ws_limit_; }
  cudaStream_t stream() const override { return outer_.stream(); }
  const DeviceInfo& device() const override { return outer_.device(); }
  Expected<const CublasLt*> cublaslt() override { return outer_.cublaslt(); }
  Expected<const Cudnn*> cudnn() override { return outer_.cudnn(); }
  bool allow_tf32() const override { return outer_.allow_tf32(); }
  std::any& state() override { return state_; }
  const std::string& tactic() const override { return tactic_; }

 private:
  KernelContext& outer_;
  const Node& part_;
  std::vector<DeviceTensor> in_;
  DeviceTensor out_, none_;
  void* ws_;
  size_t ws_bytes_, ws_limit_;
  std::any& state_;
  const std::string& tactic_;
};

// The workspace of the unfused route with FusedConv tactics t: the expanded
// tensor, then the larger of the two parts' own; nullopt over `limit`.
std::optional<size_t> unfused_workspace(const KernelQuery& q, const UnfusedTactics& t) {
  const std::vector<int64_t>*x = q.input_dims(kEdX), *w1 = q.input_dims(kEdW1), *w2 = q.input_dims(kEdW2);
  if (!x || !w1 || !w2 || x->size() != 4 || w1->size() != 4) return std::nullopt;
  const std::vector<int64_t> e_dims = expanded_dims(*x, *w1);
  const size_t e_bytes = expanded_bytes(q.input_dtype(kEdX), e_dims);
  if (e_bytes > q.workspace_limit()) return std::nullopt;
  const size_t rest = q.workspace_limit() == SIZE_MAX ? SIZE_MAX : q.workspace_limit() - e_bytes;
  const std::shared_ptr<Parts> parts = make_parts(q.node(), q.input_dtype(kEdX), (*w1)[0]);
  const KernelDef& def = fused_conv_def();
  const PartQuery expand(q, parts->nodes.expand, {x, w1, q.input_dims(kEdB1)}, t.expand, rest);
  const PartQuery depthwise(q, parts->nodes.depthwise, {&e_dims, w2, q.input_dims(kEdB2)}, t.depthwise, rest);
  const size_t need = e_bytes + std::max(def.workspace(expand), def.workspace(depthwise));
  if (need > q.workspace_limit()) return std::nullopt;
  return need;
}

bool fused_plan(const KernelQuery& q) {
  const std::vector<int64_t>*x = q.input_dims(kEdX), *w1 = q.input_dims(kEdW1), *w2 = q.input_dims(kEdW2);
  if (!x || !w1 || !w2) return false;
  const std::optional<ExpandDwLayer> l = layer_of(q.node(), *x, *w1, *w2, q.input_dtype(kEdX));
  return l && plan_expand_dw(*l).has_value();
}

// "kiln_expand_dw" asks for the unfused route's workspace too where the
// limit allows: pointers off 16-byte alignment (a caller's buffer) then run
// unfused instead of failing. The arena holds the expanded tensor's bytes as
// it did before the fusion, but the fused kernel never touches them.
size_t expand_depthwise_workspace(const KernelQuery& q) {
  const std::optional<UnfusedTactics> t = unfused_tactics(q.tactic());
  if (const std::optional<size_t> bytes = unfused_workspace(q, t ? *t : UnfusedTactics{})) return *bytes;
  return 0;  // the fused kernel, the only route within the limit
}

// The fused kernel first; then "unfused" and pairs of the parts' own best
// FusedConv tactics: each expansion tactic with the depthwise's first, then
// each other depthwise tactic with the expansion's first.
std::vector<std::string> expand_depthwise_tactics(const KernelQuery& q, size_t limit) {
  std::vector<std::string> out;
  if (limit == 0) return out;
  if (fused_plan(q)) out.emplace_back(kFusedTactic);
  const std::vector<int64_t>*x = q.input_dims(kEdX), *w1 = q.input_dims(kEdW1), *w2 = q.input_dims(kEdW2);
  if (!x || !w1 || !w2 || x->size() != 4 || w1->size() != 4 || !unfused_workspace(q, {})) return out;
  const std::vector<int64_t> e_dims = expanded_dims(*x, *w1);
  const size_t e_bytes = expanded_bytes(q.input_dtype(kEdX), e_dims);
  const size_t rest = q.workspace_limit() == SIZE_MAX ? SIZE_MAX : q.workspace_limit() - e_bytes;
  const std::shared_ptr<Parts> parts = make_parts(q.node(), q.input_dtype(kEdX), (*w1)[0]);
  const KernelDef& def = fused_conv_def();
  const size_t room = limit - out.size();
  std::vector<std::string> te, td;
  if (def.tactics) {
    te = def.tactics(PartQuery(q, parts->nodes.expand, {x, w1, q.input_dims(kEdB1)}, "", rest), room);
    td = def.tactics(PartQuery(q, parts->nodes.depthwise, {&e_dims, w2, q.input_dims(kEdB2)}, "", rest), room);
  }
  std::vector<UnfusedTactics> pairs{{}};
  const std::string td0 = td.empty() ? "" : td[0], te0 = te.empty() ? "" : te[0];
  for (const std::string& e : te) pairs.push_back({e, td0});
  for (size_t i = 1; i < td.size(); ++i) pairs.push_back({te0, td[i]});
  for (const UnfusedTactics& p : pairs) {
    if (out.size() >= limit) break;
    const std::string name = unfused_name(p);
    if (std::find(out.begin(), out.end(), name) == out.end() && unfused_workspace(q, p)) out.push_back(name);
  }
  return out;
}

// The parts' FusedConv states across runs (one each, as their own layers keep).
struct UnfusedState {
  std::shared_ptr<Parts> parts;
  std::any expand, depthwise;
};

Status run_unfused(KernelContext& ctx, const UnfusedTactics& t, size_t e_bytes) {
  const DeviceTensor &x = ctx.input(kEdX), &w1 = ctx.input(kEdW1);
  std::any& held = ctx.state();
  if (!held.has_value()) held = UnfusedState{make_parts(ctx.node(), x.dtype, w1.dims[0]), {}, {}};
  auto* st = std::any_cast<UnfusedState>(&held);
  if (!st) return internal_error("ExpandDepthwiseConv {}: kernel state is not the unfused route's", ctx.node().label());
  DeviceTensor e{x.dtype, expanded_dims(x.dims, w1.dims), ctx.workspace()};
  void* ws = static_cast<char*>(ctx.workspace()) + e_bytes;
  const size_t ws_bytes = ctx.workspace_bytes() - e_bytes;
  const size_t limit = ctx.workspace_limit() == SIZE_MAX ? SIZE_MAX : ctx.workspace_limit() - e_bytes;
  const KernelDef& def = fused_conv_def();
  auto input = [&](size_t i) { return ctx.has_input(i) ? ctx.input(i) : DeviceTensor{}; };
  PartContext expand(ctx, st->parts->nodes.expand, {x, w1, input(kEdB1)}, e, ws, ws_bytes, limit, st->expand, t.expand);
  KILN_RETURN_IF_ERROR(def.run(expand));
  PartContext depthwise(ctx, st->parts->nodes.depthwise, {e, ctx.input(kEdW2), input(kEdB2)}, ctx.output(0), ws,
                        ws_bytes, limit, st->depthwise, t.depthwise);
  return def.run(depthwise);
}

Status run_expand_depthwise(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(kEdX), &w1 = ctx.input(kEdW1), &w2 = ctx.input(kEdW2), &y = ctx.output(0);
  if (x.rank() != 4 || w1.rank() != 4 || w2.rank() != 4)
    return invalid_model("ExpandDepthwiseConv {}: X, W1 and W2 must be 4-D", ctx.node().label());
  if (y.numel() == 0) return Status::ok();
  const size_t e_bytes = expanded_bytes(x.dtype, expanded_dims(x.dims, w1.dims));
  const bool unfused_fits = ctx.workspace() && ctx.workspace_bytes() >= e_bytes;
  const std::optional<UnfusedTactics> t = unfused_tactics(ctx.tactic());
  if (t && unfused_fits) return run_unfused(ctx, *t, e_bytes);
  ExpandDepthwiseParams p;
  p.dtype = x.dtype;
  if (const std::optional<ExpandDwLayer> l = layer_of(ctx.node(), x.dims, w1.dims, w2.dims, x.dtype)) p.layer = *l;
  p.x = x.data, p.w1 = w1.data, p.w2 = w2.data, p.y = y.data;
  p.b1 = ctx.has_input(kEdB1) ? ctx.input(kEdB1).data : nullptr;
  p.b2 = ctx.has_input(kEdB2) ? ctx.input(kEdB2).data : nullptr;
  const ExpandDepthwiseParts parts = expand_depthwise_parts(ctx.node(), w1.dims[0], nullptr);
  KILN_ASSIGN_OR_RETURN(FusedActivation a1, read_fused_activation(parts.expand));
  KILN_ASSIGN_OR_RETURN(FusedActivation a2, read_fused_activation(parts.depthwise));
  p.act1 = epilogue_activation(a1), p.lo1 = a1.lo, p.hi1 = a1.hi;
  p.act2 = epilogue_activation(a2), p.lo2 = a2.lo, p.hi2 = a2.hi;
  if (expand_depthwise_conv_runs(p)) return launch_expand_depthwise_conv(p, ctx.stream());
  if (unfused_fits) return run_unfused(ctx, {}, e_bytes);
  return unsupported(
      "ExpandDepthwiseConv {}: the fused kernel does not take the layer (or its pointers are not 16-byte aligned) "
      "and the workspace ({} bytes) cannot hold the expanded tensor ({} bytes)",
      ctx.node().label(), ctx.workspace_bytes(), e_bytes);
}

Status supports_expand_depthwise(const Node& node) {
  const DType t = input_dtype(node, kEdX);
  if (t != DType::kF16 && t != DType::kBF16 && t != DType::kF32)
    return unsupported("ExpandDepthwiseConv: X has dtype {} (f32, f16, bf16)", dtype_name(t));
  for (size_t i : {kEdW1, kEdB1, kEdW2, kEdB2})
    if (node.input(i) && input_dtype(node, i) != t)
      return unsupported("ExpandDepthwiseConv: input {} has dtype {}, X {}", i, dtype_name(input_dtype(node, i)),
                         dtype_name(t));
  const Value* w1 = node.input(kEdW1);
  const int64_t e = w1 && w1->type.shape.has_rank() && w1->type.shape.rank() == 4 && w1->type.shape[0].is_fixed()
                        ? w1->type.shape[0].value
                        : 1;
  const std::shared_ptr<Parts> parts = make_parts(node, t, e);
  const KernelDef& def = fused_conv_def();
  if (def.supports) {
    KILN_RETURN_IF_ERROR(def.supports(parts->nodes.expand));
    KILN_RETURN_IF_ERROR(def.supports(parts->nodes.depthwise));
  }
  return Status::ok();
}

KILN_CUDA_KERNEL("kiln", "ExpandDepthwiseConv",
                 {.run = run_expand_depthwise,
                  .workspace = expand_depthwise_workspace,
                  .supports = supports_expand_depthwise,
                  .tactics = expand_depthwise_tactics});

}  // namespace
}  // namespace kiln::cuda
