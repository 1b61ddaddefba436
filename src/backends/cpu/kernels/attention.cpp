// Attention (opset 23-25) and kiln.PackedAttention (Attention over Q, K, V
// sliced from one packed tensor): scaled dot-product attention with GQA, masks,
// causal and sliding-window limits, and an internal or external KV cache.
// This is the oracle for fused GPU attention, so it follows the ONNX function
// body step by step, one query row at a time:
//
//   scores = (Q*sqrt(scale)) . (K*sqrt(scale))^T     [qk mode 0]
//   scores = softcap * tanh(scores / softcap)        [qk mode 1]
//   scores = scores + bias                           [qk mode 2]
//   probs  = softmax(scores), zero for rows with no visible key  [qk mode 3]
//   Y      = probs . V
//
// bias is the float mask (or 0/-inf of a bool mask), plus -inf for keys that
// the causal frontier, the window or nonpad_kv_seqlen hide. Values are rounded
// to the op's dtype where the function body materializes a tensor, so 16-bit
// results match the reference; sums accumulate in float (double for f64).
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <optional>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/float_io.h"
#include "support/parallel.h"

namespace kiln {
namespace {

// Where element (b, h, s, d) of a Q/K/V-like tensor lives: (B, H, S, D), or
// packed 3-D (B, S, H*D).
struct HeadLayout {
  int64_t heads = 0, len = 0, size = 0;
  bool packed = false;
  int64_t at(int64_t b, int64_t h, int64_t s, int64_t d) const {
    return packed ? ((b * len + s) * heads + h) * size + d : ((b * heads + h) * len + s) * size + d;
  }
};

struct AttentionParams {
  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, kv_len = 0, past_len = 0, total_len = 0;
  int64_t head = 0, v_head = 0;
  bool packed = false;
  HeadLayout q, k, v;
  double scale = 0, softcap = 0;
  int64_t mode = 0, left = -1, right = -1;
  bool causal = false, has_past = false;
  DType t1 = DType::kF32, softmax_type = DType::kF32;
};

Status check_dims(const Tensor& t, const std::vector<int64_t>& want, const char* what) {
  if (t.dims() != want)
    return invalid_model("Attention: {} has shape {}, expected {}", what, Shape::of(t.dims()).to_string(),
                         Shape::of(want).to_string());
  return Status::ok();
}

// Attention's tensors: Q, K, V and the optional ones (null where omitted).
// kiln.PackedAttention gives Q, K, V sliced from its packed input.
struct AttentionInputs {
  const Tensor *q = nullptr, *k = nullptr, *v = nullptr;
  const Tensor *mask = nullptr, *past_k = nullptr, *past_v = nullptr, *nonpad = nullptr;
};

AttentionInputs attention_inputs(const CpuKernelContext& ctx) {
  auto opt = [&](size_t i) { return ctx.has_input(i) ? &ctx.input(i) : nullptr; };
  return {&ctx.input(0), &ctx.input(1), &ctx.input(2), opt(3), opt(4), opt(5), opt(6)};
}

Expected<AttentionParams> attention_params(const Node& n, const AttentionInputs& in) {
  AttentionParams p;
  const Tensor &q = *in.q, &k = *in.k, &v = *in.v;
  if (q.rank() != k.rank() || q.rank() != v.rank() || (q.rank() != 3 && q.rank() != 4))
    return invalid_model("Attention: Q, K, V must all be 3-D or all 4-D, got ranks {}, {}, {}", q.rank(), k.rank(),
                         v.rank());
  p.packed = q.rank() == 3;
  p.batch = q.dim(0);
  if (p.packed) {
    p.q_heads = n.attr_int("q_num_heads", 0);
    p.kv_heads = n.attr_int("kv_num_heads", 0);
    if (p.q_heads <= 0 || p.kv_heads <= 0 || q.dim(2) % p.q_heads || k.dim(2) % p.kv_heads || v.dim(2) % p.kv_heads)
      return invalid_model("Attention: hidden sizes {}, {}, {} do not split into {} and {} heads", q.dim(2), k.dim(2),
                           v.dim(2), p.q_heads, p.kv_heads);
    p.q_len = q.dim(1);
    p.kv_len = k.dim(1);
    p.head = q.dim(2) / p.q_heads;
    p.v_head = v.dim(2) / p.kv_heads;
    KILN_RETURN_IF_ERROR(check_dims(k, {p.batch, p.kv_len, p.kv_heads * p.head}, "K"));
    KILN_RETURN_IF_ERROR(check_dims(v, {p.batch, p.kv_len, p.kv_heads * p.v_head}, "V"));
  } else {
    p.q_heads = q.dim(1);
    p.q_len = q.dim(2);
    p.head = q.dim(3);
    p.kv_heads = k.dim(1);
    p.kv_len = k.dim(2);
    p.v_head = v.dim(3);
    KILN_RETURN_IF_ERROR(check_dims(k, {p.batch, p.kv_heads, p.kv_len, p.head}, "K"));
    KILN_RETURN_IF_ERROR(check_dims(v, {p.batch, p.kv_heads, p.kv_len, p.v_head}, "V"));
  }
  if (p.kv_heads == 0 || p.q_heads % p.kv_heads != 0)
    return invalid_model("Attention: {} query heads are not a multiple of {} key/value heads", p.q_heads, p.kv_heads);
  p.q = {p.q_heads, p.q_len, p.head, p.packed};
  p.k = {p.kv_heads, p.kv_len, p.head, p.packed};
  p.v = {p.kv_heads, p.kv_len, p.v_head, p.packed};
  p.has_past = in.past_k && in.past_v;
  if (p.has_past) {
    p.past_len = in.past_k->rank() == 4 ? in.past_k->dim(2) : -1;
    KILN_RETURN_IF_ERROR(check_dims(*in.past_k, {p.batch, p.kv_heads, p.past_len, p.head}, "past_key"));
    KILN_RETURN_IF_ERROR(check_dims(*in.past_v, {p.batch, p.kv_heads, p.past_len, p.v_head}, "past_value"));
  }
  p.total_len = p.past_len + p.kv_len;
  p.scale = n.has_attr("scale") ? n.attr_float("scale", 1.0f) : 1.0 / std::sqrt(static_cast<double>(p.head));
  p.softcap = n.attr_float("softcap", 0.0f);
  p.mode = n.attr_int("qk_matmul_output_mode", 0);
  p.causal = n.attr_int("is_causal", 0) != 0;
  p.left = n.attr_int("left_window_size", -1);
  p.right = n.attr_int("right_window_size", -1);
  p.t1 = q.dtype();
  p.softmax_type = n.has_attr("softmax_precision") ? static_cast<DType>(n.attr_int("softmax_precision", 1)) : p.t1;
  return p;
}

// attn_mask broadcast (right-aligned) to (B, Hq, Sq, mask_len) as additive
// values: a bool mask is 0 where attending, -inf elsewhere. Keys past the
// mask's own length are hidden.
template <typename Acc>
struct MaskView {
  std::vector<Acc> values;
  int64_t strides[4] = {0, 0, 0, 1};
  int64_t len = 0;

