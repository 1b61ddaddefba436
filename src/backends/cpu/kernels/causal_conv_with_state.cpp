// CausalConvWithState (opset 27): depthwise causal 1-D convolution over
// (batch, channels, length) with a carried state of the last k - 1 inputs:
//
//   padded[b, c] = concat(past_state[b, c] or zeros(k - 1), input[b, c])
//   out[b, c, t] = bias[c] + sum_i weight[c, 0, i] * padded[b, c, t + i]
//   present_state[b, c] = the last k - 1 entries of padded[b, c]
//
// with an optional fused SiLU (x * sigmoid(x), computed in float).
#include <cmath>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/float_io.h"
#include "support/parallel.h"

namespace kiln {
namespace {

Status check_conv_inputs(const CpuKernelContext& ctx, int64_t& kernel) {
  const Tensor &x = ctx.input(0), &w = ctx.input(1);
  if (x.rank() != 3) return invalid_model("CausalConvWithState: input has rank {}; it must be 3", x.rank());
  const int64_t batch = x.dim(0), channels = x.dim(1);
  if (w.rank() != 3 || w.dim(0) != channels || w.dim(1) != 1 || w.dim(2) < 1)
    return invalid_model("CausalConvWithState: weight has shape {}, expected [{},1,k] with k >= 1",
                         Shape::of(w.dims()).to_string(), channels);
  kernel = w.dim(2);
  if (ctx.has_input(2) && ctx.input(2).dims() != std::vector<int64_t>{channels})
    return invalid_model("CausalConvWithState: bias has shape {}, expected [{}]",
                         Shape::of(ctx.input(2).dims()).to_string(), channels);
  if (ctx.has_input(3) && ctx.input(3).dims() != std::vector<int64_t>{batch, channels, kernel - 1})
    return invalid_model("CausalConvWithState: past_state has shape {}, expected [{},{},{}]",
                         Shape::of(ctx.input(3).dims()).to_string(), batch, channels, kernel - 1);
  for (size_t i = 1; i < 4; ++i)
    if (ctx.has_input(i) && ctx.input(i).dtype() != x.dtype())
      return invalid_model("CausalConvWithState: input {} must have the input's dtype", i);
  return Status::ok();
}

Status run_causal_conv_with_state(CpuKernelContext& ctx) {
  int64_t k = 0;
  KILN_RETURN_IF_ERROR(check_conv_inputs(ctx, k));
  const std::string act = ctx.node().attr_string("activation", "none");
  if (act != "none" && act != "silu" && act != "swish")
    return unsupported("CausalConvWithState: activation '{}' is not none, silu or swish", act);
  const Tensor& x = ctx.input(0);
  const int64_t batch = x.dim(0), channels = x.dim(1), len = x.dim(2), padded_len = len + k - 1;
  const DType dtype = x.dtype();
  KILN_ASSIGN_OR_RETURN(std::vector<float> in, read_floats<float>(x));
  KILN_ASSIGN_OR_RETURN(std::vector<float> w, read_floats<float>(ctx.input(1)));
  std::vector<float> bias(static_cast<size_t>(channels), 0.0f), past;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(bias, read_floats<float>(ctx.input(2)));
  }
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(past, read_floats<float>(ctx.input(3)));
  }
  std::vector<float> out(static_cast<size_t>(batch * channels * len));
  std::vector<float> state(static_cast<size_t>(batch * channels * (k - 1)));
  parallel_for(batch * channels, padded_len * k, [&](int64_t begin, int64_t end) {
    std::vector<float> padded(static_cast<size_t>(padded_len));
    for (int64_t bc = begin; bc < end; ++bc) {
      const int64_t c = bc % channels;
      for (int64_t t = 0; t < k - 1; ++t) padded[t] = past.empty() ? 0.0f : past[bc * (k - 1) + t];
      for (int64_t t = 0; t < len; ++t) padded[k - 1 + t] = in[bc * len + t];
      for (int64_t t = 0; t < len; ++t) {
        float acc = bias[c];
        for (int64_t i = 0; i < k; ++i) acc += w[c * k + i] * padded[t + i];
        acc = round_to(dtype, acc);  // the convolution's output is a tensor of the input's dtype
        if (act != "none") acc = acc / (1.0f + std::exp(-acc));
        out[bc * len + t] = acc;
      }
      for (int64_t t = 0; t < k - 1; ++t) state[bc * (k - 1) + t] = padded[len + t];
    }
  });
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  KILN_RETURN_IF_ERROR(write_floats(*y, out));
  if (ctx.has_output(1)) KILN_RETURN_IF_ERROR(write_floats(ctx.allocate_output(1, {batch, channels, k - 1}), state));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "CausalConvWithState", run_causal_conv_with_state);

}  // namespace kiln
