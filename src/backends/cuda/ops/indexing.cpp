// Gather, GatherElements, GatherND, Scatter, ScatterElements, ScatterND and
// TensorScatter. Indices stay on the device (int32 or int64). An index out of
// range is the CPU kernel's error to report; here it reads 0 (gathers) or
// its update is skipped (scatters), never touching memory out of bounds.
#include "backends/cuda/kernels/indexing.cuh"

#include "backends/cuda/kernels/data_movement.cuh"
#include "backends/cuda/ops/data_movement_support.h"

namespace kiln::cuda {
namespace {

Status run_gather(KernelContext& ctx) {
  const DeviceTensor &data = ctx.input(0), &indices = ctx.input(1);
  GatherParams p;
  p.elem_size = dm::element_size(data.dtype);
  p.data = data.data;
  p.dims = data.dims;
  p.axis = ctx.node().attr_int("axis", 0);
  p.indices = indices.data;
  p.index_dtype = indices.dtype;
  p.num_indices = indices.numel();
  p.y = ctx.output(0).data;
  p.out_of_range = nullptr;  // out-of-range indices read 0 (see the file comment)
  return launch_gather(p, ctx.stream());
}

Status run_gather_elements(KernelContext& ctx) {
  const DeviceTensor &data = ctx.input(0), &indices = ctx.input(1);
  GatherElementsParams p;
  p.elem_size = dm::element_size(data.dtype);
  p.data = data.data;
  p.data_dims = data.dims;
  p.indices = indices.data;
  p.idx64 = dm::is_i64(indices);
  p.idx_dims = indices.dims;
  p.axis = dm::positive_axis(ctx.node().attr_int("axis", 0), data.rank());
  p.y = ctx.output(0).data;
  return launch_gather_elements(p, ctx.stream());
}

Status run_gather_nd(KernelContext& ctx) {
  const DeviceTensor &data = ctx.input(0), &indices = ctx.input(1);
  GatherNDParams p;
  p.elem_size = dm::element_size(data.dtype);
  p.data = data.data;
  p.data_dims = data.dims;
  p.indices = indices.data;
  p.idx64 = dm::is_i64(indices);
  p.idx_dims = indices.dims;
  p.batch_dims = ctx.node().attr_int("batch_dims", 0);
  p.y = ctx.output(0).data;
  return launch_gather_nd(p, ctx.stream());
}

Expected<ScatterReduction> reduction_of(const Node& node) {
  const std::string r = node.attr_string("reduction", "none");
  if (r == "none") return ScatterReduction::kNone;
  if (r == "add") return ScatterReduction::kAdd;
  if (r == "mul") return ScatterReduction::kMul;
  if (r == "max") return ScatterReduction::kMax;
  if (r == "min") return ScatterReduction::kMin;
  return unsupported("{}: reduction '{}'", node.op_type, r);
}

Status run_scatter_elements(KernelContext& ctx) {
  const DeviceTensor &data = ctx.input(0), &indices = ctx.input(1), &updates = ctx.input(2);
  if (indices.dims != updates.dims)
    return invalid_argument("{}: indices and updates differ in shape", ctx.node().op_type);
  ScatterElementsParams p;
  KILN_ASSIGN_OR_RETURN(p.reduction, reduction_of(ctx.node()));
  p.dtype = data.dtype;
  p.elem_size = dm::element_size(data.dtype);
  p.data = data.data;
  p.data_dims = data.dims;
  p.indices = indices.data;
  p.idx64 = dm::is_i64(indices);
  p.idx_dims = indices.dims;
  p.updates = updates.data;
  p.axis = dm::positive_axis(ctx.node().attr_int("axis", 0), data.rank());
  p.y = ctx.output(0).data;
  return launch_scatter_elements(p, ctx.stream());
}

Status run_scatter_nd(KernelContext& ctx) {
  const DeviceTensor &data = ctx.input(0), &indices = ctx.input(1), &updates = ctx.input(2);
  ScatterNDParams p;
  KILN_ASSIGN_OR_RETURN(p.reduction, reduction_of(ctx.node()));
  p.dtype = data.dtype;
  p.elem_size = dm::element_size(data.dtype);
  p.data = data.data;
  p.data_dims = data.dims;
  p.indices = indices.data;
  p.idx64 = dm::is_i64(indices);
  p.idx_dims = indices.dims;
  p.updates = updates.data;
  p.y = ctx.output(0).data;
  if (!indices.dims.empty() && indices.dims.back() <= data.rank()) {
    int64_t expected = 1;
    for (size_t i = 0; i + 1 < indices.dims.size(); ++i) expected *= indices.dims[i];
    for (size_t i = static_cast<size_t>(indices.dims.back()); i < data.dims.size(); ++i) expected *= data.dims[i];
    if (updates.numel() != expected)
      return invalid_argument("ScatterND: updates have {} elements, expected {}", updates.numel(), expected);
  }
  return launch_scatter_nd(p, ctx.stream());
}

Status run_tensor_scatter(KernelContext& ctx) {
  const DeviceTensor &cache = ctx.input(0), &update = ctx.input(1);
  TensorScatterParams p;
  p.elem_size = dm::element_size(cache.dtype);
  p.cache = cache.data;
  p.cache_dims = cache.dims;
  p.update = update.data;
  p.update_dims = update.dims;
  if (ctx.has_input(2)) {
    const DeviceTensor& write = ctx.input(2);
    if (cache.dims.empty() || write.numel() != cache.dims[0])
      return invalid_argument("TensorScatter: write_indices needs one entry per batch");
    p.write_indices = write.data;
    p.idx64 = dm::is_i64(write);
  }
  p.axis = dm::positive_axis(ctx.node().attr_int("axis", -2), cache.rank());
  p.circular = ctx.node().attr_string("mode", "linear") == "circular";
  p.y = ctx.output(0).data;
  return launch_tensor_scatter(p, ctx.stream());
}

Status supports_gather(const Node& n) { return dm::supports_movable_indexed(n, {1}, 8); }
Status supports_indexed(const Node& n) { return dm::supports_movable_indexed(n, {1}); }

Status supports_scatter(const Node& n) {
  KILN_ASSIGN_OR_RETURN(ScatterReduction r, reduction_of(n));
  if (r == ScatterReduction::kNone) return supports_indexed(n);
  KILN_RETURN_IF_ERROR(dm::supports_numeric(n, 0, /*with_bool=*/true));
  return dm::supports_index(n, 1);
}

Status supports_tensor_scatter(const Node& n) { return dm::supports_movable_indexed(n, {2}); }

}  // namespace

KILN_CUDA_KERNEL("", "Gather", {.run = run_gather, .supports = supports_gather});
KILN_CUDA_KERNEL("", "GatherElements", {.run = run_gather_elements, .supports = supports_indexed});
KILN_CUDA_KERNEL("", "GatherND", {.run = run_gather_nd, .supports = supports_indexed});
KILN_CUDA_KERNEL("", "Scatter", {.run = run_scatter_elements, .supports = supports_scatter});
KILN_CUDA_KERNEL("", "ScatterElements", {.run = run_scatter_elements, .supports = supports_scatter});
KILN_CUDA_KERNEL("", "ScatterND", {.run = run_scatter_nd, .supports = supports_scatter});
KILN_CUDA_KERNEL("", "TensorScatter", {.run = run_tensor_scatter, .supports = supports_tensor_scatter});

}  // namespace kiln::cuda
