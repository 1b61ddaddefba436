// NonZero and Compress (kernels/select.cu): their output dims depend on the
// data, so each declares its largest outputs (`max_output_dims`); the run
// stores the kept count on the device and the executor reads it back (a
// stream sync) before planning the layers after it.
#include "backends/cuda/kernels/select.cuh"

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/norm_op_util.h"
#include "ir/dtype.h"

namespace kiln::cuda {
namespace {

int64_t numel_of(const std::vector<int64_t>& d) { return dims_product(d, 0, d.size()); }

Status supports_nonzero(const Node& node) {
  const DType t = input_dtype(node, 0);
  if (t == DType::kString || dtype_is_packed(t) || dtype_bits(t) > 64 ||
      (!is_float(t) && !is_integer(t) && t != DType::kBool))
    return unsupported("NonZero: dtype {} (the CUDA kernel takes numeric dtypes and bool)", dtype_name(t));
  return Status::ok();
}

// [rank, elements]: every element kept (a scalar counts as rank 1).
Expected<std::vector<std::vector<int64_t>>> nonzero_bound(const KernelQuery& q) {
  const std::vector<int64_t>& x = *q.input_dims(0);
  return std::vector<std::vector<int64_t>>{{std::max<int64_t>(static_cast<int64_t>(x.size()), 1), numel_of(x)}};
}

Status run_nonzero(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  NonZeroParams p;
  p.dtype = x.dtype, p.x = x.data, p.n = x.numel();
  p.rank = std::max<int>(static_cast<int>(x.rank()), 1);
  if (p.rank > 8) return unsupported("NonZero: rank {} (the CUDA kernel takes up to 8)", p.rank);
  for (int k = 0; k < p.rank; ++k) p.dims[k] = x.rank() ? x.dims[static_cast<size_t>(k)] : 1;
  p.y = ctx.output(0).as<int64_t>();
  p.out_dims = ctx.output_dims();
  p.workspace = ctx.workspace(), p.workspace_bytes = ctx.workspace_bytes();
  return launch_nonzero(p, ctx.stream());
}

// Compress's layout: x as [outer, axis, inner], the condition entries used,
// and the output's dims with all of them kept.
struct CompressShape {
  int64_t outer = 1, axis = 0, inner = 1, conditions = 0;
  int axis_dim = 0;
  std::vector<int64_t> largest;
};

Expected<CompressShape> compress_shape(const Node& node, const std::vector<int64_t>& x, int64_t condition_entries) {
  CompressShape s;
  if (!node.has_attr("axis")) {
    // Flattened input; a longer condition's extra entries are ignored.
    s.axis = numel_of(x);
    s.conditions = std::min(s.axis, condition_entries);
    s.largest = {s.conditions};
    return s;
  }
  const auto rank = static_cast<int64_t>(x.size());
  KILN_ASSIGN_OR_RETURN(int64_t a, resolve_axis(node, node.attr_int("axis", 0), rank));
  const auto au = static_cast<size_t>(a);
  s.axis = x[au];
  if (condition_entries > s.axis)
    return invalid_argument("Compress: condition has {} entries for an axis of {}", condition_entries, s.axis);
  s.outer = dims_product(x, 0, au), s.inner = dims_product(x, au + 1, x.size());
  s.conditions = condition_entries;
  s.axis_dim = static_cast<int>(a);
  s.largest = x;
  s.largest[au] = condition_entries;
  return s;
}

Status supports_compress(const Node& node) {
  const DType t = input_dtype(node, 0), c = input_dtype(node, 1);
  if (t == DType::kString || dtype_is_packed(t))
    return unsupported("Compress: dtype {} (the CUDA kernel takes whole-byte elements)", dtype_name(t));
  if (c != DType::kBool) return unsupported("Compress: condition of dtype {} (must be bool)", dtype_name(c));
  return Status::ok();
}

Expected<std::vector<std::vector<int64_t>>> compress_bound(const KernelQuery& q) {
  KILN_ASSIGN_OR_RETURN(CompressShape s, compress_shape(q.node(), *q.input_dims(0), numel_of(*q.input_dims(1))));
  return std::vector<std::vector<int64_t>>{s.largest};
}

Status run_compress(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &cond = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(CompressShape s, compress_shape(ctx.node(), x.dims, cond.numel()));
  CompressParams p;
  p.elem_size = static_cast<int>(dtype_storage_bytes(x.dtype, 1));
  p.x = x.data, p.condition = cond.as<uint8_t>();
  p.conditions = s.conditions, p.outer = s.outer, p.axis = s.axis, p.inner = s.inner;
  p.y = ctx.output(0).data;
  p.out_dims = ctx.output_dims();
  p.rank = static_cast<int>(s.largest.size()), p.axis_dim = s.axis_dim;
  if (p.rank > 8) return unsupported("Compress: rank {} (the CUDA kernel takes up to 8)", p.rank);
  for (int k = 0; k < p.rank; ++k) p.y_dims[k] = s.largest[static_cast<size_t>(k)];
  p.workspace = ctx.workspace(), p.workspace_bytes = ctx.workspace_bytes();
  return launch_compress(p, ctx.stream());
}

}  // namespace

KILN_CUDA_KERNEL("", "NonZero",
                 {.run = run_nonzero,
                  .workspace = [](const KernelQuery& q) { return nonzero_workspace_bytes(numel_of(*q.input_dims(0))); },
                  .supports = supports_nonzero,
                  .max_output_dims = nonzero_bound});
KILN_CUDA_KERNEL("", "Compress",
                 {.run = run_compress,
                  .workspace = [](const KernelQuery& q) -> size_t {
                    auto s = compress_shape(q.node(), *q.input_dims(0), numel_of(*q.input_dims(1)));
                    return s ? compress_workspace_bytes(s->conditions) : 0;
                  },
                  .supports = supports_compress,
                  .max_output_dims = compress_bound});

}  // namespace kiln::cuda
