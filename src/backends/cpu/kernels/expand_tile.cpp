// Expand (numpy broadcast of the input to a shape) and Tile (repeats).
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/index_util.h"
#include "backends/cpu/kernels/element_copy.h"

namespace kiln {
namespace {

Status run_expand(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  auto dims = ctx.inferred_dims(0);
  if (!dims) return internal_error("Expand: output dims unknown at run time");
  Tensor& out = ctx.allocate_output(0, *dims);
  ElementCopier copy(in, out);
  BroadcastWalker w(*dims, {broadcast_strides(in.dims(), *dims)});
  for (int64_t i = 0; i < out.numel(); ++i, w.next()) copy.copy(i, w.offset(0));
  return Status::ok();
}

Status run_tile(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  auto dims = ctx.inferred_dims(0);
  if (!dims) return internal_error("Tile: output dims unknown at run time");
  Tensor& out = ctx.allocate_output(0, *dims);
  if (out.numel() == 0) return Status::ok();
  ElementCopier copy(in, out);
  const std::vector<int64_t> strides = strides_of(in.dims());
  std::vector<int64_t> index(dims->size(), 0);
  int64_t i = 0;
  do {
    int64_t src = 0;
    for (size_t k = 0; k < index.size(); ++k) src += (index[k] % in.dims()[k]) * strides[k];
    copy.copy(i++, src);
  } while (next_index(index, *dims));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Expand", run_expand);
KILN_CPU_KERNEL("", "Tile", run_tile);

}  // namespace kiln
