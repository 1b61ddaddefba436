// LinearAttention (opset 27): the recurrent form of linear attention, token by
// token, with a (d_k x d_v) state per key/value head, in float:
//
//   gated:  S = exp(g_t) * S                 (decay per head or per key dim)
//   delta:  v_t = beta_t * (v_t - S^T k_t)   (S after the decay)
//   write:  S = S + k_t v_t^T
//   read:   o_t = scale * q_t^T S            (query head h reads kv head h / group)
//
// chunk_size is a tuning hint for chunked GPU kernels; it does not change results.
#include <cmath>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/float_io.h"
#include "support/parallel.h"

namespace kiln {
namespace {

struct LinearAttentionParams {
  int64_t batch = 0, len = 0, q_heads = 0, kv_heads = 0, d_k = 0, d_v = 0;
  int64_t decay_width = 0, beta_width = 0;  // last dims of decay (Hkv or Hkv*d_k) and beta (Hkv or 1)
  bool gated = false, delta = false;
  float scale = 0;
};

Expected<LinearAttentionParams> linear_attention_params(const CpuKernelContext& ctx) {
  const Node& n = ctx.node();
  const Tensor &q = ctx.input(0), &k = ctx.input(1), &v = ctx.input(2);
  LinearAttentionParams p;
  p.q_heads = n.attr_int("q_num_heads", 0);
  p.kv_heads = n.attr_int("kv_num_heads", 0);
  std::string rule = n.attr_string("update_rule", "gated_delta");
  p.gated = rule == "gated" || rule == "gated_delta";
  p.delta = rule == "delta" || rule == "gated_delta";
  if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3)
    return invalid_model("LinearAttention: query, key and value must be 3-D");
  if (p.q_heads <= 0 || p.kv_heads <= 0 || p.q_heads % p.kv_heads || q.dim(2) % p.q_heads || v.dim(2) % p.kv_heads)
    return invalid_model("LinearAttention: hidden sizes {} and {} do not split into {} and {} heads", q.dim(2),
                         v.dim(2), p.q_heads, p.kv_heads);
  p.batch = q.dim(0), p.len = q.dim(1), p.d_k = q.dim(2) / p.q_heads, p.d_v = v.dim(2) / p.kv_heads;
  if (k.dims() != std::vector<int64_t>{p.batch, p.len, p.kv_heads * p.d_k} || v.dim(0) != p.batch || v.dim(1) != p.len)
    return invalid_model("LinearAttention: key {} and value {} do not match query {}", Shape::of(k.dims()).to_string(),
                         Shape::of(v.dims()).to_string(), Shape::of(q.dims()).to_string());
  if (p.gated != ctx.has_input(4) || p.delta != ctx.has_input(5))
    return invalid_model("LinearAttention: update_rule '{}' does not match the decay/beta inputs given", rule);
  if (p.gated) {
    const Tensor& g = ctx.input(4);
    p.decay_width = g.rank() == 3 ? g.dim(2) : -1;
    if (g.rank() != 3 || g.dim(0) != p.batch || g.dim(1) != p.len ||
        (p.decay_width != p.kv_heads && p.decay_width != p.kv_heads * p.d_k))
      return invalid_model("LinearAttention: decay has shape {}, expected [{},{},{} or {}]",
                           Shape::of(g.dims()).to_string(), p.batch, p.len, p.kv_heads, p.kv_heads * p.d_k);
  }
  if (p.delta) {
    const Tensor& beta = ctx.input(5);
    p.beta_width = beta.rank() == 3 ? beta.dim(2) : -1;
    if (beta.rank() != 3 || beta.dim(0) != p.batch || beta.dim(1) != p.len ||
        (p.beta_width != p.kv_heads && p.beta_width != 1))
      return invalid_model("LinearAttention: beta has shape {}, expected [{},{},{} or 1]",
                           Shape::of(beta.dims()).to_string(), p.batch, p.len, p.kv_heads);
  }
  if (ctx.has_input(3) && ctx.input(3).dims() != std::vector<int64_t>{p.batch, p.kv_heads, p.d_k, p.d_v})
    return invalid_model("LinearAttention: past_state has shape {}, expected [{},{},{},{}]",
                         Shape::of(ctx.input(3).dims()).to_string(), p.batch, p.kv_heads, p.d_k, p.d_v);
  float scale = n.attr_float("scale", 0.0f);
  p.scale = scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(p.d_k));
  return p;
}

