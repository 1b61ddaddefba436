// Gather as [outer, axis_dim, inner] -> [outer, num_indices, inner]: one
// thread per output unit, where a unit is 16 bytes when every row of `inner`
// elements is a whole number of aligned 16-byte packs (the axis-0 embedding
// lookup of f16/bf16/f32 rows: fully coalesced 128-bit copies), else one
// element. Index loads switch on 32/64-bit at run time (uniform branch) to
// keep instantiations few.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/data_movement.cuh"

namespace kiln::cuda {
namespace {

template <typename U>
__global__ void gather_kernel(const U* __restrict__ data, const void* __restrict__ indices, bool idx64,
                              U* __restrict__ y, int64_t outer, int64_t axis_dim, int64_t num_indices, int64_t units,
                              int* out_of_range) {
  const int64_t n = outer * num_indices * units, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t row = i / units, u = i - row * units;
    const int64_t o = row / num_indices, j = row - o * num_indices;
    int64_t idx = idx64 ? static_cast<const int64_t*>(indices)[j] : static_cast<const int32_t*>(indices)[j];
    if (idx < 0) idx += axis_dim;
    if (idx < 0 || idx >= axis_dim) {
      if (out_of_range) *out_of_range = 1;
      y[i] = U{};
      continue;
    }
    y[i] = data[(o * axis_dim + idx) * units + u];
  }
}

template <typename U>
Status run_gather(const GatherParams& p, int64_t outer, int64_t axis_dim, int64_t units, cudaStream_t stream) {
  constexpr int kBlock = 256;
  const int64_t n = outer * p.num_indices * units;
  gather_kernel<U><<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<const U*>(p.data), p.indices,
                                                               p.index_dtype == DType::kI64, static_cast<U*>(p.y),
                                                               outer, axis_dim, p.num_indices, units, p.out_of_range);
  return last_launch_status("gather_kernel");
}

}  // namespace

Status launch_gather(const GatherParams& p, cudaStream_t stream) {
  const int64_t rank = static_cast<int64_t>(p.dims.size());
  if (p.axis < -rank || p.axis >= rank)
    return invalid_argument("gather: axis {} out of range for rank {}", p.axis, rank);
  if (p.index_dtype != DType::kI32 && p.index_dtype != DType::kI64)
    return invalid_argument("gather: indices of dtype {}; int32 or int64 expected", dtype_name(p.index_dtype));
  const size_t axis = static_cast<size_t>(p.axis < 0 ? p.axis + rank : p.axis);
  const int64_t outer = product(p.dims, 0, axis), inner = product(p.dims, axis + 1, p.dims.size());
  const int64_t axis_dim = p.dims[axis];
  if (outer * p.num_indices * inner == 0) return Status::ok();
  const int64_t row_bytes = inner * p.elem_size;
  if (row_bytes % 16 == 0 && aligned16(p.data) && aligned16(p.y))
    return run_gather<uint4>(p, outer, axis_dim, row_bytes / 16, stream);
  switch (p.elem_size) {
    case 1: return run_gather<uint8_t>(p, outer, axis_dim, inner, stream);
    case 2: return run_gather<uint16_t>(p, outer, axis_dim, inner, stream);
    case 4: return run_gather<uint32_t>(p, outer, axis_dim, inner, stream);
    case 8: return run_gather<uint64_t>(p, outer, axis_dim, inner, stream);
    default: return unsupported("gather: element size {} bytes", p.elem_size);
  }
}

}  // namespace kiln::cuda