  Acc at(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (j >= len) return -std::numeric_limits<Acc>::infinity();
    return values[b * strides[0] + h * strides[1] + i * strides[2] + j];
  }
};

template <typename Acc>
Expected<MaskView<Acc>> mask_view(const Tensor& m, const AttentionParams& p) {
  MaskView<Acc> view;
  if (m.rank() < 1 || m.rank() > 4)
    return invalid_model("Attention: attn_mask has rank {}; it must be 1 to 4", m.rank());
  view.len = m.dim(m.rank() - 1);
  if (view.len > p.total_len)
    return invalid_model("Attention: attn_mask has {} keys, more than the {} keys attended", view.len, p.total_len);
  const int64_t target[3] = {p.batch, p.q_heads, p.q_len};
  int64_t stride = view.len;
  for (int64_t a = m.rank() - 2; a >= 0; --a) {
    int64_t axis = 4 - m.rank() + a;  // position among (B, Hq, Sq, keys)
    int64_t d = m.dim(a);
    if (d != 1 && d != target[axis])
      return invalid_model("Attention: attn_mask dim {} is {}, which does not broadcast to {}", a, d, target[axis]);
    view.strides[axis] = d == 1 ? 0 : stride;
    stride *= d;
  }
  view.values.resize(static_cast<size_t>(m.numel()));
  const Acc neg_inf = -std::numeric_limits<Acc>::infinity();
  Status st = visit_dtype(m.dtype(), kNumericTypes | dtype_bit(DType::kBool), [&]<typename T>() {
    const T* src = m.data<T>();
    for (size_t i = 0; i < view.values.size(); ++i) {
      if constexpr (std::is_same_v<T, bool>) {
        view.values[i] = src[i] ? Acc(0) : neg_inf;
      } else {
        view.values[i] = round_to(p.t1, static_cast<Acc>(static_cast<compute_t<T>>(src[i])));
      }
    }
    return Status::ok();
  });
  if (!st.is_ok()) return st.with_context("Attention attn_mask");
  return view;
}

// Past and new keys (or values) as one (B, Hkv, total, D) array.
template <typename Acc>
std::vector<Acc> concat_cache(const std::vector<Acc>& past, const std::vector<Acc>& cur, const HeadLayout& cur_layout,
                              int64_t batch, int64_t past_len) {
  int64_t heads = cur_layout.heads, len = cur_layout.len, d = cur_layout.size, total = past_len + len;
  std::vector<Acc> out(static_cast<size_t>(batch * heads * total * d));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      Acc* dst = out.data() + (b * heads + h) * total * d;
      for (int64_t t = 0; t < past_len * d; ++t) dst[t] = past[(b * heads + h) * past_len * d + t];
      for (int64_t s = 0; s < len; ++s)
        for (int64_t x = 0; x < d; ++x) dst[(past_len + s) * d + x] = cur[cur_layout.at(b, h, s, x)];
    }
  return out;
}

template <typename Acc>
struct AttentionRun {
  const AttentionParams& p;
  std::vector<Acc> q;             // Q in its own layout, already times sqrt(scale)
  std::vector<Acc> keys, values;  // (B, Hkv, total, D) and (B, Hkv, total, Dv)
  std::vector<Acc> scaled_keys;   // keys times sqrt(scale)
  std::optional<MaskView<Acc>> mask;
  std::optional<std::vector<int64_t>> nonpad;  // valid keys per batch (external cache)
  std::vector<Acc> y, qk;                      // Y in Q's layout; qk (B, Hq, Sq, total)