struct LinearAttentionData {
  std::vector<float> q, k, v, decay, beta, state, out;
};

// Runs the recurrence of one (batch, kv head) pair over all tokens.
void run_kv_head(const LinearAttentionParams& p, LinearAttentionData& x, int64_t b, int64_t kh) {
  float* s = x.state.data() + (b * p.kv_heads + kh) * p.d_k * p.d_v;
  const int64_t group = p.q_heads / p.kv_heads;
  std::vector<float> v_t(static_cast<size_t>(p.d_v));
  for (int64_t t = 0; t < p.len; ++t) {
    const int64_t tok = b * p.len + t;
    const float* k_t = x.k.data() + (tok * p.kv_heads + kh) * p.d_k;
    for (int64_t m = 0; m < p.d_v; ++m) v_t[m] = x.v[(tok * p.kv_heads + kh) * p.d_v + m];
    if (p.gated) {
      for (int64_t d = 0; d < p.d_k; ++d) {
        int64_t gi = p.decay_width == p.kv_heads ? tok * p.kv_heads + kh : (tok * p.kv_heads + kh) * p.d_k + d;
        float g = std::exp(x.decay[gi]);
        for (int64_t m = 0; m < p.d_v; ++m) s[d * p.d_v + m] *= g;
      }
    }
    if (p.delta) {
      float beta = x.beta[tok * p.beta_width + (p.beta_width == 1 ? 0 : kh)];
      for (int64_t m = 0; m < p.d_v; ++m) {
        float retrieved = 0;
        for (int64_t d = 0; d < p.d_k; ++d) retrieved += s[d * p.d_v + m] * k_t[d];
        v_t[m] = beta * (v_t[m] - retrieved);
      }
    }
    for (int64_t d = 0; d < p.d_k; ++d)
      for (int64_t m = 0; m < p.d_v; ++m) s[d * p.d_v + m] += k_t[d] * v_t[m];
    for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
      const float* q_t = x.q.data() + (tok * p.q_heads + h) * p.d_k;
      float* o = x.out.data() + (tok * p.q_heads + h) * p.d_v;
      for (int64_t m = 0; m < p.d_v; ++m) {
        float acc = 0;
        for (int64_t d = 0; d < p.d_k; ++d) acc += q_t[d] * s[d * p.d_v + m];
        o[m] = p.scale * acc;
      }
    }
  }
}

Status run_linear_attention(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(LinearAttentionParams p, linear_attention_params(ctx));
  LinearAttentionData x;
  KILN_ASSIGN_OR_RETURN(x.q, read_floats<float>(ctx.input(0)));
  KILN_ASSIGN_OR_RETURN(x.k, read_floats<float>(ctx.input(1)));
  KILN_ASSIGN_OR_RETURN(x.v, read_floats<float>(ctx.input(2)));
  if (p.gated) {
    KILN_ASSIGN_OR_RETURN(x.decay, read_floats<float>(ctx.input(4)));
  }
  if (p.delta) {
    KILN_ASSIGN_OR_RETURN(x.beta, read_floats<float>(ctx.input(5)));
  }
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(x.state, read_floats<float>(ctx.input(3)));
  } else {
    x.state.assign(static_cast<size_t>(p.batch * p.kv_heads * p.d_k * p.d_v), 0.0f);
  }
  x.out.assign(static_cast<size_t>(p.batch * p.len * p.q_heads * p.d_v), 0.0f);
  parallel_for(p.batch * p.kv_heads, p.len * p.d_k * p.d_v * 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) run_kv_head(p, x, i / p.kv_heads, i % p.kv_heads);
  });
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
  KILN_RETURN_IF_ERROR(write_floats(*out, x.out));
  if (ctx.has_output(1)) {
    KILN_ASSIGN_OR_RETURN(Tensor * state, ctx.allocate_output(1));
    KILN_RETURN_IF_ERROR(write_floats(*state, x.state));
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "LinearAttention", run_linear_attention);

}  // namespace kiln
