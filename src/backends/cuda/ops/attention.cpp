// Attention (ONNX opset 23+: 3-D and 4-D, GQA, masks, causal and window
// limits, softcap, KV cache in or out, qk_matmul_output), kiln.PackedAttention
// (3-D Attention reading Q, K and V in place from one packed QKV tensor: the
// same kernels and tactics, with row strides) and RotaryEmbedding.
#include "backends/cuda/kernels/attention.cuh"

#include <algorithm>
#include <any>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/ops/cudnn_attention.h"
#include "ir/dtype.h"

namespace kiln::cuda {
namespace {

DType value_type(const Value* v) { return v ? v->type.dtype : DType::kUndefined; }

// Attention's tactics: "simt" (the default kernel), the tensor-core ones,
// WMMA (attention_tc.cu) and mma.sync (attention_mma.cu, attention_flash.cu),
// and cuDNN's fused attention (cudnn_attention.h, where the cuDNN frontend is
// compiled in).
constexpr std::string_view kTensorCoreTactic = "tc";
constexpr std::string_view kMmaTactic = "mma";
constexpr std::string_view kFlashTactic = "flash";
constexpr std::string_view kCudnnTactic = "cudnn";

bool attention_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

// Two dtypes that are known and not the same.
bool differ(DType a, DType b) { return a != DType::kUndefined && b != DType::kUndefined && a != b; }

// Every given input of `ctx` in `inputs` has input 0's dtype (checked when
// the graph's types were unknown to `supports`).
Status check_one_dtype(const KernelContext& ctx, std::initializer_list<size_t> inputs, const char* op) {
  for (size_t i : inputs)
    if (ctx.has_input(i) && ctx.input(i).dtype != ctx.input(0).dtype)
      return unsupported("{}: input {} is {} but input 0 is {} (the CUDA kernel takes one dtype)", op, i,
                         dtype_name(ctx.input(i).dtype), dtype_name(ctx.input(0).dtype));
  return Status::ok();
}

Status supports_attention(const Node& node) {
  const DType t = value_type(node.input(0));
  if (!attention_dtype(t))
    return unsupported("Attention: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(t));
  for (size_t i : {1, 2, 4, 5})
    if (node.input(i) && differ(value_type(node.input(i)), t))
      return unsupported("Attention: input {} is {} but Q is {} (the CUDA kernel takes one dtype)", i,
                         dtype_name(value_type(node.input(i))), dtype_name(t));
  if (node.input(3)) {
    const DType m = value_type(node.input(3));
    if (m != DType::kBool && !attention_dtype(m))
      return unsupported("Attention: attn_mask dtype {} (the CUDA kernel takes bool or a float type)", dtype_name(m));
  }
  return Status::ok();
}

Status check_dims(const DeviceTensor& t, const std::vector<int64_t>& want, const char* what) {
  if (t.dims != want)
    return invalid_model("Attention: {} has shape {}, expected {}", what, Shape::of(t.dims).to_string(),
                         Shape::of(want).to_string());
  return Status::ok();
}

// Heads, lengths and head sizes from Q, K, V in either layout (the CPU kernel's checks).
Status read_geometry(const KernelContext& ctx, AttentionParams& p) {
  const DeviceTensor &q = ctx.input(0), &k = ctx.input(1), &v = ctx.input(2);
  if (q.rank() != k.rank() || q.rank() != v.rank() || (q.rank() != 3 && q.rank() != 4))
    return invalid_model("Attention: Q, K, V must all be 3-D or all 4-D, got ranks {}, {}, {}", q.rank(), k.rank(),
                         v.rank());
  const Node& n = ctx.node();
  p.packed = q.rank() == 3;
  p.batch = q.dims[0];
  if (p.packed) {
    p.q_heads = n.attr_int("q_num_heads", 0);
    p.kv_heads = n.attr_int("kv_num_heads", 0);
    if (p.q_heads <= 0 || p.kv_heads <= 0 || q.dims[2] % p.q_heads || k.dims[2] % p.kv_heads || v.dims[2] % p.kv_heads)
      return invalid_model("Attention: hidden sizes do not split into {} and {} heads", p.q_heads, p.kv_heads);
    p.q_len = q.dims[1], p.kv_len = k.dims[1];
    p.head = q.dims[2] / p.q_heads, p.v_head = v.dims[2] / p.kv_heads;
    KILN_RETURN_IF_ERROR(check_dims(k, {p.batch, p.kv_len, p.kv_heads * p.head}, "K"));
    KILN_RETURN_IF_ERROR(check_dims(v, {p.batch, p.kv_len, p.kv_heads * p.v_head}, "V"));
  } else {
    p.q_heads = q.dims[1], p.q_len = q.dims[2], p.head = q.dims[3];
    p.kv_heads = k.dims[1], p.kv_len = k.dims[2], p.v_head = v.dims[3];
    KILN_RETURN_IF_ERROR(check_dims(k, {p.batch, p.kv_heads, p.kv_len, p.head}, "K"));
    KILN_RETURN_IF_ERROR(check_dims(v, {p.batch, p.kv_heads, p.kv_len, p.v_head}, "V"));
  }
  if (p.kv_heads == 0 || p.q_heads % p.kv_heads != 0)
    return invalid_model("Attention: {} query heads are not a multiple of {} key/value heads", p.q_heads, p.kv_heads);
  return Status::ok();
}

bool is_packed_attention(const Node& n) { return n.domain == "kiln" && n.op_type == "PackedAttention"; }

// Q, K and V as 3-D Attention sees them: for kiln.PackedAttention, the column
// ranges [0, Hq*D), [Hq*D, (Hq+Hkv)*D) and [(Hq+Hkv)*D, (Hq+2Hkv)*D) of QKV
// [B, S, (Hq + 2 Hkv) * D], whose rows are `row` elements long; for
// Attention, its inputs (row 0). attn_mask is input `mask`.
struct QkvView {
  std::vector<int64_t> q, k, v;
  int64_t row = 0;
  size_t mask = 3;
};

std::optional<QkvView> qkv_view(const Node& n, const std::vector<int64_t>* q, const std::vector<int64_t>* k,
                                const std::vector<int64_t>* v) {
  if (!is_packed_attention(n)) {
    if (!q || !k || !v) return std::nullopt;
    return QkvView{*q, *k, *v};
  }
  const int64_t hq = n.attr_int("q_num_heads", 0), hkv = n.attr_int("kv_num_heads", 0);
  if (!q || q->size() != 3 || hq <= 0 || hkv <= 0 || (*q)[2] % (hq + 2 * hkv) != 0) return std::nullopt;
  const int64_t b = (*q)[0], s = (*q)[1], d = (*q)[2] / (hq + 2 * hkv);
  return QkvView{{b, s, hq * d}, {b, s, hkv * d}, {b, s, hkv * d}, (*q)[2], 1};
}

std::optional<QkvView> planned_view(const KernelQuery& q) {
  return qkv_view(q.node(), q.input_dims(0), q.has_input(1) ? q.input_dims(1) : nullptr,
                  q.has_input(2) ? q.input_dims(2) : nullptr);
}

// kiln.PackedAttention's geometry: Attention's 3-D form over QKV's column ranges.
Status read_packed_geometry(const KernelContext& ctx, AttentionParams& p) {
  const DeviceTensor& qkv = ctx.input(0);
  const Node& n = ctx.node();
  const std::optional<QkvView> view = qkv_view(n, &qkv.dims, nullptr, nullptr);
  if (!view || n.attr_int("q_num_heads", 0) % n.attr_int("kv_num_heads", 0) != 0)
    return invalid_model("PackedAttention: QKV of shape {} does not split into {} + 2 * {} heads",
                         Shape::of(qkv.dims).to_string(), n.attr_int("q_num_heads", 0), n.attr_int("kv_num_heads", 0));
  p.packed = true;
  p.batch = qkv.dims[0], p.q_len = p.kv_len = qkv.dims[1];
  p.q_heads = n.attr_int("q_num_heads", 0), p.kv_heads = n.attr_int("kv_num_heads", 0);
  p.head = p.v_head = view->q[2] / p.q_heads;
  p.q_row = p.k_row = p.v_row = view->row;
  const auto* base = static_cast<const std::byte*>(qkv.data);
  p.q = base;
  p.k = base + dtype_storage_bytes(qkv.dtype, p.q_heads * p.head);
  p.v = base + dtype_storage_bytes(qkv.dtype, (p.q_heads + p.kv_heads) * p.head);
  return Status::ok();
}

// attn_mask broadcast (right-aligned) to (B, Hq, Sq, mask_len).
Status read_mask(const DeviceTensor& m, AttentionParams& p) {
  if (m.rank() < 1 || m.rank() > 4)
    return invalid_model("Attention: attn_mask has rank {}; it must be 1 to 4", m.rank());
  if (m.dtype != DType::kBool && m.dtype != DType::kF32 && m.dtype != DType::kF16 && m.dtype != DType::kBF16 &&
      m.dtype != DType::kF64)
    return unsupported("Attention: attn_mask dtype {} (the CUDA kernel takes bool or a float type)",
                       dtype_name(m.dtype));
  p.mask = m.data;
  p.mask_type = m.dtype;
  p.mask_len = m.dims.back();
  if (p.mask_len > p.total_len())
    return invalid_model("Attention: attn_mask has {} keys, more than the {} keys attended", p.mask_len, p.total_len());
  const int64_t target[3] = {p.batch, p.q_heads, p.q_len};
  int64_t stride = p.mask_len;
  for (int64_t a = m.rank() - 2; a >= 0; --a) {
    const int64_t axis = 4 - m.rank() + a, d = m.dims[static_cast<size_t>(a)];
    if (d != 1 && d != target[axis])
      return invalid_model("Attention: attn_mask dim {} is {}, which does not broadcast to {}", a, d, target[axis]);
    p.mask_strides[axis] = d == 1 ? 0 : stride;
    stride *= d;
  }
  return Status::ok();
}

// Q/K/V's sizes as planned, from their 4-D or 3-D (q_num_heads) form.
struct AttentionSizes {
  int64_t batch = 0, heads = 0, q_len = 0, kv_len = 0, head = 0, v_head = 0;
};
std::optional<AttentionSizes> attention_sizes(const KernelQuery& q) {
  const std::optional<QkvView> view = planned_view(q);
  if (!view) return std::nullopt;
  const std::vector<int64_t>*qd = &view->q, *kd = &view->k, *vd = &view->v;
  if (qd->size() != kd->size() || qd->size() != vd->size() || (qd->size() != 3 && qd->size() != 4)) return std::nullopt;
  const Node& n = q.node();
  AttentionSizes s;
  s.batch = (*qd)[0];
  if (qd->size() == 4) {
    s.heads = (*qd)[1], s.q_len = (*qd)[2], s.head = (*qd)[3], s.kv_len = (*kd)[2], s.v_head = (*vd)[3];
  } else {
    s.heads = n.attr_int("q_num_heads", 0);
    const int64_t kv_heads = n.attr_int("kv_num_heads", 0);
    if (s.heads <= 0 || kv_heads <= 0) return std::nullopt;
    s.q_len = (*qd)[1], s.head = (*qd)[2] / s.heads, s.kv_len = (*kd)[1], s.v_head = (*vd)[2] / kv_heads;
  }
  return s;
}

// cudnn_sdpa_spec for the view (a packed QKV's rows as Q, K and V's strides).
std::optional<CudnnSdpaSpec> sdpa_spec(const Node& node, DType dtype, const QkvView& view, DType mask_dtype,
                                       const std::vector<int64_t>* mask, size_t workspace_limit) {
  std::optional<CudnnSdpaSpec> spec =
      cudnn_sdpa_spec(node, dtype, view.q, view.k, view.v, mask_dtype, mask, workspace_limit);
  if (spec && view.row) use_packed_qkv_rows(*spec, view.row);
  return spec;
}

// The cuDNN plan for the planned dims (tactic "cudnn"), or null where the
// tactic does not apply or cuDNN declines it.
std::shared_ptr<const CudnnSdpaPlan> planned_cudnn_attention(const KernelQuery& q) {
  const std::optional<QkvView> view = planned_view(q);
  if (!view) return nullptr;
  if (!view->row && (q.input_dtype(1) != q.input_dtype(0) || q.input_dtype(2) != q.input_dtype(0))) return nullptr;
  const std::vector<int64_t>* mask = q.has_input(view->mask) ? q.input_dims(view->mask) : nullptr;
  if (q.has_input(view->mask) && !mask) return nullptr;
  const std::optional<CudnnSdpaSpec> spec =
      sdpa_spec(q.node(), q.input_dtype(0), *view, mask ? q.input_dtype(view->mask) : DType::kUndefined, mask,
                q.workspace_limit());
  return spec ? cudnn_sdpa_plan(*spec) : nullptr;
}

// Scratch for the unfused path (head sizes over 256), from the planned dims;
// for tactic "cudnn", at least the cuDNN plan's workspace.
size_t attention_workspace(const KernelQuery& q) {
  const std::optional<AttentionSizes> s = attention_sizes(q);
  if (!s) return 0;
  const std::vector<int64_t>* past = q.has_input(4) ? q.input_dims(4) : nullptr;
  const int64_t past_len = past && past->size() == 4 ? (*past)[2] : 0;
  const size_t scratch =
      attention_scratch_bytes(q.input_dtype(0), s->batch, s->heads, s->q_len, s->kv_len + past_len, s->head, s->v_head);
  if (q.tactic() != kCudnnTactic) return scratch;
  const std::shared_ptr<const CudnnSdpaPlan> plan = planned_cudnn_attention(q);
  return plan ? std::max(scratch, workspace_size(*plan)) : scratch;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Tactic "cudnn": runs the plan the workspace was sized for (looked up once per
// plan of the executor, then kept in the node's state) on the Q, K, V of `p`.
// Returns false, having run nothing, where there is none or the buffers do
// not fit it: the SIMT kernel then runs.
Expected<bool> run_cudnn_attention(KernelContext& ctx, const AttentionParams& p) {
  const bool packed_qkv = is_packed_attention(ctx.node());
  const size_t mask_input = packed_qkv ? 1 : 3;
  std::any& state = ctx.state();
  if (!state.has_value()) {
    const DeviceTensor& q = ctx.input(0);
    std::shared_ptr<const CudnnSdpaPlan> plan;
    const std::optional<QkvView> view = packed_qkv
                                            ? qkv_view(ctx.node(), &q.dims, nullptr, nullptr)
                                            : qkv_view(ctx.node(), &q.dims, &ctx.input(1).dims, &ctx.input(2).dims);
    if (view && (packed_qkv || (ctx.input(1).dtype == q.dtype && ctx.input(2).dtype == q.dtype))) {
      const DeviceTensor* mask = ctx.has_input(mask_input) ? &ctx.input(mask_input) : nullptr;
      const std::optional<CudnnSdpaSpec> spec =
          sdpa_spec(ctx.node(), q.dtype, *view, mask ? mask->dtype : DType::kUndefined, mask ? &mask->dims : nullptr,
                    ctx.workspace_limit());
      if (spec) plan = cudnn_sdpa_plan(*spec);
    }
    state = plan;
  }
  const auto& plan = std::any_cast<const std::shared_ptr<const CudnnSdpaPlan>&>(state);
  if (!plan || ctx.workspace_bytes() < workspace_size(*plan)) return false;
  const void* bias = ctx.has_input(mask_input) ? ctx.input(mask_input).data : nullptr;
  void* y = ctx.output(0).data;
  const std::initializer_list<const void*> buffers = {p.q, p.k, p.v, bias, y, ctx.workspace()};
  for (const void* b : buffers)
    if (!aligned16(b)) return false;
  KILN_ASSIGN_OR_RETURN(const Cudnn* cudnn, ctx.cudnn());
  KILN_RETURN_IF_ERROR(execute_cudnn_sdpa(cudnn->get(), ctx.stream(), *plan, p.q, p.k, p.v, bias, y, ctx.workspace()));
  return true;
}

// Attention, and kiln.PackedAttention (Q, K, V in place in input 0, the mask input 1).
Status run_attention(KernelContext& ctx) {
  const bool packed_qkv = is_packed_attention(ctx.node());
  AttentionParams p;
  if (packed_qkv) {
    KILN_RETURN_IF_ERROR(read_packed_geometry(ctx, p));
  } else {
    KILN_RETURN_IF_ERROR(check_one_dtype(ctx, {1, 2, 4, 5}, "Attention"));
    KILN_RETURN_IF_ERROR(read_geometry(ctx, p));
    p.q = ctx.input(0).data, p.k = ctx.input(1).data, p.v = ctx.input(2).data;
  }
  const Node& n = ctx.node();
  p.dtype = ctx.input(0).dtype;
  if (!packed_qkv && ctx.has_input(4) && ctx.has_input(5)) {
    const DeviceTensor &pk = ctx.input(4), &pv = ctx.input(5);
    p.past_len = pk.rank() == 4 ? pk.dims[2] : -1;
    KILN_RETURN_IF_ERROR(check_dims(pk, {p.batch, p.kv_heads, p.past_len, p.head}, "past_key"));
    KILN_RETURN_IF_ERROR(check_dims(pv, {p.batch, p.kv_heads, p.past_len, p.v_head}, "past_value"));
    p.past_k = pk.data, p.past_v = pv.data;
  }
  const size_t mask_input = packed_qkv ? 1 : 3;
  if (ctx.has_input(mask_input)) KILN_RETURN_IF_ERROR(read_mask(ctx.input(mask_input), p));
  if (!packed_qkv && ctx.has_input(6)) {
    const DeviceTensor& np = ctx.input(6);
    if (np.dtype != DType::kI64 || np.numel() != p.batch)
      return invalid_model("Attention: nonpad_kv_seqlen must be {} int64 values", p.batch);
    p.nonpad = np.as<const int64_t>();
  }
  p.scale = n.has_attr("scale") ? n.attr_float("scale", 1.0f) : 1.0 / std::sqrt(static_cast<double>(p.head));
  p.softcap = n.attr_float("softcap", 0.0f);
  p.causal = n.attr_int("is_causal", 0) != 0;
  p.left_window = n.attr_int("left_window_size", -1);
  p.right_window = n.attr_int("right_window_size", -1);
  p.y = ctx.output(0).data;
  if (ctx.has_output(1)) p.present_k = ctx.output(1).data;
  if (ctx.has_output(2)) p.present_v = ctx.output(2).data;
  if (ctx.has_output(3)) {
    p.qk = ctx.output(3).data;
    p.qk_mode = static_cast<int>(n.attr_int("qk_matmul_output_mode", 0));
  }
  const size_t scratch = attention_scratch_bytes(p.dtype, p.batch, p.q_heads, p.q_len, p.total_len(), p.head, p.v_head);
  if (ctx.workspace_bytes() < scratch)
    return internal_error("Attention: workspace of {} bytes, {} needed", ctx.workspace_bytes(), scratch);
  p.scratch = ctx.workspace();
  if (ctx.tactic() == kCudnnTactic) {
    KILN_ASSIGN_OR_RETURN(const bool ran, run_cudnn_attention(ctx, p));
    if (ran) return Status::ok();
  }
  if (ctx.tactic() == kTensorCoreTactic) return launch_attention_tc(p, ctx.stream());
  if (ctx.tactic() == kMmaTactic) return launch_attention_mma(p, ctx.stream());
  if (ctx.tactic() == kFlashTactic) return launch_attention_flash(p, ctx.stream());
  return launch_attention(p, ctx.stream());
}

// Whether the tensor-core kernels take the node (attention_tc_takes, read
// from the node and the planned dims).
bool tensor_core_takes(const KernelQuery& q) {
  const Node& n = q.node();
  const DType t = q.input_dtype(0);
  const std::optional<AttentionSizes> s = attention_sizes(q);
  if ((t != DType::kF16 && t != DType::kBF16) || !s) return false;
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (n.outputs[i]) return false;
  if ((!is_packed_attention(n) && (q.has_input(4) || q.has_input(5))) || n.attr_float("softcap", 0.0f) != 0.0f)
    return false;
  return s->head == s->v_head && (s->head == 32 || s->head == 64 || s->head == 128);
}

// The tensor-core kernels and cuDNN's fused attention are candidates where
// they apply (cuDNN's only where it built a plan within the workspace limit);
// the SIMT kernel is the default.
std::vector<std::string> attention_tactics(const KernelQuery& q, size_t /*limit*/) {
  std::vector<std::string> out;
  if (tensor_core_takes(q))
    out = {"simt", std::string(kTensorCoreTactic), std::string(kMmaTactic), std::string(kFlashTactic)};
  if (planned_cudnn_attention(q)) {
    if (out.empty()) out.push_back("simt");
    out.push_back(std::string(kCudnnTactic));
  }
  return out;
}

// kiln.PackedAttention: QKV of a float dtype, attn_mask (input 1) as Attention's.
Status supports_packed_attention(const Node& node) {
  const DType t = value_type(node.input(0));
  if (!attention_dtype(t))
    return unsupported("PackedAttention: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(t));
  if (node.input(1)) {
    const DType m = value_type(node.input(1));
    if (m != DType::kBool && !attention_dtype(m))
      return unsupported("PackedAttention: attn_mask dtype {} (the CUDA kernel takes bool or a float type)",
                         dtype_name(m));
  }
  return Status::ok();
}

// FlexAttention without score_mod / prob_mod is plain 4-D attention with GQA.
Status supports_flex_attention(const Node& node) {
  if (node.has_attr("score_mod") || node.has_attr("prob_mod"))
    return unsupported("FlexAttention: score_mod and prob_mod subgraphs (the CUDA kernel runs none)");
  const DType t = value_type(node.input(0));
  if (!attention_dtype(t))
    return unsupported("FlexAttention: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(t));
  return Status::ok();
}

Status run_flex_attention(KernelContext& ctx) {
  const DeviceTensor &q = ctx.input(0), &k = ctx.input(1), &v = ctx.input(2);
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4) return invalid_model("FlexAttention: Q, K and V must be 4-D");
  AttentionParams p;
  p.batch = q.dims[0], p.q_heads = q.dims[1], p.q_len = q.dims[2], p.head = q.dims[3];
  p.kv_heads = k.dims[1], p.kv_len = k.dims[2], p.v_head = v.dims[3];
  if (k.dims[0] != p.batch || k.dims[3] != p.head || v.dims[0] != p.batch || v.dims[1] != p.kv_heads ||
      v.dims[2] != p.kv_len || p.kv_heads == 0 || p.q_heads % p.kv_heads != 0)
    return invalid_model("FlexAttention: Q {}, K {} and V {} do not fit together", Shape::of(q.dims).to_string(),
                         Shape::of(k.dims).to_string(), Shape::of(v.dims).to_string());
  if (k.dtype != q.dtype || v.dtype != q.dtype) return invalid_model("FlexAttention: Q, K and V must share a dtype");
  const Node& n = ctx.node();
  p.scale = n.has_attr("scale") ? n.attr_float("scale", 1.0f) : 1.0 / std::sqrt(static_cast<double>(p.head));
  p.dtype = q.dtype;
  p.q = q.data, p.k = k.data, p.v = v.data, p.y = ctx.output(0).data;
  return launch_attention(p, ctx.stream());
}

Status supports_linear_attention(const Node& node) {
  const DType t = value_type(node.input(0));
  if (!attention_dtype(t))
    return unsupported("LinearAttention: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(t));
  for (size_t i = 1; i < node.inputs.size(); ++i)
    if (node.input(i) && differ(value_type(node.input(i)), t))
      return unsupported("LinearAttention: input {} is {} but query is {} (the CUDA kernel takes one dtype)", i,
                         dtype_name(value_type(node.input(i))), dtype_name(t));
  return Status::ok();
}

// The CPU kernel's shape checks, then the recurrence.
Status run_linear_attention(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(check_one_dtype(ctx, {1, 2, 3, 4, 5}, "LinearAttention"));
  const Node& n = ctx.node();
  const DeviceTensor &q = ctx.input(0), &k = ctx.input(1), &v = ctx.input(2);
  LinearAttentionParams p;
  p.q_heads = n.attr_int("q_num_heads", 0);
  p.kv_heads = n.attr_int("kv_num_heads", 0);
  const std::string rule = n.attr_string("update_rule", "gated_delta");
  p.gated = rule == "gated" || rule == "gated_delta";
  p.delta = rule == "delta" || rule == "gated_delta";
  if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3)
    return invalid_model("LinearAttention: query, key and value must be 3-D");
  if (p.q_heads <= 0 || p.kv_heads <= 0 || p.q_heads % p.kv_heads || q.dims[2] % p.q_heads || v.dims[2] % p.kv_heads)
    return invalid_model("LinearAttention: hidden sizes do not split into {} and {} heads", p.q_heads, p.kv_heads);
  p.batch = q.dims[0], p.len = q.dims[1], p.d_k = q.dims[2] / p.q_heads, p.d_v = v.dims[2] / p.kv_heads;
  if (k.dims != std::vector<int64_t>{p.batch, p.len, p.kv_heads * p.d_k} || v.dims[0] != p.batch || v.dims[1] != p.len)
    return invalid_model("LinearAttention: key and value do not match query");
  if (p.gated != ctx.has_input(4) || p.delta != ctx.has_input(5))
    return invalid_model("LinearAttention: update_rule '{}' does not match the decay/beta inputs given", rule);
  if (p.gated) {
    const DeviceTensor& g = ctx.input(4);
    p.decay_width = g.rank() == 3 ? g.dims[2] : -1;
    if (g.rank() != 3 || g.dims[0] != p.batch || g.dims[1] != p.len ||
        (p.decay_width != p.kv_heads && p.decay_width != p.kv_heads * p.d_k))
      return invalid_model("LinearAttention: decay has shape {}", Shape::of(g.dims).to_string());
    p.decay = g.data;
  }
  if (p.delta) {
    const DeviceTensor& beta = ctx.input(5);
    p.beta_width = beta.rank() == 3 ? beta.dims[2] : -1;
    if (beta.rank() != 3 || beta.dims[0] != p.batch || beta.dims[1] != p.len ||
        (p.beta_width != p.kv_heads && p.beta_width != 1))
      return invalid_model("LinearAttention: beta has shape {}", Shape::of(beta.dims).to_string());
    p.beta = beta.data;
  }
  if (ctx.has_input(3)) {
    if (ctx.input(3).dims != std::vector<int64_t>{p.batch, p.kv_heads, p.d_k, p.d_v})
      return invalid_model("LinearAttention: past_state has shape {}", Shape::of(ctx.input(3).dims).to_string());
    p.past_state = ctx.input(3).data;
  }
  const float scale = n.attr_float("scale", 0.0f);
  p.scale = scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(p.d_k));
  p.dtype = q.dtype;
  p.q = q.data, p.k = k.data, p.v = v.data;
  p.y = ctx.output(0).data;
  if (ctx.has_output(1)) p.present_state = ctx.output(1).data;
  return launch_linear_attention(p, ctx.stream());
}

Status supports_rotary(const Node& node) {
  const DType t = value_type(node.input(0));
  if (!attention_dtype(t))
    return unsupported("RotaryEmbedding: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(t));
  if (differ(value_type(node.input(1)), t) || differ(value_type(node.input(2)), t))
    return invalid_model("RotaryEmbedding: the caches must have X's dtype");
  if (node.input(3) && differ(value_type(node.input(3)), DType::kI64))
    return unsupported("RotaryEmbedding: position_ids dtype {} (the CUDA kernel takes int64)",
                       dtype_name(value_type(node.input(3))));
  return Status::ok();
}

Status run_rotary(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(check_one_dtype(ctx, {1, 2}, "RotaryEmbedding"));
  if (ctx.has_input(3) && ctx.input(3).dtype != DType::kI64)
    return unsupported("RotaryEmbedding: position_ids dtype {} (the CUDA kernel takes int64)",
                       dtype_name(ctx.input(3).dtype));
  const DeviceTensor &x = ctx.input(0), &cos = ctx.input(1), &sin = ctx.input(2);
  const Node& n = ctx.node();
  RotaryParams p;
  p.interleaved = n.attr_int("interleaved", 0) != 0;
  if (x.rank() == 4) {
    p.batch = x.dims[0], p.heads = x.dims[1], p.len = x.dims[2], p.head = x.dims[3];
  } else if (x.rank() == 3) {
    p.packed = true;
    p.heads = n.attr_int("num_heads", 0);
    if (p.heads <= 0 || x.dims[2] % p.heads != 0)
      return invalid_model("RotaryEmbedding: hidden size {} does not split into num_heads {}", x.dims[2], p.heads);
    p.batch = x.dims[0], p.len = x.dims[1], p.head = x.dims[2] / p.heads;
  } else {
    return invalid_model("RotaryEmbedding: X has rank {}; it must be 3 or 4", x.rank());
  }
  p.rot = n.attr_int("rotary_embedding_dim", 0);
  if (p.rot == 0) p.rot = p.head;
  if (p.rot < 0 || p.rot > p.head || p.rot % 2 != 0)
    return invalid_model("RotaryEmbedding: rotated size {} must be even and at most the head size {}", p.rot, p.head);
  const int64_t half = p.rot / 2;
  if (ctx.has_input(3)) {
    const DeviceTensor& ids = ctx.input(3);
    if (ids.dims != std::vector<int64_t>{p.batch, p.len})
      return invalid_model("RotaryEmbedding: position_ids has shape {}, expected [{},{}]",
                           Shape::of(ids.dims).to_string(), p.batch, p.len);
    if (cos.rank() != 2 || cos.dims[1] != half)
      return invalid_model("RotaryEmbedding: cos_cache has shape {}, expected [positions,{}]",
                           Shape::of(cos.dims).to_string(), half);
    p.position_ids = ids.as<const int64_t>();
    p.cache_rows = cos.dims[0];
  } else {
    if (cos.dims != std::vector<int64_t>{p.batch, p.len, half})
      return invalid_model("RotaryEmbedding: cos_cache has shape {}, expected [{},{},{}]",
                           Shape::of(cos.dims).to_string(), p.batch, p.len, half);
    p.cache_rows = p.batch * p.len;
  }
  if (sin.dims != cos.dims)
    return invalid_model("RotaryEmbedding: sin_cache has shape {}, cos_cache {}", Shape::of(sin.dims).to_string(),
                         Shape::of(cos.dims).to_string());
  p.dtype = x.dtype;
  p.x = x.data, p.cos = cos.data, p.sin = sin.data, p.y = ctx.output(0).data;
  return launch_rotary_embedding(p, ctx.stream());
}

KILN_CUDA_KERNEL("", "Attention",
                 {.run = run_attention,
                  .workspace = attention_workspace,
                  .supports = supports_attention,
                  .tactics = attention_tactics});
KILN_CUDA_KERNEL("kiln", "PackedAttention",
                 {.run = run_attention,
                  .workspace = attention_workspace,
                  .supports = supports_packed_attention,
                  .tactics = attention_tactics});
KILN_CUDA_KERNEL("ai.onnx.preview", "FlexAttention", {.run = run_flex_attention, .supports = supports_flex_attention});
KILN_CUDA_KERNEL("", "LinearAttention", {.run = run_linear_attention, .supports = supports_linear_attention});
KILN_CUDA_KERNEL("", "RotaryEmbedding", {.run = run_rotary, .supports = supports_rotary});

}  // namespace
}  // namespace kiln::cuda
