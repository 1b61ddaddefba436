// Concat and Split: each input (output) is a run of `axis dim * inner`
// elements per outer index, placed side by side.
#include <numeric>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/element_copy.h"

namespace kiln {
namespace {

int64_t positive_axis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

Status run_concat(CpuKernelContext& ctx) {
  auto dims = ctx.inferred_dims(0);
  if (!dims) return internal_error("Concat: output dims unknown at run time");
  const auto rank = static_cast<int64_t>(dims->size());
  const auto axis = static_cast<size_t>(positive_axis(ctx.node().attr_int("axis", 0), rank));
  Tensor& out = ctx.allocate_output(0, *dims);
  const int64_t outer = dims_numel(*dims, 0, axis), inner = dims_numel(*dims, axis + 1, dims->size());
  const int64_t out_row = (*dims)[axis] * inner;
  int64_t offset = 0;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const Tensor& in = ctx.input(i);
    if (in.rank() != rank) return invalid_argument("Concat: input {} has rank {}, expected {}", i, in.rank(), rank);
    const int64_t row = in.dims()[axis] * inner;
    ElementCopier copy(in, out);
    for (int64_t o = 0; o < outer; ++o) copy.copy(o * out_row + offset, o * row, row);
    offset += row;
  }
  return Status::ok();
}

Status run_split(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  const auto axis = static_cast<size_t>(positive_axis(ctx.node().attr_int("axis", 0), in.rank()));
  const int64_t outer = dims_numel(in.dims(), 0, axis), inner = dims_numel(in.dims(), axis + 1, in.dims().size());
  const int64_t in_row = in.dims()[axis] * inner;
  int64_t offset = 0;
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    auto dims = ctx.inferred_dims(i);
    if (!dims)
      return invalid_argument("Split: cannot split a dim of {} into {} outputs", in.dims()[axis], ctx.num_outputs());
    const int64_t row = (*dims)[axis] * inner;
    if (ctx.has_output(i)) {
      Tensor& out = ctx.allocate_output(i, *dims);
      ElementCopier copy(in, out);
      for (int64_t o = 0; o < outer; ++o) copy.copy(o * row, o * in_row + offset, row);
    }
    offset += row;
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Concat", run_concat);
KILN_CPU_KERNEL("", "Split", run_split);

}  // namespace kiln
