// GatherElements, GatherND and OneHot as index maps (index_map.cuh); the
// scatters copy data to y and then apply the updates. Out-of-range indices
// (reported by the CPU kernel) read 0 / skip the update: nothing here reads
// or writes outside a tensor.
#include "backends/cuda/kernels/index_map.cuh"
#include "backends/cuda/kernels/indexing.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

Status check_rank(const char* op, size_t rank) {
  if (rank > static_cast<size_t>(kMaxRank))
    return unsupported("{}: rank {} (the CUDA kernel takes up to {})", op, rank, kMaxRank);
  return Status::ok();
}

void row_major_strides(const std::vector<int64_t>& dims, int64_t* strides) {
  int64_t s = 1;
  for (size_t d = dims.size(); d-- > 0;) strides[d] = s, s *= dims[d];
}

struct GatherElementsMap {
  int rank, axis;
  int64_t idx_dims[kMaxRank], data_strides[kMaxRank], axis_dim;
  const void* indices;
  bool idx64;
  __device__ int64_t operator()(int64_t i) const {
    const int64_t at = wrap_index(load_index(indices, idx64, i), axis_dim);
    if (at < 0) return kFill;
    int64_t rest = i, off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t c = rest % idx_dims[d];
      rest /= idx_dims[d];
      off += (d == axis ? at : c) * data_strides[d];
    }
    return off;
  }
};

// Output element i = (tuple q, element r of the slice); q's batch is q / tuples.
struct GatherNDMap {
  int m;
  int64_t tuples, slice, batch_stride;
  int64_t dims[kMaxRank], strides[kMaxRank];  // of the m indexed data dims
  const void* indices;
  bool idx64;
  __device__ int64_t operator()(int64_t i) const {
    const int64_t q = i / slice;
    int64_t off = q / tuples * batch_stride + i % slice;
    for (int k = 0; k < m; ++k) {
      const int64_t at = wrap_index(load_index(indices, idx64, q * m + k), dims[k]);
      if (at < 0) return kFill;
      off += at * strides[k];
    }
    return off;
  }
};

struct OneHotMap {
  int64_t depth, inner;
  const void* indices;
  DType index_dtype;
  __device__ int64_t operator()(int64_t i) const {
    const int64_t d = i / inner % depth, j = i / (inner * depth) * inner + i % inner;
    const double v = load_as_double(indices, index_dtype, j);
    // As the CPU: truncate through int64 (values beyond it select nothing here).
    if (!(v > -9.2e18 && v < 9.2e18)) return kFill;
    int64_t at = static_cast<int64_t>(v);
    if (at < 0) at += depth;
    return at == d ? kFillAlt : kFill;
  }
};

// o = reduce(o, u) as the CPU computes it (in float for 16-bit floats; max
// and min as std::max / std::min, so a NaN in `u` is ignored by max).
template <typename T, ScatterReduction R>
__device__ __forceinline__ void reduce_into(T& o, T u) {
  if constexpr (R == ScatterReduction::kNone) {
    o = u;
  } else {
    using C = compute_of<T>;
    const C a = load_c(o), b = load_c(u);
    C r;
    if constexpr (R == ScatterReduction::kAdd)
      r = static_cast<C>(a + b);
    else if constexpr (R == ScatterReduction::kMul)
      r = static_cast<C>(a * b);
    else if constexpr (R == ScatterReduction::kMax)
      r = a < b ? b : a;
    else
      r = b < a ? b : a;
    o = store_c<T>(r);
  }
}

struct LineGeometry {
  int rank, axis;
  int64_t idx_dims[kMaxRank], idx_strides[kMaxRank], data_strides[kMaxRank], data_axis_dim;
};