  // Keys before this query block: the causal and window frontiers start here.
  int64_t offset(int64_t b) const {
    if (p.has_past) return p.past_len;
    if (nonpad) return (*nonpad)[b] - p.q_len;
    return 0;
  }

  void bias_row(int64_t b, int64_t h, int64_t i, std::vector<Acc>& bias) const {
    const Acc neg_inf = -std::numeric_limits<Acc>::infinity();
    int64_t pos = i + offset(b);  // the query's absolute position
    for (int64_t j = 0; j < p.total_len; ++j) {
      Acc v = mask ? mask->at(b, h, i, j) : Acc(0);
      bool hidden = (p.causal && j > pos) || (p.left >= 0 && pos - j > p.left) || (p.right >= 0 && j - pos > p.right) ||
                    (nonpad && j >= (*nonpad)[b]);
      bias[j] = hidden ? neg_inf : v;
    }
  }

  Acc r1(Acc x) const { return round_to(p.t1, x); }
  Acc rs(Acc x) const { return round_to(p.softmax_type, x); }

  // One query row: scores, bias, softmax and the weighted sum of values.
  void row(int64_t b, int64_t h, int64_t i, std::vector<Acc>& bias, std::vector<Acc>& scores) {
    const int64_t kv_h = h / (p.q_heads / p.kv_heads), total = p.total_len;
    bias_row(b, h, i, bias);
    Acc* qk_row = qk.empty() ? nullptr : qk.data() + ((b * p.q_heads + h) * p.q_len + i) * total;
    const Acc* qrow = q.data() + p.q.at(b, h, i, 0);
    for (int64_t j = 0; j < total; ++j) {
      const Acc* krow = scaled_keys.data() + ((b * p.kv_heads + kv_h) * total + j) * p.head;
      Acc dot = 0;
      for (int64_t d = 0; d < p.head; ++d) dot += qrow[d] * krow[d];
      Acc s = r1(dot);
      if (qk_row && p.mode == 0) qk_row[j] = s;
      if (p.softcap > 0) s = r1(r1(std::tanh(r1(s / Acc(p.softcap)))) * Acc(p.softcap));
      if (qk_row && p.mode == 1) qk_row[j] = s;
      s = r1(s + bias[j]);
      if (qk_row && p.mode == 2) qk_row[j] = s;
      scores[j] = rs(s);
    }
    softmax_row(scores, bias);
    for (int64_t j = 0; j < total; ++j) {
      scores[j] = r1(scores[j]);
      if (qk_row && p.mode == 3) qk_row[j] = scores[j];
    }
    for (int64_t d = 0; d < p.v_head; ++d) {
      Acc acc = 0;
      for (int64_t j = 0; j < total; ++j)
        acc += scores[j] * values[((b * p.kv_heads + kv_h) * total + j) * p.v_head + d];
      y[HeadLayout{p.q_heads, p.q_len, p.v_head, p.packed}.at(b, h, i, d)] = r1(acc);
    }
  }

