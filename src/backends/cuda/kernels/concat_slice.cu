// Concat: each input is a [outer, len_i * inner] block of rows copied into
// its column range of the output by one cudaMemcpy2DAsync (the copy engine's
// pitched copy; no kernel). Slice: one thread per output element computes
// its source offset from per-dim start/step (any steps, negative included).
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/data_movement.cuh"

namespace kiln::cuda {
namespace {

struct SliceGeometry {
  int rank;
  int64_t out_dims[kMaxRank];
  int64_t in_strides[kMaxRank];  // x stride times step, per dim
  int64_t base;                  // x offset of the first output element
};

template <typename E>
__global__ void slice_kernel(const E* __restrict__ x, E* __restrict__ y, int64_t n, SliceGeometry g) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t rest = i, off = g.base;
    for (int d = g.rank - 1; d >= 0; --d) {
      off += rest % g.out_dims[d] * g.in_strides[d];
      rest /= g.out_dims[d];
    }
    y[i] = x[off];
  }
}

}  // namespace

Status launch_concat(const ConcatParams& p, cudaStream_t stream) {
  if (p.inputs.empty() || p.inputs.size() != p.dims.size())
    return invalid_argument("concat: {} inputs with {} shapes", p.inputs.size(), p.dims.size());
  const int64_t rank = static_cast<int64_t>(p.dims[0].size());
  if (p.axis < -rank || p.axis >= rank)
    return invalid_argument("concat: axis {} out of range for rank {}", p.axis, rank);
  const size_t axis = static_cast<size_t>(p.axis < 0 ? p.axis + rank : p.axis);
  const int64_t outer = product(p.dims[0], 0, axis), inner = product(p.dims[0], axis + 1, p.dims[0].size());
  int64_t total = 0;
  for (const auto& d : p.dims) {
    if (d.size() != p.dims[0].size()) return invalid_argument("concat: inputs of ranks {} and {}", d.size(), rank);
    for (size_t i = 0; i < d.size(); ++i)
      if (i != axis && d[i] != p.dims[0][i])
        return invalid_argument("concat: dim {} is {} in one input and {} in another", i, d[i], p.dims[0][i]);
    total += d[axis];
  }
  const size_t es = static_cast<size_t>(p.elem_size);
  const size_t out_pitch = static_cast<size_t>(total * inner) * es;
  size_t offset = 0;
  for (size_t k = 0; k < p.inputs.size(); ++k) {
    const size_t width = static_cast<size_t>(p.dims[k][axis] * inner) * es;
    if (width > 0 && outer > 0 && (outer == 1 || width == out_pitch)) {
      // Contiguous destination: a plain copy (pitched copies limit the pitch).
      KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(static_cast<char*>(p.y) + offset, p.inputs[k],
                                                width * static_cast<size_t>(outer), cudaMemcpyDeviceToDevice, stream));
    } else if (width > 0 && outer > 0) {
      KILN_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(static_cast<char*>(p.y) + offset, out_pitch, p.inputs[k], width,
                                                  width, static_cast<size_t>(outer), cudaMemcpyDeviceToDevice, stream));
    }
    offset += width;
  }
  return Status::ok();
}

Status launch_slice(const SliceParams& p, cudaStream_t stream) {
  const size_t rank = p.dims.size();
  if (p.starts.size() != rank || p.steps.size() != rank || p.out_dims.size() != rank)
    return invalid_argument("slice: starts/steps/out_dims must have one entry per dim ({})", rank);
  if (rank > static_cast<size_t>(kMaxRank))
    return unsupported("slice: rank {} (the CUDA kernel takes up to {})", rank, kMaxRank);
  const int64_t n = product(p.out_dims, 0, rank);
  if (n == 0) return Status::ok();
  SliceGeometry g{};
  g.rank = static_cast<int>(rank);
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    const int64_t last = p.starts[d] + (p.out_dims[d] - 1) * p.steps[d];
    if (p.starts[d] < 0 || p.starts[d] >= p.dims[d] || last < 0 || last >= p.dims[d])
      return invalid_argument("slice: dim {} reads [{}, {}] of {}", d, p.starts[d], last, p.dims[d]);
    g.out_dims[d] = p.out_dims[d];
    g.in_strides[d] = stride * p.steps[d];
    g.base += stride * p.starts[d];
    stride *= p.dims[d];
  }
  constexpr int kBlock = 256;
  const unsigned grid = grid_for(n, kBlock);
  switch (p.elem_size) {
    case 1:
      slice_kernel<uint8_t>
          <<<grid, kBlock, 0, stream>>>(static_cast<const uint8_t*>(p.x), static_cast<uint8_t*>(p.y), n, g);
      break;
    case 2:
      slice_kernel<uint16_t>
          <<<grid, kBlock, 0, stream>>>(static_cast<const uint16_t*>(p.x), static_cast<uint16_t*>(p.y), n, g);
      break;
    case 4:
      slice_kernel<uint32_t>
          <<<grid, kBlock, 0, stream>>>(static_cast<const uint32_t*>(p.x), static_cast<uint32_t*>(p.y), n, g);
      break;
    case 8:
      slice_kernel<uint64_t>
          <<<grid, kBlock, 0, stream>>>(static_cast<const uint64_t*>(p.x), static_cast<uint64_t*>(p.y), n, g);
      break;
    default: return unsupported("slice: element size {} bytes", p.elem_size);
  }
  return last_launch_status("slice_kernel");
}

}  // namespace kiln::cuda
