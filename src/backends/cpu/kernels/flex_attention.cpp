// FlexAttention (ai.onnx.preview, opset 1): attention whose scores and
// probabilities pass through user subgraphs, following the ONNX function body:
//
//   scores = (Q*sqrt(scale)) . (K*sqrt(scale))^T   in Q's dtype
//   scores = score_mod(scores)                     in softmax_precision
//   probs  = prob_mod(softmax(scores))
//   Y      = probs . V, cast back to Q's dtype
//
// softmax_precision defaults to float (double for double inputs). Query head h
// reads key/value head h / (Hq / Hkv).
#include <cmath>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/float_io.h"
#include "support/parallel.h"

namespace kiln {
namespace {

// Runs a modifier subgraph on the whole (B, Hq, L, S) tensor.
Expected<std::vector<double>> apply_mod(CpuKernelContext& ctx, const char* key, DType type,
                                        const std::vector<int64_t>& dims, std::vector<double> values) {
  const Attribute* a = ctx.node().attr(key);
  if (!a) return values;
  if (!a->g) return invalid_model("FlexAttention: attribute {} must be a graph", key);
  if (a->g->inputs.size() != 1 || a->g->outputs.size() != 1)
    return invalid_model("FlexAttention: {} must have one input and one output", key);
  Tensor t(type, dims);
  KILN_RETURN_IF_ERROR(write_floats(t, values));
  KILN_ASSIGN_OR_RETURN(std::vector<RunValue> outs, ctx.run_subgraph(*a->g, {RunValue::of(std::move(t))}));
  if (outs.size() != 1 || !outs[0].is_tensor() || outs[0].tensor.dims() != dims || outs[0].tensor.dtype() != type)
    return invalid_model("FlexAttention: {} must return one {} tensor of shape {}", key, dtype_name(type),
                         Shape::of(dims).to_string());
  return read_floats<double>(outs[0].tensor);
}

Status run_flex_attention(CpuKernelContext& ctx) {
  const Tensor &q = ctx.input(0), &k = ctx.input(1), &v = ctx.input(2);
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4) return invalid_model("FlexAttention: Q, K and V must be 4-D");
  const int64_t batch = q.dim(0), hq = q.dim(1), len = q.dim(2), head = q.dim(3);
  const int64_t hkv = k.dim(1), kv_len = k.dim(2), v_head = v.dim(3);
  if (k.dim(0) != batch || k.dim(3) != head || v.dim(0) != batch || v.dim(1) != hkv || v.dim(2) != kv_len || hkv == 0 ||
      hq % hkv != 0)
    return invalid_model("FlexAttention: Q {}, K {} and V {} do not fit together", Shape::of(q.dims()).to_string(),
                         Shape::of(k.dims()).to_string(), Shape::of(v.dims()).to_string());
  const DType t = q.dtype();
  const Node& n = ctx.node();
  const DType sp = n.has_attr("softmax_precision") ? static_cast<DType>(n.attr_int("softmax_precision", 1))
                   : t == DType::kF64              ? DType::kF64
                                                   : DType::kF32;
  const double scale = n.has_attr("scale") ? n.attr_float("scale", 1.0f) : 1.0 / std::sqrt(double(head));
  const double root = round_to(t, std::sqrt(scale));
  KILN_ASSIGN_OR_RETURN(std::vector<double> qv, read_floats<double>(q));
  KILN_ASSIGN_OR_RETURN(std::vector<double> kv, read_floats<double>(k));
  KILN_ASSIGN_OR_RETURN(std::vector<double> vv, read_floats<double>(v));
  for (double& x : qv) x = round_to(t, x * root);
  for (double& x : kv) x = round_to(t, x * root);
  const int64_t group = hq / hkv;
  const std::vector<int64_t> score_dims = {batch, hq, len, kv_len};
  std::vector<double> scores(static_cast<size_t>(batch * hq * len * kv_len));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < hq; ++h)
      for (int64_t i = 0; i < len; ++i)
        for (int64_t j = 0; j < kv_len; ++j) {
          const double* qr = qv.data() + ((b * hq + h) * len + i) * head;
          const double* kr = kv.data() + ((b * hkv + h / group) * kv_len + j) * head;
          double dot = 0;
          for (int64_t d = 0; d < head; ++d) dot += qr[d] * kr[d];
          scores[((b * hq + h) * len + i) * kv_len + j] = round_to(sp, round_to(t, dot));
        }
  KILN_ASSIGN_OR_RETURN(scores, apply_mod(ctx, "score_mod", sp, score_dims, std::move(scores)));
  // ONNX Softmax: a row of -inf is NaN there, and stays NaN here.
  for (size_t row = 0; row < scores.size(); row += static_cast<size_t>(kv_len)) {
    double* s = scores.data() + row;
    double max = -INFINITY, sum = 0;
    for (int64_t j = 0; j < kv_len; ++j) max = std::max(max, s[j]);
    for (int64_t j = 0; j < kv_len; ++j) sum += (s[j] = round_to(sp, std::exp(s[j] - max)));
    for (int64_t j = 0; j < kv_len; ++j) s[j] = round_to(sp, s[j] / sum);
  }
  KILN_ASSIGN_OR_RETURN(scores, apply_mod(ctx, "prob_mod", sp, score_dims, std::move(scores)));
  std::vector<double> y(static_cast<size_t>(batch * hq * len * v_head));
  for (int64_t bh = 0; bh < batch * hq; ++bh)
    for (int64_t i = 0; i < len; ++i)
      for (int64_t d = 0; d < v_head; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < kv_len; ++j)
          acc += scores[(bh * len + i) * kv_len + j] *
                 round_to(sp, vv[(((bh / hq) * hkv + (bh % hq) / group) * kv_len + j) * v_head + d]);
        y[(bh * len + i) * v_head + d] = round_to(sp, acc);
      }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
  return write_floats(*out, y);
}

}  // namespace

KILN_CPU_KERNEL("ai.onnx.preview", "FlexAttention", run_flex_attention);

}  // namespace kiln
