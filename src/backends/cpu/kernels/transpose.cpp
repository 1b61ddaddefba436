// Transpose: walks the output in order, reading the input through permuted strides.
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/index_util.h"
#include "backends/cpu/kernels/element_copy.h"

namespace kiln {
namespace {

Status run_transpose(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  auto rank = static_cast<size_t>(in.rank());
  std::vector<int64_t> perm = ctx.node().attr_ints("perm");
  if (perm.empty())
    for (size_t i = rank; i-- > 0;) perm.push_back(static_cast<int64_t>(i));
  std::vector<int64_t> in_strides = strides_of(in.dims()), out_dims, read_strides;
  for (int64_t p : perm) {
    auto axis = static_cast<size_t>(p < 0 ? p + static_cast<int64_t>(rank) : p);
    out_dims.push_back(in.dims()[axis]);
    read_strides.push_back(in_strides[axis]);
  }
  Tensor& out = ctx.allocate_output(0, out_dims);
  ElementCopier copy(in, out);
  BroadcastWalker w(out_dims, {read_strides});
  for (int64_t i = 0; i < out.numel(); ++i, w.next()) copy.copy(i, w.offset(0));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Transpose", run_transpose);

}  // namespace kiln
