// kiln.ExpandDepthwiseConv: its two FusedConv layers through FusedConv's own
// reference, the expanded tensor rounded to X's dtype between them, so the
// result is the unfused pair's to the bit.
#include "ops/expand_depthwise_conv.h"

#include <cstring>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/conv.h"

namespace kiln {
namespace {

Status run_expand_depthwise_conv(CpuKernelContext& ctx) {
  const Tensor& w2 = ctx.input(kEdW2);
  if (w2.rank() != 4) return invalid_model("kiln.ExpandDepthwiseConv: W2 must be [E, KH, KW, 1], is {}-D", w2.rank());
  const ExpandDepthwiseParts parts = expand_depthwise_parts(ctx.node(), w2.dim(0), nullptr);
  const Tensor* b1 = ctx.has_input(kEdB1) ? &ctx.input(kEdB1) : nullptr;
  const Tensor* b2 = ctx.has_input(kEdB2) ? &ctx.input(kEdB2) : nullptr;
  KILN_ASSIGN_OR_RETURN(Tensor e,
                        channels_last_fused_conv(parts.expand, ctx.input(kEdX), ctx.input(kEdW1), b1, nullptr));
  KILN_ASSIGN_OR_RETURN(Tensor y, channels_last_fused_conv(parts.depthwise, e, w2, b2, nullptr));
  Tensor& out = ctx.allocate_output(0, y.dims());
  std::memcpy(out.mutable_raw(), y.raw(), y.nbytes());
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("kiln", "ExpandDepthwiseConv", run_expand_depthwise_conv);

}  // namespace kiln
