// Unique (kernels/unique.cu) with its four outputs, sorted=0/1 and an
// optional axis. Its output dims depend on the data (the number of distinct
// slices): it declares the largest (every slice distinct) and stores the
// actual ones, which the executor reads back (a stream sync).
#include "backends/cuda/kernels/unique.cuh"

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/norm_op_util.h"
#include "ir/dtype.h"

namespace kiln::cuda {
namespace {

struct UniqueShape {
  int64_t outer = 1, slices = 0, inner = 1;
  int axis_dim = 0;
  std::vector<int64_t> y;  // Y's largest dims
};

Expected<UniqueShape> unique_shape(const Node& node, const std::vector<int64_t>& x) {
  UniqueShape s;
  if (!node.has_attr("axis")) {
    s.slices = dims_product(x, 0, x.size());
    s.y = {s.slices};
    return s;
  }
  KILN_ASSIGN_OR_RETURN(int64_t a, resolve_axis(node, node.attr_int("axis", 0), static_cast<int64_t>(x.size())));
  const auto au = static_cast<size_t>(a);
  s.outer = dims_product(x, 0, au), s.slices = x[au], s.inner = dims_product(x, au + 1, x.size());
  s.axis_dim = static_cast<int>(a);
  s.y = x;
  return s;
}

UniqueParams params_of(const Node& node, DType dtype, const UniqueShape& s) {
  UniqueParams p;
  p.dtype = dtype;
  p.outer = s.outer, p.slices = s.slices, p.inner = s.inner;
  p.sorted = node.attr_int("sorted", 1) != 0;
  p.y_rank = static_cast<int>(s.y.size()), p.axis_dim = s.axis_dim;
  for (size_t k = 0; k < s.y.size() && k < 8; ++k) p.y_dims[k] = s.y[k];
  return p;
}

Status supports_unique(const Node& node) {
  const DType t = input_dtype(node, 0);
  if (t == DType::kString || dtype_is_packed(t) || (!is_float(t) && !is_integer(t) && t != DType::kBool))
    return unsupported("Unique: dtype {} (the CUDA kernel takes numeric dtypes and bool)", dtype_name(t));
  return Status::ok();
}

Expected<std::vector<std::vector<int64_t>>> unique_bound(const KernelQuery& q) {
  KILN_ASSIGN_OR_RETURN(UniqueShape s, unique_shape(q.node(), *q.input_dims(0)));
  std::vector<std::vector<int64_t>> out{s.y, {s.slices}, {s.slices}, {s.slices}};
  out.resize(q.node().outputs.size());
  return out;
}

size_t unique_workspace(const KernelQuery& q) {
  auto s = unique_shape(q.node(), *q.input_dims(0));
  return s ? unique_workspace_bytes(params_of(q.node(), q.input_dtype(0), *s)) : 0;
}

Status run_unique(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(UniqueShape s, unique_shape(ctx.node(), x.dims));
  if (s.y.size() > 8) return unsupported("Unique: rank {} (the CUDA kernel takes up to 8)", s.y.size());
  UniqueParams p = params_of(ctx.node(), x.dtype, s);
  p.x = x.data;
  p.y = ctx.has_output(0) ? ctx.output(0).data : nullptr;
  p.indices = ctx.has_output(1) ? ctx.output(1).as<int64_t>() : nullptr;
  p.inverse = ctx.has_output(2) ? ctx.output(2).as<int64_t>() : nullptr;
  p.counts = ctx.has_output(3) ? ctx.output(3).as<int64_t>() : nullptr;
  p.out_dims = ctx.output_dims();
  p.outputs = static_cast<int>(ctx.num_outputs());
  p.workspace = ctx.workspace(), p.workspace_bytes = ctx.workspace_bytes();
  return launch_unique(p, ctx.stream());
}

}  // namespace

KILN_CUDA_KERNEL(
    "", "Unique",
    {.run = run_unique, .workspace = unique_workspace, .supports = supports_unique, .max_output_dims = unique_bound});

}  // namespace kiln::cuda
