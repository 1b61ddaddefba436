// Gather, GatherElements and GatherND. Every index is checked against its
// axis (negative ones count from the end); a bad index is an error naming it.
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/index_util.h"
#include "backends/cpu/kernels/element_copy.h"

namespace kiln {
namespace {

int64_t positive_axis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

Status run_gather(CpuKernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(auto indices, ctx.input(1).to_i64_vector());
  const auto axis = static_cast<size_t>(positive_axis(ctx.node().attr_int("axis", 0), data.rank()));
  const auto& d = data.dims();
  std::vector<int64_t> out_dims(d.begin(), d.begin() + static_cast<int64_t>(axis));
  out_dims.insert(out_dims.end(), ctx.input(1).dims().begin(), ctx.input(1).dims().end());
  out_dims.insert(out_dims.end(), d.begin() + static_cast<int64_t>(axis) + 1, d.end());
  Tensor& out = ctx.allocate_output(0, out_dims);
  const int64_t outer = dims_numel(d, 0, axis), inner = dims_numel(d, axis + 1, d.size()), n = d[axis];
  const auto count = static_cast<int64_t>(indices.size());
  for (int64_t& i : indices) {
    KILN_ASSIGN_OR_RETURN(i, checked_index(i, n, "Gather"));
  }
  ElementCopier copy(data, out);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < count; ++j) copy.copy((o * count + j) * inner, (o * n + indices[j]) * inner, inner);
  return Status::ok();
}

Status run_gather_elements(CpuKernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& idx_t = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(auto indices, idx_t.to_i64_vector());
  if (idx_t.rank() != data.rank())
    return invalid_argument("GatherElements: indices have rank {} but data rank {}", idx_t.rank(), data.rank());
  const auto axis = static_cast<size_t>(positive_axis(ctx.node().attr_int("axis", 0), data.rank()));
  Tensor& out = ctx.allocate_output(0, idx_t.dims());
  if (out.numel() == 0) return Status::ok();
  const std::vector<int64_t> strides = strides_of(data.dims());
  ElementCopier copy(data, out);
  std::vector<int64_t> index(idx_t.dims().size(), 0);
  int64_t i = 0;
  do {
    KILN_ASSIGN_OR_RETURN(int64_t at,
                          checked_index(indices[static_cast<size_t>(i)], data.dims()[axis], "GatherElements"));
    int64_t src = 0;
    for (size_t k = 0; k < index.size(); ++k) {
      if (k != axis && index[k] >= data.dims()[k])
        return invalid_argument("GatherElements: indices dim {} exceeds the data's {}", k, data.dims()[k]);
      src += (k == axis ? at : index[k]) * strides[k];
    }
    copy.copy(i++, src);
  } while (next_index(index, idx_t.dims()));
  return Status::ok();
}

Status run_gather_nd(CpuKernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& idx_t = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(auto indices, idx_t.to_i64_vector());
  const auto b = static_cast<size_t>(ctx.node().attr_int("batch_dims", 0));
  const auto& d = data.dims();
  const auto m = static_cast<size_t>(idx_t.dims().back());
  std::vector<int64_t> out_dims(idx_t.dims().begin(), idx_t.dims().end() - 1);
  out_dims.insert(out_dims.end(), d.begin() + static_cast<int64_t>(b + m), d.end());
  Tensor& out = ctx.allocate_output(0, out_dims);
  const int64_t batches = dims_numel(d, 0, b);
  const int64_t tuples = dims_numel(idx_t.dims(), b, idx_t.dims().size() - 1);
  const int64_t slice = dims_numel(d, b + m, d.size()), batch_stride = dims_numel(d, b, d.size());
  const std::vector<int64_t> strides = strides_of(d);
  ElementCopier copy(data, out);
  for (int64_t bi = 0; bi < batches; ++bi) {
    for (int64_t t = 0; t < tuples; ++t) {
      const int64_t* tuple = indices.data() + (bi * tuples + t) * static_cast<int64_t>(m);
      int64_t src = bi * batch_stride;
      for (size_t k = 0; k < m; ++k) {
        KILN_ASSIGN_OR_RETURN(int64_t at, checked_index(tuple[k], d[b + k], "GatherND"));
        src += at * strides[b + k];
      }
      copy.copy((bi * tuples + t) * slice, src, slice);
    }
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Gather", run_gather);
KILN_CPU_KERNEL("", "GatherElements", run_gather_elements);
KILN_CPU_KERNEL("", "GatherND", run_gather_nd);

}  // namespace kiln