  // Softmax with max-subtraction, in softmax_precision. A row whose bias hides
  // every key has no visible key: it is all zeros, never NaN.
  void softmax_row(std::vector<Acc>& s, const std::vector<Acc>& bias) const {
    const Acc neg_inf = -std::numeric_limits<Acc>::infinity();
    bool all_hidden = true;
    Acc max = neg_inf;
    for (int64_t j = 0; j < p.total_len; ++j) {
      all_hidden = all_hidden && bias[j] == neg_inf;
      max = std::max(max, s[j]);
    }
    if (all_hidden || max == neg_inf) {
      std::fill(s.begin(), s.end(), Acc(0));
      return;
    }
    // A bfloat16 sum rounds after every addition, as the reference (numpy with
    // ml_dtypes) does; other types accumulate in Acc and round once.
    const bool round_each = p.softmax_type == DType::kBF16;
    Acc sum = 0;
    for (int64_t j = 0; j < p.total_len; ++j) {
      s[j] = rs(std::exp(rs(s[j] - max)));
      sum = round_each ? rs(sum + s[j]) : sum + s[j];
    }
    sum = rs(sum);
    for (int64_t j = 0; j < p.total_len; ++j) s[j] = rs(s[j] / sum);
  }
};

template <typename Acc>
Status run_attention_as(CpuKernelContext& ctx, const AttentionInputs& in, const AttentionParams& p) {
  AttentionRun<Acc> run{p};
  KILN_ASSIGN_OR_RETURN(run.q, read_floats<Acc>(*in.q));
  KILN_ASSIGN_OR_RETURN(std::vector<Acc> k, read_floats<Acc>(*in.k));
  KILN_ASSIGN_OR_RETURN(std::vector<Acc> v, read_floats<Acc>(*in.v));
  std::vector<Acc> past_k, past_v;
  if (p.has_past) {
    KILN_ASSIGN_OR_RETURN(past_k, read_floats<Acc>(*in.past_k));
    KILN_ASSIGN_OR_RETURN(past_v, read_floats<Acc>(*in.past_v));
  }
  run.keys = concat_cache(past_k, k, p.k, p.batch, p.past_len);
  run.values = concat_cache(past_v, v, p.v, p.batch, p.past_len);
  // sqrt(scale) in the op's dtype, on both sides, as the function body does.
  const Acc root = run.r1(static_cast<Acc>(std::sqrt(p.scale)));
  for (Acc& x : run.q) x = run.r1(x * root);
  run.scaled_keys = run.keys;
  for (Acc& x : run.scaled_keys) x = run.r1(x * root);
  if (in.mask) {
    KILN_ASSIGN_OR_RETURN(run.mask, mask_view<Acc>(*in.mask, p));
  }
  if (in.nonpad) {
    KILN_ASSIGN_OR_RETURN(run.nonpad, in.nonpad->to_i64_vector());
    if (static_cast<int64_t>(run.nonpad->size()) != p.batch)
      return invalid_model("Attention: nonpad_kv_seqlen has {} entries for batch {}", run.nonpad->size(), p.batch);
  }
  run.y.resize(static_cast<size_t>(p.batch * p.q_heads * p.q_len * p.v_head));
  if (ctx.has_output(3)) run.qk.resize(static_cast<size_t>(p.batch * p.q_heads * p.q_len * p.total_len));
  parallel_for(p.batch * p.q_heads, p.q_len * p.total_len * (p.head + p.v_head), [&](int64_t begin, int64_t end) {
    std::vector<Acc> bias(static_cast<size_t>(p.total_len)), scores(static_cast<size_t>(p.total_len));
    for (int64_t bh = begin; bh < end; ++bh)
      for (int64_t i = 0; i < p.q_len; ++i) run.row(bh / p.q_heads, bh % p.q_heads, i, bias, scores);
  });
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  KILN_RETURN_IF_ERROR(write_floats(*y, run.y));
  std::vector<int64_t> cache_dims = {p.batch, p.kv_heads, p.total_len, p.head};
  if (ctx.has_output(1)) KILN_RETURN_IF_ERROR(write_floats(ctx.allocate_output(1, cache_dims), run.keys));
  cache_dims[3] = p.v_head;
  if (ctx.has_output(2)) KILN_RETURN_IF_ERROR(write_floats(ctx.allocate_output(2, cache_dims), run.values));
  if (ctx.has_output(3))
    KILN_RETURN_IF_ERROR(write_floats(ctx.allocate_output(3, {p.batch, p.q_heads, p.q_len, p.total_len}), run.qk));
  return Status::ok();
}

Status run_attention_on(CpuKernelContext& ctx, const AttentionInputs& in) {
  KILN_ASSIGN_OR_RETURN(AttentionParams p, attention_params(ctx.node(), in));
  bool wide = p.t1 == DType::kF64 || in.v->dtype() == DType::kF64 || p.softmax_type == DType::kF64;
  return wide ? run_attention_as<double>(ctx, in, p) : run_attention_as<float>(ctx, in, p);
}

Status run_attention(CpuKernelContext& ctx) { return run_attention_on(ctx, attention_inputs(ctx)); }

// Columns [begin, begin + width) of every row of a [B, S, W] tensor, as a
// [B, S, width] tensor.
Tensor column_slice(const Tensor& t, int64_t begin, int64_t width) {
  const int64_t rows = t.dim(0) * t.dim(1), row_width = t.dim(2);
  const size_t elem = t.nbytes() / static_cast<size_t>(std::max<int64_t>(t.numel(), 1));
  Tensor out(t.dtype(), {t.dim(0), t.dim(1), width});
  const auto* src = static_cast<const std::byte*>(t.raw());
  auto* dst = static_cast<std::byte*>(out.mutable_raw());
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + static_cast<size_t>(r * width) * elem, src + static_cast<size_t>(r * row_width + begin) * elem,
                static_cast<size_t>(width) * elem);
  return out;
}