template <typename T, ScatterReduction R>
__global__ void scatter_elements_kernel(T* __restrict__ y, const void* __restrict__ indices, bool idx64,
                                        const T* __restrict__ updates, int64_t lines, LineGeometry g) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t len = g.idx_dims[g.axis], idx_step = g.idx_strides[g.axis], data_step = g.data_strides[g.axis];
  for (int64_t line = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; line < lines; line += stride) {
    int64_t rest = line, idx_off = 0, data_off = 0;
    for (int d = g.rank - 1; d >= 0; --d) {
      if (d == g.axis) continue;
      const int64_t c = rest % g.idx_dims[d];
      rest /= g.idx_dims[d];
      idx_off += c * g.idx_strides[d];
      data_off += c * g.data_strides[d];
    }
    for (int64_t j = 0; j < len; ++j, idx_off += idx_step) {
      const int64_t at = wrap_index(load_index(indices, idx64, idx_off), g.data_axis_dim);
      if (at >= 0) reduce_into<T, R>(y[data_off + at * data_step], updates[idx_off]);
    }
  }
}

struct TupleGeometry {
  int k;
  int64_t dims[kMaxRank], strides[kMaxRank];
};

// Offset of tuple q's slice in y, or -1 for an index out of range.
__device__ __forceinline__ int64_t tuple_offset(const void* indices, bool idx64, int64_t q, const TupleGeometry& g) {
  int64_t off = 0;
  for (int j = 0; j < g.k; ++j) {
    const int64_t at = wrap_index(load_index(indices, idx64, q * g.k + j), g.dims[j]);
    if (at < 0) return -1;
    off += at * g.strides[j];
  }
  return off;
}

template <typename E>
__global__ void scatter_nd_write_kernel(E* __restrict__ y, const void* __restrict__ indices, bool idx64,
                                        const E* __restrict__ updates, int64_t tuples, int64_t run, TupleGeometry g) {
  const int64_t n = tuples * run, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t off = tuple_offset(indices, idx64, i / run, g);
    if (off >= 0) y[off + i % run] = updates[i];
  }
}

template <typename T, ScatterReduction R>
__global__ void scatter_nd_reduce_kernel(T* __restrict__ y, const void* __restrict__ indices, bool idx64,
                                         const T* __restrict__ updates, int64_t tuples, int64_t run, TupleGeometry g) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < run; r += stride)
    for (int64_t q = 0; q < tuples; ++q) {
      const int64_t off = tuple_offset(indices, idx64, q, g);
      if (off >= 0) reduce_into<T, R>(y[off + r], updates[q * run + r]);
    }
}

template <typename E>
__global__ void tensor_scatter_kernel(E* __restrict__ y, const E* __restrict__ update, const void* write, bool idx64,
                                      int64_t n, int64_t inner, int64_t seq, int64_t max_seq, int64_t per_batch,
                                      bool circular) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t e = i % inner, s = i / inner % seq, p = i / (inner * seq);
    const int64_t batch = per_batch ? p / per_batch : 0;
    int64_t at = (write ? load_index(write, idx64, batch) : 0) + s;
    if (circular) at %= max_seq;
    if (at < 0 || at >= max_seq) continue;  // the CPU reports this position
    y[(p * max_seq + at) * inner + e] = update[i];
  }
}

template <typename T>
Status launch_scatter_elements_as(const ScatterElementsParams& p, int64_t lines, const LineGeometry& g,
                                  cudaStream_t stream) {
  T* y = static_cast<T*>(p.y);
  const T* u = static_cast<const T*>(p.updates);
  const unsigned grid = grid_for(lines, kBlock);
#define KILN_SCATTER_CASE(r) \
  case r: scatter_elements_kernel<T, r><<<grid, kBlock, 0, stream>>>(y, p.indices, p.idx64, u, lines, g); break;
  switch (p.reduction) {
    case ScatterReduction::kNone:
      return internal_error("scatter_elements: 'none' takes the element-size kernel");
      KILN_SCATTER_CASE(ScatterReduction::kAdd)
      KILN_SCATTER_CASE(ScatterReduction::kMul)
      KILN_SCATTER_CASE(ScatterReduction::kMax)
      KILN_SCATTER_CASE(ScatterReduction::kMin)
  }
#undef KILN_SCATTER_CASE
  return last_launch_status("scatter_elements_kernel");
}

