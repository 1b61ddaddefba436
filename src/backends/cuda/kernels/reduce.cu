// Three kernels, by the shape of the reduction (see reduce_view):
// - inner == 1 (the reduced axes are the trailing ones): rows, a warp or a
//   block per row (row_launch.cuh), coalesced along the row;
// - inner > 1: one thread per (outer, inner) output walks the reduced axis,
//   adjacent threads reading adjacent addresses;
// - reduced axes not one run: one thread per output walks every reduced
//   element through per-dim strides (rare in models; correct, not fast).
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/reduce.cuh"
#include "backends/cuda/kernels/row_launch.cuh"

namespace kiln::cuda {
namespace {

template <ReduceKind K>
__device__ __forceinline__ float identity() {
  if constexpr (K == ReduceKind::kSum) return 0.f;
  if constexpr (K == ReduceKind::kMax) return -INFINITY;
  return INFINITY;
}

template <typename T, ReduceKind K>
__global__ void __launch_bounds__(1024)
    reduce_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t cols, int group, float scale) {
  __shared__ float smem[32];
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t base = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (rows - base + step - 1) / step;
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = base + threadIdx.x / group + it * step;
    float acc = identity<K>();
    if (row < rows)
      for (int64_t c = lane; c < cols; c += group) acc = combine<K>(acc, to_float(x[row * cols + c]));
    acc = group_reduce<K>(acc, group, smem);
    if (row < rows && lane == 0) y[row] = from_float<T>(acc * scale);
  }
}

template <typename T, ReduceKind K>
__global__ void reduce_columns_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer, int64_t reduce,
                                      int64_t inner, float scale) {
  const int64_t n = outer * inner, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t o = i / inner, in = i - o * inner;
    const T* p = x + o * reduce * inner + in;
    float acc = identity<K>();
    for (int64_t r = 0; r < reduce; ++r) acc = combine<K>(acc, to_float(p[r * inner]));
    y[i] = from_float<T>(acc * scale);
  }
}

struct StridedGeometry {
  int kept_rank, reduced_rank;
  int64_t kept_dims[kMaxRank], kept_strides[kMaxRank];
  int64_t reduced_dims[kMaxRank], reduced_strides[kMaxRank];
  int64_t reduced_count;
};

template <typename T, ReduceKind K>
__global__ void reduce_strided_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, StridedGeometry g,
                                      float scale) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t rest = i, base = 0;
    for (int d = g.kept_rank - 1; d >= 0; --d) {
      base += rest % g.kept_dims[d] * g.kept_strides[d];
      rest /= g.kept_dims[d];
    }
    float acc = identity<K>();
    for (int64_t r = 0; r < g.reduced_count; ++r) {
      int64_t rr = r, off = base;
      for (int d = g.reduced_rank - 1; d >= 0; --d) {
        off += rr % g.reduced_dims[d] * g.reduced_strides[d];
        rr /= g.reduced_dims[d];
      }
      acc = combine<K>(acc, to_float(x[off]));
    }
    y[i] = from_float<T>(acc * scale);
  }
}

Expected<std::vector<bool>> reduced_mask(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  std::vector<bool> mask(dims.size(), axes.empty());
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) return invalid_argument("reduce: axis {} out of range for rank {}", a, rank);
    mask[static_cast<size_t>(a < 0 ? a + rank : a)] = true;
  }
  return mask;
}

template <typename T, ReduceKind K>
Status run_reduce(const ReduceParams& p, const ReduceView& v, int64_t n_out, int64_t n_reduced, cudaStream_t stream) {
  const float scale = p.op == ReduceOp::kMean ? 1.f / static_cast<float>(n_reduced) : 1.f;
  auto x = static_cast<const T*>(p.x);
  auto y = static_cast<T*>(p.y);
  constexpr int kBlock = 256;
  if (v.contiguous && v.inner == 1) {
    const RowLaunch l = row_launch(v.outer, v.reduce);
    reduce_rows_kernel<T, K><<<l.grid, l.block, 0, stream>>>(x, y, v.outer, v.reduce, l.group, scale);
  } else if (v.contiguous) {
    reduce_columns_kernel<T, K>
        <<<grid_for(n_out, kBlock), kBlock, 0, stream>>>(x, y, v.outer, v.reduce, v.inner, scale);
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<bool> mask, reduced_mask(p.dims, p.axes));
    StridedGeometry g{};
    g.reduced_count = n_reduced;
    int64_t stride = 1;
    std::vector<int64_t> strides(p.dims.size());
    for (size_t d = p.dims.size(); d-- > 0;) strides[d] = stride, stride *= p.dims[d];
    for (size_t d = 0; d < p.dims.size(); ++d) {
      if (mask[d]) {
        g.reduced_dims[g.reduced_rank] = p.dims[d];
        g.reduced_strides[g.reduced_rank++] = strides[d];
      } else {
        g.kept_dims[g.kept_rank] = p.dims[d];
        g.kept_strides[g.kept_rank++] = strides[d];
      }
    }
    reduce_strided_kernel<T, K><<<grid_for(n_out, kBlock), kBlock, 0, stream>>>(x, y, n_out, g, scale);
  }
  return last_launch_status("reduce kernel");
}

}  // namespace

Expected<ReduceView> reduce_view(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes) {
  KILN_ASSIGN_OR_RETURN(std::vector<bool> mask, reduced_mask(dims, axes));
  // Runs of kept (K) and reduced (R) dims, size-1 dims skipped: K?R?K? is one view.
  ReduceView v;
  int phase = 0;  // 0: outer, 1: reduce, 2: inner
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 1) continue;
    if (mask[d]) {
      if (phase == 2) v.contiguous = false;
      phase = 1;
      v.reduce *= dims[d];
    } else if (phase == 0) {
      v.outer *= dims[d];
    } else {
      phase = 2;
      v.inner *= dims[d];
    }
  }
  return v;
}

Status launch_reduce(const ReduceParams& p, cudaStream_t stream) {
  if (p.dims.size() > static_cast<size_t>(kMaxRank))
    return unsupported("reduce: rank {} (the CUDA kernel takes up to {})", p.dims.size(), kMaxRank);
  KILN_ASSIGN_OR_RETURN(ReduceView v, reduce_view(p.dims, p.axes));
  KILN_ASSIGN_OR_RETURN(std::vector<bool> mask, reduced_mask(p.dims, p.axes));
  int64_t n_out = 1, n_reduced = 1;
  for (size_t d = 0; d < p.dims.size(); ++d) (mask[d] ? n_reduced : n_out) *= p.dims[d];
  if (n_out == 0) return Status::ok();
  switch (p.op) {
    case ReduceOp::kSum:
    case ReduceOp::kMean:
      KILN_CUDA_DISPATCH_FLOAT(p.dtype, "reduce",
                               return run_reduce<T, ReduceKind::kSum>(p, v, n_out, n_reduced, stream));
      break;
    case ReduceOp::kMax:
      KILN_CUDA_DISPATCH_FLOAT(p.dtype, "reduce",
                               return run_reduce<T, ReduceKind::kMax>(p, v, n_out, n_reduced, stream));
      break;
    case ReduceOp::kMin:
      KILN_CUDA_DISPATCH_FLOAT(p.dtype, "reduce",
                               return run_reduce<T, ReduceKind::kMin>(p, v, n_out, n_reduced, stream));
      break;
  }
  return Status::ok();
}

}  // namespace kiln::cuda
