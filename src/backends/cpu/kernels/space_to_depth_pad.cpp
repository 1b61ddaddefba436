// kiln.SpaceToDepthPad (ops/space_to_depth_pad.h): X cast to `to` as Cast
// does (ir/element_cast.h), then each element copied to its block channel;
// the output starts zero-filled, which gives the pads and the padding channels.
#include "ops/space_to_depth_pad.h"

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/element_copy.h"
#include "ir/element_cast.h"

namespace kiln {
namespace {

Status run_space_to_depth_pad(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(SpaceToDepthPadAttrs a, space_to_depth_pad_attrs(ctx.node(), x.dtype()));
  KILN_ASSIGN_OR_RETURN(auto dims, space_to_depth_pad_dims(a, x.dims()));
  const DType to = ctx.output_dtype(0);
  Tensor cast;
  if (to != x.dtype()) {
    KILN_ASSIGN_OR_RETURN(cast, cast_tensor(x, to));
  }
  const Tensor& src = to != x.dtype() ? cast : x;
  Tensor& y = ctx.allocate_output(0, {dims[0], dims[1], dims[2], dims[3]});
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t hb = dims[1], wb = dims[2], cc = a.channels;
  ElementCopier copy(src, y);
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t yi = 0; yi < h; ++yi)
        for (int64_t xi = 0; xi < w; ++xi) {
          // The padded row and column (inside 2 * hb and 2 * wb, as the dims check
          // made sure), each a block and a phase within it.
          const int64_t py = yi + a.top, px = xi + a.left;
          const int64_t channel = ((py % 2) * 2 + px % 2) * cc + ci;
          copy.copy(((ni * hb + py / 2) * wb + px / 2) * 4 * cc + channel, ((ni * c + ci) * h + yi) * w + xi);
        }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("kiln", "SpaceToDepthPad", run_space_to_depth_pad);

}  // namespace kiln
