// Attention-family ops: Attention (opset 23-25), kiln.PackedAttention, FlexAttention (ai.onnx.preview),
// LinearAttention, RotaryEmbedding and SwiGLU. Each row is the op's whole
// definition in kiln; the CPU kernels live in src/backends/cpu/kernels/.
#include <fmt/format.h>

#include "ops/infer_util.h"

namespace kiln {
namespace {

bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kF64 || t == DType::kF16 || t == DType::kBF16; }

// Dim k of input i, or unknown when the rank is unknown.
Dim input_dim(const InferContext& ctx, size_t i, size_t k) {
  const Shape& s = ctx.input_shape(i);
  return s.has_rank() && k < s.dims->size() ? (*s.dims)[k] : Dim::unknown();
}

Status require_float_input(const InferContext& ctx, size_t i, const char* op, const char* what) {
  if (!ctx.has_input(i) || ctx.input_dtype(i) == DType::kUndefined || is_float_dtype(ctx.input_dtype(i)))
    return Status::ok();
  return invalid_model("{}: {} must be a float tensor, got {}", op, what, dtype_name(ctx.input_dtype(i)));
}

Status require_input_rank(const InferContext& ctx, size_t i, std::initializer_list<int64_t> ranks, const char* op,
                          const char* what) {
  int64_t r = ctx.input_shape(i).rank();
  if (r < 0) return Status::ok();
  for (int64_t ok : ranks)
    if (r == ok) return Status::ok();
  return invalid_model("{}: {} has rank {}, which is not allowed here", op, what, r);
}

// Fails when both dims are fixed and differ.
Status require_equal_dims(const Dim& a, const Dim& b, const char* op, const char* what) {
  if (a.is_fixed() && b.is_fixed() && a.value != b.value)
    return invalid_model("{}: {} disagree ({} vs {})", op, what, a.value, b.value);
  return Status::ok();
}

// A packed hidden dim divided by a head count: the per-head size.
Expected<Dim> per_head(const Dim& hidden, int64_t heads, const char* op, const char* what) {
  if (hidden.is_fixed() && hidden.value % heads != 0)
    return invalid_model("{}: {} size {} is not divisible by {} heads", op, what, hidden.value, heads);
  return dim_div(hidden, Dim(heads));
}

// ---- Attention ---------------------------------------------------------------

struct AttentionShapes {
  Dim batch, q_heads, kv_heads, q_len, kv_len, head_size, v_head_size;
  Dim total_len;  // past + new keys
};

Status check_attention_attrs(const InferContext& ctx) {
  int64_t mode = ctx.attr_int("qk_matmul_output_mode", 0);
  if (mode < 0 || mode > 3) return unsupported("Attention: qk_matmul_output_mode {} is not 0, 1, 2 or 3", mode);
  if (ctx.node().has_attr("softmax_precision")) {
    int64_t p = ctx.attr_int("softmax_precision", 1);
    auto t = static_cast<DType>(p);
    if (p < 0 || p > 255 || !is_float_dtype(t))
      return unsupported("Attention: softmax_precision {} is not FLOAT, FLOAT16, DOUBLE or BFLOAT16", p);
  }
  for (const char* key : {"left_window_size", "right_window_size"})
    if (ctx.attr_int(key, -1) < -1) return invalid_model("Attention: {} {} is below -1", key, ctx.attr_int(key, -1));
  int64_t causal = ctx.attr_int("is_causal", 0);
  if (causal != 0 && causal != 1) return invalid_model("Attention: is_causal {} is not 0 or 1", causal);
  bool past_k = ctx.has_input(4), past_v = ctx.has_input(5);
  if (past_k != past_v) return invalid_model("Attention: past_key and past_value must be given together");
  if (past_k && ctx.has_input(6))
    return invalid_model("Attention: nonpad_kv_seqlen cannot be combined with past_key/past_value");
  return Status::ok();
}

// Reads batch, heads, lengths and head sizes from Q, K, V in either layout.
Expected<AttentionShapes> attention_shapes(const InferContext& ctx, int64_t rank) {
  AttentionShapes s;
  s.batch = input_dim(ctx, 0, 0);
  if (rank == 4) {
    s.q_heads = input_dim(ctx, 0, 1);
    s.q_len = input_dim(ctx, 0, 2);
    s.head_size = input_dim(ctx, 0, 3);
    s.kv_heads = input_dim(ctx, 1, 1);
    s.kv_len = input_dim(ctx, 1, 2);
    s.v_head_size = input_dim(ctx, 2, 3);
    KILN_RETURN_IF_ERROR(require_equal_dims(s.head_size, input_dim(ctx, 1, 3), "Attention", "Q and K head sizes"));
    KILN_RETURN_IF_ERROR(require_equal_dims(s.kv_heads, input_dim(ctx, 2, 1), "Attention", "K and V head counts"));
  } else {
    int64_t hq = ctx.attr_int("q_num_heads", 0), hkv = ctx.attr_int("kv_num_heads", 0);
    if (hq <= 0 || hkv <= 0)
      return invalid_model("Attention: 3-D inputs need positive q_num_heads and kv_num_heads, got {} and {}", hq, hkv);
    s.q_heads = hq;
    s.kv_heads = hkv;
    s.q_len = input_dim(ctx, 0, 1);
    KILN_ASSIGN_OR_RETURN(s.head_size, per_head(input_dim(ctx, 0, 2), hq, "Attention", "Q hidden"));
    KILN_ASSIGN_OR_RETURN(Dim k_head, per_head(input_dim(ctx, 1, 2), hkv, "Attention", "K hidden"));
    KILN_RETURN_IF_ERROR(require_equal_dims(s.head_size, k_head, "Attention", "Q and K head sizes"));
    KILN_ASSIGN_OR_RETURN(s.v_head_size, per_head(input_dim(ctx, 2, 2), hkv, "Attention", "V hidden"));
    s.kv_len = input_dim(ctx, 1, 1);
  }
  KILN_RETURN_IF_ERROR(
      require_equal_dims(s.kv_len, input_dim(ctx, 2, rank == 4 ? 2 : 1), "Attention", "K and V sequence lengths"));
  if (s.q_heads.is_fixed() && s.kv_heads.is_fixed() && (s.kv_heads.value == 0 || s.q_heads.value % s.kv_heads.value))
    return invalid_model("Attention: q_num_heads {} is not a multiple of kv_num_heads {}", s.q_heads.value,
                         s.kv_heads.value);
  s.total_len = s.kv_len;
  if (ctx.has_input(4)) {
    KILN_RETURN_IF_ERROR(require_input_rank(ctx, 4, {4}, "Attention", "past_key"));
    KILN_RETURN_IF_ERROR(require_input_rank(ctx, 5, {4}, "Attention", "past_value"));
    KILN_RETURN_IF_ERROR(
        require_equal_dims(input_dim(ctx, 4, 3), s.head_size, "Attention", "past_key and K head sizes"));
    KILN_RETURN_IF_ERROR(
        require_equal_dims(input_dim(ctx, 5, 3), s.v_head_size, "Attention", "past_value and V head sizes"));
    KILN_RETURN_IF_ERROR(
        require_equal_dims(input_dim(ctx, 4, 2), input_dim(ctx, 5, 2), "Attention", "past_key and past_value lengths"));
    s.total_len = dim_add(input_dim(ctx, 4, 2), s.kv_len);
  }
  return s;
}

Status infer_attention(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(check_attention_attrs(ctx));
  for (size_t i : {0, 1, 2, 4, 5})
    KILN_RETURN_IF_ERROR(require_float_input(ctx, i, "Attention", "Q, K, V and the caches"));
  DType t1 = ctx.input_dtype(0), t2 = ctx.input_dtype(2);
  if (ctx.input_dtype(1) != t1) return invalid_model("Attention: Q and K must share a dtype");
  if (ctx.has_input(6) && ctx.input_dtype(6) != DType::kI64 && ctx.input_dtype(6) != DType::kUndefined)
    return invalid_model("Attention: nonpad_kv_seqlen must be int64, got {}", dtype_name(ctx.input_dtype(6)));
  int64_t rank = ctx.input_shape(0).rank();
  for (size_t i : {1, 2}) {
    int64_t r = ctx.input_shape(i).rank();
    if (rank < 0) rank = r;
    if (r >= 0 && r != rank) return invalid_model("Attention: Q, K and V must have one rank, got {} and {}", rank, r);
  }
  if (rank >= 0 && rank != 3 && rank != 4) return invalid_model("Attention: Q has rank {}; it must be 3 or 4", rank);
  if (ctx.has_input(3)) KILN_RETURN_IF_ERROR(require_input_rank(ctx, 3, {1, 2, 3, 4}, "Attention", "attn_mask"));
  if (rank < 0) {
    for (size_t o = 0; o < ctx.num_outputs(); ++o) ctx.set_output(o, o == 2 ? t2 : t1, Shape());
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(AttentionShapes s, attention_shapes(ctx, rank));
  if (rank == 4) {
    ctx.set_output(0, t1, Dims{s.batch, s.q_heads, s.q_len, s.v_head_size});
  } else {
    // Hq * v_head = V's hidden * (Hq / Hkv): exact even when V's hidden is a symbol.
    Dim group = dim_div(s.q_heads, s.kv_heads);
    ctx.set_output(0, t1, Dims{s.batch, s.q_len, dim_mul(input_dim(ctx, 2, 2), group)});
  }
  ctx.set_output(1, t1, Dims{s.batch, s.kv_heads, s.total_len, s.head_size});
  ctx.set_output(2, t2, Dims{s.batch, s.kv_heads, s.total_len, s.v_head_size});
  ctx.set_output(3, t1, Dims{s.batch, s.q_heads, s.q_len, s.total_len});
  return Status::ok();
}

// ---- kiln.PackedAttention -------------------------------------------------------

// kiln.PackedAttention(QKV, attn_mask?): the 3-D Attention(Q, K, V, attn_mask)
// whose Q, K and V are consecutive column ranges of one [B, S, (Hq + 2 Hkv) * D]
// tensor (a QKV projection's output), read in place (fuse_packed_attention).
// Attributes: q_num_heads, kv_num_heads, and Attention's scale, is_causal and
// softcap. Y is [B, S, Hq * D].
Status infer_packed_attention(InferContext& ctx) {
  constexpr const char* op = "PackedAttention";
  KILN_RETURN_IF_ERROR(require_float_input(ctx, 0, op, "QKV"));
  KILN_RETURN_IF_ERROR(require_input_rank(ctx, 0, {3}, op, "QKV"));
  if (ctx.has_input(1)) KILN_RETURN_IF_ERROR(require_input_rank(ctx, 1, {1, 2, 3, 4}, op, "attn_mask"));
  const int64_t hq = ctx.attr_int("q_num_heads", 0), hkv = ctx.attr_int("kv_num_heads", 0);
  if (hq <= 0 || hkv <= 0 || hq % hkv != 0)
    return invalid_model("{}: q_num_heads {} must be a positive multiple of kv_num_heads {}", op, hq, hkv);
  const int64_t causal = ctx.attr_int("is_causal", 0);
  if (causal != 0 && causal != 1) return invalid_model("{}: is_causal {} is not 0 or 1", op, causal);
  const DType t = ctx.input_dtype(0);
  if (!ctx.input_shape(0).has_rank()) {
    ctx.set_output(0, t, Shape());
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(Dim head, per_head(input_dim(ctx, 0, 2), hq + 2 * hkv, op, "QKV hidden"));
  ctx.set_output(0, t, Dims{input_dim(ctx, 0, 0), input_dim(ctx, 0, 1), dim_mul(head, Dim(hq))});
  return Status::ok();
}

// ---- FlexAttention (ai.onnx.preview) -------------------------------------------

Status infer_flex_attention(InferContext& ctx) {
  for (size_t i = 0; i < 3; ++i) {
    KILN_RETURN_IF_ERROR(require_float_input(ctx, i, "FlexAttention", "Q, K and V"));
    KILN_RETURN_IF_ERROR(require_input_rank(ctx, i, {4}, "FlexAttention", "Q, K and V"));
  }
  if (ctx.input_dtype(1) != ctx.input_dtype(0) || ctx.input_dtype(2) != ctx.input_dtype(0))
    return invalid_model("FlexAttention: Q, K and V must share a dtype");
  if (ctx.node().has_attr("softmax_precision")) {
    int64_t p = ctx.attr_int("softmax_precision", 1);
    if (p < 0 || p > 255 || !is_float_dtype(static_cast<DType>(p)))
      return unsupported("FlexAttention: softmax_precision {} is not a float type", p);
  }
  Dim hq = input_dim(ctx, 0, 1), hkv = input_dim(ctx, 1, 1);
  if (hq.is_fixed() && hkv.is_fixed() && (hkv.value == 0 || hq.value % hkv.value != 0))
    return invalid_model("FlexAttention: Q heads {} are not a multiple of K/V heads {}", hq.value, hkv.value);
  KILN_RETURN_IF_ERROR(
      require_equal_dims(input_dim(ctx, 0, 3), input_dim(ctx, 1, 3), "FlexAttention", "Q and K head sizes"));
  ctx.set_output(0, ctx.input_dtype(0), Dims{input_dim(ctx, 0, 0), hq, input_dim(ctx, 0, 2), input_dim(ctx, 2, 3)});
  return Status::ok();
}

// ---- LinearAttention ---------------------------------------------------------

Status infer_linear_attention(InferContext& ctx) {
  const char* op = "LinearAttention";
  int64_t hq = ctx.attr_int("q_num_heads", 0), hkv = ctx.attr_int("kv_num_heads", 0);
  if (hq <= 0 || hkv <= 0 || hq % hkv != 0)
    return invalid_model("{}: q_num_heads {} must be a positive multiple of kv_num_heads {}", op, hq, hkv);
  std::string rule = ctx.attr_string("update_rule", "gated_delta");
  if (rule != "linear" && rule != "gated" && rule != "delta" && rule != "gated_delta")
    return unsupported("{}: update_rule '{}' is not linear, gated, delta or gated_delta", op, rule);
  bool gated = rule == "gated" || rule == "gated_delta", delta = rule == "delta" || rule == "gated_delta";
  if (gated != ctx.has_input(4))
    return invalid_model("{}: update_rule '{}' {} the decay input", op, rule, gated ? "needs" : "forbids");
  if (delta != ctx.has_input(5))
    return invalid_model("{}: update_rule '{}' {} the beta input", op, rule, delta ? "needs" : "forbids");
  for (size_t i : {0, 1, 2, 4, 5}) {
    KILN_RETURN_IF_ERROR(require_float_input(ctx, i, op, "every input"));
    if (ctx.has_input(i))
      KILN_RETURN_IF_ERROR(require_input_rank(ctx, i, {3}, op, "query, key, value, decay and beta"));
  }
  if (ctx.has_input(3)) {
    KILN_RETURN_IF_ERROR(require_float_input(ctx, 3, op, "past_state"));
    KILN_RETURN_IF_ERROR(require_input_rank(ctx, 3, {4}, op, "past_state"));
  }
  KILN_ASSIGN_OR_RETURN(Dim d_k, per_head(input_dim(ctx, 0, 2), hq, op, "query hidden"));
  KILN_ASSIGN_OR_RETURN(Dim k_head, per_head(input_dim(ctx, 1, 2), hkv, op, "key hidden"));
  KILN_RETURN_IF_ERROR(require_equal_dims(d_k, k_head, op, "query and key head sizes"));
  KILN_ASSIGN_OR_RETURN(Dim d_v, per_head(input_dim(ctx, 2, 2), hkv, op, "value hidden"));
  Dim batch = input_dim(ctx, 0, 0), len = input_dim(ctx, 0, 1);
  ctx.set_output(0, ctx.input_dtype(0), Dims{batch, len, dim_mul(input_dim(ctx, 2, 2), Dim(hq / hkv))});
  // The state keeps past_state's dtype, or the query's when there is none.
  DType state = ctx.has_input(3) ? ctx.input_dtype(3) : ctx.input_dtype(0);
  ctx.set_output(1, state, Dims{batch, Dim(hkv), d_k, d_v});
  return Status::ok();
}

// ---- RotaryEmbedding ---------------------------------------------------------

Status infer_rotary_embedding(InferContext& ctx) {
  const char* op = "RotaryEmbedding";
  for (size_t i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(require_float_input(ctx, i, op, "X and the caches"));
  KILN_RETURN_IF_ERROR(require_input_rank(ctx, 0, {3, 4}, op, "X"));
  if (ctx.has_input(3)) {
    if (ctx.input_dtype(3) != DType::kI64 && ctx.input_dtype(3) != DType::kUndefined)
      return invalid_model("{}: position_ids must be int64, got {}", op, dtype_name(ctx.input_dtype(3)));
    KILN_RETURN_IF_ERROR(require_input_rank(ctx, 1, {2}, op, "cos_cache (with position_ids)"));
    KILN_RETURN_IF_ERROR(require_input_rank(ctx, 2, {2}, op, "sin_cache (with position_ids)"));
  } else {
    KILN_RETURN_IF_ERROR(require_input_rank(ctx, 1, {3}, op, "cos_cache (without position_ids)"));
    KILN_RETURN_IF_ERROR(require_input_rank(ctx, 2, {3}, op, "sin_cache (without position_ids)"));
  }
  int64_t rank = ctx.input_shape(0).rank();
  int64_t heads = ctx.attr_int("num_heads", 0);
  if (rank == 3 && heads <= 0) return invalid_model("{}: 3-D input needs a positive num_heads, got {}", op, heads);
  if (ctx.attr_int("interleaved", 0) != 0 && ctx.attr_int("interleaved", 0) != 1)
    return invalid_model("{}: interleaved {} is not 0 or 1", op, ctx.attr_int("interleaved", 0));
  Dim head = rank == 4 ? input_dim(ctx, 0, 3) : Dim::unknown();
  if (rank == 3) {
    KILN_ASSIGN_OR_RETURN(head, per_head(input_dim(ctx, 0, 2), heads, op, "hidden"));
  }
  int64_t rot = ctx.attr_int("rotary_embedding_dim", 0);
  if (rot < 0 || (rot % 2) != 0) return invalid_model("{}: rotary_embedding_dim {} must be even and >= 0", op, rot);
  if (head.is_fixed()) {
    if (rot > head.value) return invalid_model("{}: rotary_embedding_dim {} exceeds head size {}", op, rot, head.value);
    int64_t r = rot == 0 ? head.value : rot;
    if (r % 2) return invalid_model("{}: the rotated size {} must be even", op, r);
    Dim cache_last = input_dim(ctx, 1, ctx.input_shape(1).rank() - 1);
    KILN_RETURN_IF_ERROR(
        require_equal_dims(cache_last, Dim(r / 2), op, "cos_cache's last dim and the rotated size / 2"));
  }
  ctx.set_output(0, ctx.input_type(0));
  return Status::ok();
}

// ---- SwiGLU ------------------------------------------------------------------

Status infer_swiglu(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_float_input(ctx, 0, "SwiGLU", "A"));
  if (ctx.input_dtype(0) != ctx.input_dtype(1)) return invalid_model("SwiGLU: A and B must share a dtype");
  const Shape& a = ctx.input_shape(0);
  const Shape& b = ctx.input_shape(1);
  if (a.has_rank() && b.has_rank()) {
    if (a.rank() != b.rank()) return invalid_model("SwiGLU: A and B must have one shape (no broadcasting)");
    for (size_t k = 0; k < a.dims->size(); ++k)
      KILN_RETURN_IF_ERROR(require_equal_dims(a[k], b[k], "SwiGLU", "A and B dims"));
  }
  ctx.set_output(0, ctx.input_dtype(0), a.has_rank() ? a : b);
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.name = "Attention",
                          .since_opset = 23,
                          .min_inputs = 3,
                          .max_inputs = 7,
                          .min_outputs = 1,
                          .max_outputs = 4,
                          .infer = infer_attention,
                          .summary = "scaled dot-product attention (MHA/GQA/MQA, masks, KV cache, windows)"});
  OpRegistration(OpSchema{.domain = "kiln",
                          .name = "PackedAttention",
                          .since_opset = 1,
                          .min_inputs = 1,
                          .max_inputs = 2,
                          .infer = infer_packed_attention,
                          .summary = "3-D Attention over Q, K, V packed in one [B, S, (Hq + 2 Hkv) * D] tensor, "
                                     "read in place"});
  OpRegistration(OpSchema{.domain = "ai.onnx.preview",
                          .name = "FlexAttention",
                          .since_opset = 1,
                          .min_inputs = 3,
                          .max_inputs = 3,
                          .infer = infer_flex_attention,
                          .summary = "attention with score_mod/prob_mod subgraphs"});
  OpRegistration(OpSchema{.name = "LinearAttention",
                          .since_opset = 27,
                          .min_inputs = 3,
                          .max_inputs = 6,
                          .min_outputs = 1,
                          .max_outputs = 2,
                          .infer = infer_linear_attention,
                          .summary = "recurrent linear attention (linear, gated, delta, gated_delta)"});
  OpRegistration(OpSchema{.name = "RotaryEmbedding",
                          .since_opset = 23,
                          .min_inputs = 3,
                          .max_inputs = 4,
                          .infer = infer_rotary_embedding,
                          .summary = "rotary positional embedding (RoPE)"});
  OpRegistration(OpSchema{.name = "SwiGLU",
                          .since_opset = 28,
                          .min_inputs = 2,
                          .max_inputs = 2,
                          .infer = infer_swiglu,
                          .summary = "Swish(A) * B"});
  return true;
}();

}  // namespace
}  // namespace kiln