// kiln.PackedAttention: Q, K and V are column ranges of QKV [B, S, (Hq + 2 Hkv) * D];
// sliced, they run through Attention's reference above (the node's attributes
// are Attention's names).
Status run_packed_attention(CpuKernelContext& ctx) {
  const Tensor& qkv = ctx.input(0);
  const int64_t hq = ctx.node().attr_int("q_num_heads", 0), hkv = ctx.node().attr_int("kv_num_heads", 0);
  if (qkv.rank() != 3 || hq <= 0 || hkv <= 0 || qkv.dim(2) % (hq + 2 * hkv) != 0)
    return invalid_model("PackedAttention: QKV of shape {} does not split into {} + 2 * {} heads",
                         Shape::of(qkv.dims()).to_string(), hq, hkv);
  const int64_t head = qkv.dim(2) / (hq + 2 * hkv);
  const Tensor q = column_slice(qkv, 0, hq * head), k = column_slice(qkv, hq * head, hkv * head),
               v = column_slice(qkv, (hq + hkv) * head, hkv * head);
  AttentionInputs in{&q, &k, &v};
  if (ctx.has_input(1)) in.mask = &ctx.input(1);
  return run_attention_on(ctx, in);
}

}  // namespace

KILN_CPU_KERNEL("", "Attention", run_attention);
KILN_CPU_KERNEL("kiln", "PackedAttention", run_packed_attention);

}  // namespace kiln
