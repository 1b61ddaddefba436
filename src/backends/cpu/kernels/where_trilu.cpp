// Where (broadcast select), Trilu (keep a triangle of each matrix) and
// EyeLike (ones on a diagonal).
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/index_util.h"
#include "backends/cpu/kernels/element_copy.h"
#include "ir/element_cast.h"

namespace kiln {
namespace {

Status run_where(CpuKernelContext& ctx) {
  const Tensor &cond = ctx.input(0), &x = ctx.input(1), &y = ctx.input(2);
  auto dims = ctx.inferred_dims(0);
  if (!dims) return internal_error("Where: output dims unknown at run time");
  Tensor& out = ctx.allocate_output(0, *dims);
  ElementCopier from_x(x, out), from_y(y, out);
  BroadcastWalker w(*dims, {broadcast_strides(cond.dims(), *dims), broadcast_strides(x.dims(), *dims),
                            broadcast_strides(y.dims(), *dims)});
  const auto* c = cond.data<uint8_t>();
  for (int64_t i = 0; i < out.numel(); ++i, w.next()) {
    if (c[w.offset(0)]) {
      from_x.copy(i, w.offset(1));
    } else {
      from_y.copy(i, w.offset(2));
    }
  }
  return Status::ok();
}

Status run_trilu(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  int64_t k = 0;
  if (ctx.has_input(1)) {
    if (ctx.input(1).numel() != 1) return invalid_argument("Trilu: k must have one element");
    KILN_ASSIGN_OR_RETURN(auto kv, ctx.input(1).to_i64_vector());
    k = kv[0];
  }
  const bool upper = ctx.node().attr_int("upper", 1) != 0;
  Tensor& out = ctx.allocate_output(0, in.dims());
  const int64_t rows = in.dims()[in.dims().size() - 2], cols = in.dims().back();
  const int64_t matrices = rows * cols != 0 ? in.numel() / (rows * cols) : 0;
  ElementCopier copy(in, out);
  for (int64_t m = 0; m < matrices; ++m)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        // Upper keeps c - r >= k; lower keeps c - r <= k.
        bool keep = upper ? c - r >= k : c - r <= k;
        if (keep) copy.copy((m * rows + r) * cols + c, (m * rows + r) * cols + c);
      }
  return Status::ok();
}

Status run_eye_like(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  if (in.rank() != 2) return invalid_argument("EyeLike: input must be 2-D, has rank {}", in.rank());
  const int64_t k = ctx.node().attr_int("k", 0), rows = in.dims()[0], cols = in.dims()[1];
  Tensor& out = ctx.allocate_output(0, in.dims());
  void* dst = out.mutable_raw();
  for (int64_t r = 0; r < rows; ++r)
    if (r + k >= 0 && r + k < cols) write_scalar(out.dtype(), dst, r * cols + r + k, Scalar::of_signed(1));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Where", run_where);
KILN_CPU_KERNEL("", "Trilu", run_trilu);
KILN_CPU_KERNEL("", "EyeLike", run_eye_like);

}  // namespace kiln