template <typename T>
Status launch_scatter_nd_reduce_as(const ScatterNDParams& p, int64_t tuples, int64_t run, const TupleGeometry& g,
                                   cudaStream_t stream) {
  T* y = static_cast<T*>(p.y);
  const T* u = static_cast<const T*>(p.updates);
  const unsigned grid = grid_for(run, kBlock);
#define KILN_SCATTER_CASE(r) \
  case r: scatter_nd_reduce_kernel<T, r><<<grid, kBlock, 0, stream>>>(y, p.indices, p.idx64, u, tuples, run, g); break;
  switch (p.reduction) {
    KILN_SCATTER_CASE(ScatterReduction::kAdd)
    KILN_SCATTER_CASE(ScatterReduction::kMul)
    KILN_SCATTER_CASE(ScatterReduction::kMax)
    KILN_SCATTER_CASE(ScatterReduction::kMin)
    case ScatterReduction::kNone: return internal_error("scatter_nd: 'none' takes the parallel write kernel");
  }
#undef KILN_SCATTER_CASE
  return last_launch_status("scatter_nd_reduce_kernel");
}

Status copy_data(void* y, const void* data, size_t bytes, cudaStream_t stream) {
  if (bytes == 0 || y == data) return Status::ok();
  return to_status(cudaMemcpyAsync(y, data, bytes, cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync (scatter data)");
}

}  // namespace

Status launch_gather_elements(const GatherElementsParams& p, cudaStream_t stream) {
  const size_t rank = p.data_dims.size();
  if (p.idx_dims.size() != rank || p.axis < 0 || p.axis >= static_cast<int64_t>(rank))
    return invalid_argument("GatherElements: indices rank {} for data rank {}, axis {}", p.idx_dims.size(), rank,
                            p.axis);
  KILN_RETURN_IF_ERROR(check_rank("GatherElements", rank));
  for (size_t d = 0; d < rank; ++d)
    if (static_cast<int64_t>(d) != p.axis && p.idx_dims[d] > p.data_dims[d])
      return invalid_argument("GatherElements: indices dim {} is {}, exceeding the data's {}", d, p.idx_dims[d],
                              p.data_dims[d]);
  const int64_t n = product(p.idx_dims, 0, rank);
  if (n == 0) return Status::ok();
  GatherElementsMap m{};
  m.rank = static_cast<int>(rank);
  m.axis = static_cast<int>(p.axis);
  m.axis_dim = p.data_dims[static_cast<size_t>(p.axis)];
  row_major_strides(p.data_dims, m.data_strides);
  for (size_t d = 0; d < rank; ++d) m.idx_dims[d] = p.idx_dims[d];
  m.indices = p.indices;
  m.idx64 = p.idx64;
  return launch_map_copy(p.elem_size, p.data, p.y, n, m, "gather_elements_kernel", {}, {}, stream);
}

Status launch_gather_nd(const GatherNDParams& p, cudaStream_t stream) {
  const size_t rank = p.data_dims.size(), b = static_cast<size_t>(p.batch_dims);
  if (p.idx_dims.empty() || p.batch_dims < 0 || b >= p.idx_dims.size() || b > rank)
    return invalid_argument("GatherND: batch_dims {} for indices of rank {}", p.batch_dims, p.idx_dims.size());
  const size_t m = static_cast<size_t>(p.idx_dims.back());
  if (b + m > rank) return invalid_argument("GatherND: tuples of {} after {} batch dims exceed rank {}", m, b, rank);
  KILN_RETURN_IF_ERROR(check_rank("GatherND", rank));
  GatherNDMap g{};
  g.m = static_cast<int>(m);
  g.tuples = product(p.idx_dims, b, p.idx_dims.size() - 1);
  g.slice = product(p.data_dims, b + m, rank);
  g.batch_stride = product(p.data_dims, b, rank);
  int64_t strides[kMaxRank];
  row_major_strides(p.data_dims, strides);
  for (size_t k = 0; k < m; ++k) g.dims[k] = p.data_dims[b + k], g.strides[k] = strides[b + k];
  g.indices = p.indices;
  g.idx64 = p.idx64;
  const int64_t n = product(p.data_dims, 0, b) * g.tuples * g.slice;
  if (n == 0) return Status::ok();
  return launch_map_copy(p.elem_size, p.data, p.y, n, g, "gather_nd_kernel", {}, {}, stream);
}

Status launch_one_hot(const OneHotParams& p, cudaStream_t stream) {
  const size_t rank = p.idx_dims.size();
  if (p.axis < 0 || p.axis > static_cast<int64_t>(rank) || p.depth < 0)
    return invalid_argument("OneHot: axis {} for indices of rank {}, depth {}", p.axis, rank, p.depth);
  switch (p.index_dtype) {
    case DType::kF32:
    case DType::kF64:
    case DType::kF16:
    case DType::kBF16:
    case DType::kI8:
    case DType::kI16:
    case DType::kI32:
    case DType::kI64:
    case DType::kU8:
    case DType::kU16:
    case DType::kU32:
    case DType::kU64: break;
    default: return unsupported("OneHot: indices of dtype {}", dtype_name(p.index_dtype));
  }
  const int64_t n = product(p.idx_dims, 0, rank) * p.depth;
  if (n == 0) return Status::ok();
  const OneHotMap m{p.depth, product(p.idx_dims, static_cast<size_t>(p.axis), rank), p.indices, p.index_dtype};
  return launch_map_copy(p.elem_size, nullptr, p.y, n, m, "one_hot_kernel", p.off, p.on, stream);
}

Status launch_scatter_elements(const ScatterElementsParams& p, cudaStream_t stream) {
  const size_t rank = p.data_dims.size();
  if (p.idx_dims.size() != rank || p.axis < 0 || p.axis >= static_cast<int64_t>(rank))
    return invalid_argument("ScatterElements: indices rank {} for data rank {}, axis {}", p.idx_dims.size(), rank,
                            p.axis);
  KILN_RETURN_IF_ERROR(check_rank("ScatterElements", rank));
  for (size_t d = 0; d < rank; ++d)
    if (static_cast<int64_t>(d) != p.axis && p.idx_dims[d] > p.data_dims[d])
      return invalid_argument("ScatterElements: indices dim {} is {}, exceeding the data's {}", d, p.idx_dims[d],
                              p.data_dims[d]);
  KILN_RETURN_IF_ERROR(
      copy_data(p.y, p.data, static_cast<size_t>(product(p.data_dims, 0, rank) * p.elem_size), stream));
  const int64_t n = product(p.idx_dims, 0, rank);
  if (n == 0) return Status::ok();
  LineGeometry g{};
  g.rank = static_cast<int>(rank);
  g.axis = static_cast<int>(p.axis);
  g.data_axis_dim = p.data_dims[static_cast<size_t>(p.axis)];
  row_major_strides(p.idx_dims, g.idx_strides);
  row_major_strides(p.data_dims, g.data_strides);
  for (size_t d = 0; d < rank; ++d) g.idx_dims[d] = p.idx_dims[d];
  const int64_t lines = n / p.idx_dims[static_cast<size_t>(p.axis)];
  if (p.reduction == ScatterReduction::kNone) {
    KILN_CUDA_DISPATCH_WIDTH(p.elem_size, "ScatterElements", {
      scatter_elements_kernel<E, ScatterReduction::kNone><<<grid_for(lines, kBlock), kBlock, 0, stream>>>(
          static_cast<E*>(p.y), p.indices, p.idx64, static_cast<const E*>(p.updates), lines, g);
      return last_launch_status("scatter_elements_kernel");
    });
  }
  KILN_CUDA_DISPATCH_NUMERIC_OR_BOOL(p.dtype, "ScatterElements",
                                     return launch_scatter_elements_as<T>(p, lines, g, stream));
  return Status::ok();
}

Status launch_scatter_nd(const ScatterNDParams& p, cudaStream_t stream) {
  const size_t rank = p.data_dims.size();
  if (p.idx_dims.empty()) return invalid_argument("ScatterND: indices must have rank >= 1");
  const size_t k = static_cast<size_t>(p.idx_dims.back());
  if (k > rank) return invalid_argument("ScatterND: index tuples of {} exceed the data's rank {}", k, rank);
  KILN_RETURN_IF_ERROR(check_rank("ScatterND", rank));
  KILN_RETURN_IF_ERROR(
      copy_data(p.y, p.data, static_cast<size_t>(product(p.data_dims, 0, rank) * p.elem_size), stream));
  const int64_t tuples = product(p.idx_dims, 0, p.idx_dims.size() - 1), run = product(p.data_dims, k, rank);
  if (tuples * run == 0) return Status::ok();
  TupleGeometry g{};
  g.k = static_cast<int>(k);
  int64_t strides[kMaxRank];
  row_major_strides(p.data_dims, strides);
  for (size_t j = 0; j < k; ++j) g.dims[j] = p.data_dims[j], g.strides[j] = strides[j];
  if (p.reduction == ScatterReduction::kNone) {
    KILN_CUDA_DISPATCH_WIDTH(p.elem_size, "ScatterND", {
      scatter_nd_write_kernel<E><<<grid_for(tuples * run, kBlock), kBlock, 0, stream>>>(
          static_cast<E*>(p.y), p.indices, p.idx64, static_cast<const E*>(p.updates), tuples, run, g);
      return last_launch_status("scatter_nd_write_kernel");
    });
  }
  KILN_CUDA_DISPATCH_NUMERIC_OR_BOOL(p.dtype, "ScatterND",
                                     return launch_scatter_nd_reduce_as<T>(p, tuples, run, g, stream));
  return Status::ok();
}

Status launch_tensor_scatter(const TensorScatterParams& p, cudaStream_t stream) {
  const size_t rank = p.cache_dims.size(), axis = static_cast<size_t>(p.axis);
  if (p.update_dims.size() != rank || p.axis < 1 || axis >= rank)
    return invalid_argument("TensorScatter: update rank {} for cache rank {}, axis {}", p.update_dims.size(), rank,
                            p.axis);
  for (size_t d = 0; d < rank; ++d)
    if (d != axis && p.update_dims[d] != p.cache_dims[d])
      return invalid_argument("TensorScatter: update dim {} is {}, the cache's {}", d, p.update_dims[d],
                              p.cache_dims[d]);
  KILN_RETURN_IF_ERROR(
      copy_data(p.y, p.cache, static_cast<size_t>(product(p.cache_dims, 0, rank)) * p.elem_size, stream));
  const int64_t inner = product(p.cache_dims, axis + 1, rank), prefix = product(p.cache_dims, 0, axis);
  const int64_t seq = p.update_dims[axis], max_seq = p.cache_dims[axis];
  const int64_t per_batch = p.cache_dims[0] > 0 ? prefix / p.cache_dims[0] : 0;
  const int64_t n = prefix * seq * inner;
  if (n == 0 || max_seq == 0) return Status::ok();
  KILN_CUDA_DISPATCH_WIDTH(p.elem_size, "TensorScatter", {
    tensor_scatter_kernel<E><<<grid_for(n, kBlock), kBlock, 0, stream>>>(
        static_cast<E*>(p.y), static_cast<const E*>(p.update), p.write_indices, p.idx64, n, inner, seq, max_seq,
        per_batch, p.circular);
    return last_launch_status("tensor_scatter_kernel");
  });
  return Status::ok();
}

}  // namespace kiln::cuda
