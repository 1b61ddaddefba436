// Slice: each output index reads input[start + index * step] per axis, so the
// output walks the input with strides scaled by the steps.
#include <algorithm>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/index_util.h"
#include "backends/cpu/kernels/element_copy.h"

namespace kiln {
namespace {

Expected<std::vector<int64_t>> ints_of(const CpuKernelContext& ctx, size_t i) {
  KILN_ASSIGN_OR_RETURN(auto v, ctx.input(i).to_i64_vector());
  return v;
}

Status run_slice(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  const auto rank = static_cast<size_t>(in.rank());
  KILN_ASSIGN_OR_RETURN(auto starts, ints_of(ctx, 1));
  KILN_ASSIGN_OR_RETURN(auto ends, ints_of(ctx, 2));
  std::vector<int64_t> axes, steps(starts.size(), 1);
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(axes, ints_of(ctx, 3));
  } else {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (ctx.has_input(4)) {
    KILN_ASSIGN_OR_RETURN(steps, ints_of(ctx, 4));
  }
  std::vector<int64_t> first(rank, 0), step(rank, 1), out_dims = in.dims();
  for (size_t i = 0; i < starts.size(); ++i) {
    auto axis = static_cast<size_t>(axes[i] < 0 ? axes[i] + static_cast<int64_t>(rank) : axes[i]);
    const int64_t dim = in.dims()[axis], s = steps[i];
    int64_t b = starts[i] < 0 ? starts[i] + dim : starts[i], e = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (s > 0) {
      b = std::clamp<int64_t>(b, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      out_dims[axis] = std::max<int64_t>(0, (e - b + s - 1) / s);
    } else if (dim == 0) {
      out_dims[axis] = 0;
    } else {
      b = std::clamp<int64_t>(b, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      out_dims[axis] = std::max<int64_t>(0, (b - e - s - 1) / -s);
    }
    first[axis] = b;
    step[axis] = s;
  }
  Tensor& out = ctx.allocate_output(0, out_dims);
  if (out.numel() == 0) return Status::ok();
  std::vector<int64_t> strides = strides_of(in.dims()), read(rank);
  int64_t base = 0;
  for (size_t k = 0; k < rank; ++k) {
    base += first[k] * strides[k];
    read[k] = strides[k] * step[k];
  }
  ElementCopier copy(in, out);
  BroadcastWalker w(out_dims, {read});
  for (int64_t i = 0; i < out.numel(); ++i, w.next()) copy.copy(i, base + w.offset(0));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Slice", run_slice);

}  // namespace kiln
