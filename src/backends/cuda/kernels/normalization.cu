// A group of threads (a warp or a block, see row_launch.cuh) owns a row:
// pass 1 sums x (not for RMS), pass 2 sums (x - mean)^2 (or x^2 for RMS),
// pass 3 writes. Two passes over the data avoid the cancellation of
// E[x^2] - E[x]^2; the re-reads hit L1/L2. Loads are 16 bytes wide when the
// rows are aligned, and so are the parameters' when they are plain [cols]
// vectors of x's dtype (LayerNormalization's usual case).
//
// Long rows (GroupNormalization: N * groups rows of C / groups * H * W) would
// leave SMs idle with a block per row when they are few, and fall out of
// L1/L2 between the passes when they are long, so they are split into chunks
// over many blocks: each block computes its chunk's count, mean and
// sum of squared deviations (two passes over a chunk that stays in L1/L2), and
// the apply kernel merges a row's chunks (Chan et al.'s pairwise formula, as
// exact as two passes over the row) and writes its chunk.
#include <algorithm>

#include "backends/cuda/kernels/normalization.cuh"
#include "backends/cuda/kernels/reduce_common.cuh"
#include "backends/cuda/kernels/row_launch.cuh"

namespace kiln::cuda {
namespace {

__device__ __forceinline__ int64_t param_index(const ParamMap& m, int64_t row, int64_t col) {
  switch (m.kind) {
    case ParamMap::Kind::kCol: return col;
    case ParamMap::Kind::kChannel: return (row % m.row_mod) * m.row_mul + col / m.col_div;
    default: break;
  }
  int64_t off = 0;
  for (int d = m.rank - 1; d >= 0; --d) {
    const int64_t q = col / m.dims[d];
    off += (col - q * m.dims[d]) * m.strides[d];
    col = q;
  }
  return off;
}

// Writes a row whose parameters are [cols] vectors of T, all 16-byte aligned.
template <typename T, typename A>
__device__ __forceinline__ void write_row_packed(const NormParams& p, const T* xr, T* yr, int lane, int group, A mean,
                                                 A inv) {
  constexpr int V = kVec<T>;
  using P = Pack<T, V>;
  const auto* xv = reinterpret_cast<const P*>(xr);
  const auto* sv = reinterpret_cast<const P*>(p.scale);
  const auto* bv = reinterpret_cast<const P*>(p.bias);
  auto* yv = reinterpret_cast<P*>(yr);
  for (int64_t c = lane; c < p.cols / V; c += group) {
    const P xp = xv[c];
    P s, b, out;
    if (sv) s = sv[c];
    if (bv) b = bv[c];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      A r = (to_acc<A>(xp.v[j]) - mean) * inv;
      if (sv) r *= to_acc<A>(s.v[j]);
      if (bv) r += to_acc<A>(b.v[j]);
      out.v[j] = from_acc<T>(r);
    }
    yv[c] = out;
  }
}

template <typename T>
__global__ void __launch_bounds__(1024) norm_kernel(NormParams p, int group, bool packed_params) {
  using A = float_acc_t<T>;
  __shared__ A smem[32];
  const T* __restrict__ x = static_cast<const T*>(p.x);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int64_t cols = p.cols;
  const bool vec = rows_vectorizable<T>(x, cols) && rows_vectorizable<T>(y, cols);
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t base = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (p.rows - base + step - 1) / step;  // the same for the whole block
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = base + threadIdx.x / group + it * step;
    const bool active = row < p.rows;
    const T* xr = x + (active ? row : 0) * cols;
    A mean = 0;
    if (!p.rms) {
      A s = 0;
      if (active) row_visit(xr, cols, lane, group, vec, [&](T v, int64_t) { s += to_acc<A>(v); });
      mean = group_reduce_acc<Combine::kSum>(s, group, smem) / static_cast<A>(cols);
    }
    A sq = 0;
    if (active)
      row_visit(xr, cols, lane, group, vec, [&](T v, int64_t) {
        const A d = to_acc<A>(v) - mean;
        sq += d * d;
      });
    sq = group_reduce_acc<Combine::kSum>(sq, group, smem);
    if (!active) continue;
    const A inv = A(1) / sqrt(sq / static_cast<A>(cols) + static_cast<A>(p.epsilon));
    T* yr = y + row * cols;
    if (vec && packed_params) {
      write_row_packed(p, xr, yr, lane, group, mean, inv);
    } else {
      row_map(xr, yr, cols, lane, group, vec, [&](T v, int64_t c) {
        A r = (to_acc<A>(v) - mean) * inv;
        if (p.scale) r *= load_float_as<A>(p.scale, p.scale_dtype, param_index(p.scale_map, row, c));
        if (p.bias) r += load_float_as<A>(p.bias, p.bias_dtype, param_index(p.bias_map, row, c));
        return from_acc<T>(r);
      });
    }
    if (lane == 0) {
      if (p.mean) store_float_as(p.mean, p.stat_dtype, row, mean);
      if (p.inv_std_dev) store_float_as(p.inv_std_dev, p.stat_dtype, row, inv);
    }
  }
}

constexpr int kSplitBlock = 512;

struct SplitPlan {
  int64_t splits = 1, chunk = 0;
};

SplitPlan split_plan(int64_t rows, int64_t cols) {
  // Chunks of at most 16 Ki elements keep the stats pass's second read in
  // L1/L2 even with every SM busy; at least 2 Ki keep the blocks busy.
  constexpr int64_t kTargetBlocks = 132 * 4, kMaxChunk = 16384, kMinChunk = 2048, kChunkAlign = 8;
  SplitPlan s;
  const bool few_rows = rows < kTargetBlocks / 2 && cols >= 4 * kMinChunk;
  if ((!few_rows && cols <= kMaxChunk) || rows > 65535) return s;  // rows go on gridDim.y
  int64_t splits = std::max((cols + kMaxChunk - 1) / kMaxChunk, few_rows ? (kTargetBlocks + rows - 1) / rows : 1);
  splits = std::min(splits, std::max<int64_t>(cols / kMinChunk, 1));
  if (splits <= 1) return s;
  // 8-element multiples keep 16-byte loads aligned.
  const int64_t chunk = ((cols + splits - 1) / splits + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  s.splits = (cols + chunk - 1) / chunk;
  s.chunk = chunk;
  return s;
}

// Writes (count, mean, M2) of chunk blockIdx.x of row blockIdx.y; for RMS the
// mean is 0 and M2 the sum of squares.
template <typename T>
__global__ void __launch_bounds__(kSplitBlock)
    norm_split_stats_kernel(NormParams p, int64_t chunk, float_acc_t<T>* __restrict__ partials) {
  using A = float_acc_t<T>;
  __shared__ A smem[32];
  const int64_t row = blockIdx.y, begin = int64_t(blockIdx.x) * chunk;
  const int64_t len = chunk < p.cols - begin ? chunk : p.cols - begin;
  const T* xc = static_cast<const T*>(p.x) + row * p.cols + begin;
  const bool vec = rows_vectorizable<T>(xc, len);
  A mean = 0;
  if (!p.rms) {
    A sum = 0;
    row_visit(xc, len, threadIdx.x, blockDim.x, vec, [&](T v, int64_t) { sum += to_acc<A>(v); });
    mean = group_reduce_acc<Combine::kSum>(sum, blockDim.x, smem) / static_cast<A>(len);
  }
  A m2 = 0;
  row_visit(xc, len, threadIdx.x, blockDim.x, vec, [&](T v, int64_t) {
    const A d = to_acc<A>(v) - mean;
    m2 += d * d;
  });
  m2 = group_reduce_acc<Combine::kSum>(m2, blockDim.x, smem);
  if (threadIdx.x == 0) {
    A* out = partials + (row * gridDim.x + blockIdx.x) * 3;
    out[0] = static_cast<A>(len), out[1] = mean, out[2] = m2;
  }
}

template <typename T>
__global__ void __launch_bounds__(kSplitBlock)
    norm_split_apply_kernel(NormParams p, int64_t chunk, const float_acc_t<T>* __restrict__ partials) {
  using A = float_acc_t<T>;
  __shared__ A stats[2];
  const int64_t row = blockIdx.y, begin = int64_t(blockIdx.x) * chunk;
  if (threadIdx.x == 0) {
    const A* ps = partials + row * gridDim.x * 3;
    A n = ps[0], mean = ps[1], m2 = ps[2];
    for (unsigned k = 1; k < gridDim.x; ++k) {
      const A nb = ps[3 * k], delta = ps[3 * k + 1] - mean, total = n + nb;
      mean += delta * nb / total;
      m2 += ps[3 * k + 2] + delta * delta * n * nb / total;
      n = total;
    }
    const A inv = A(1) / sqrt(m2 / n + static_cast<A>(p.epsilon));
    stats[0] = mean, stats[1] = inv;
    if (blockIdx.x == 0 && p.mean) store_float_as(p.mean, p.stat_dtype, row, mean);
    if (blockIdx.x == 0 && p.inv_std_dev) store_float_as(p.inv_std_dev, p.stat_dtype, row, inv);
  }
  __syncthreads();
  const A mean = stats[0], inv = stats[1];
  const int64_t len = chunk < p.cols - begin ? chunk : p.cols - begin;
  const T* xc = static_cast<const T*>(p.x) + row * p.cols + begin;
  T* yc = static_cast<T*>(p.y) + row * p.cols + begin;
  const bool vec = rows_vectorizable<T>(xc, len) && rows_vectorizable<T>(yc, len);
  row_map(xc, yc, len, threadIdx.x, blockDim.x, vec, [&](T v, int64_t c) {
    A r = (to_acc<A>(v) - mean) * inv;
    if (p.scale) r *= load_float_as<A>(p.scale, p.scale_dtype, param_index(p.scale_map, row, begin + c));
    if (p.bias) r += load_float_as<A>(p.bias, p.bias_dtype, param_index(p.bias_map, row, begin + c));
    return from_acc<T>(r);
  });
}

template <typename T>
Status launch_split(const NormParams& p, const SplitPlan& s, cudaStream_t stream) {
  auto* partials = static_cast<float_acc_t<T>*>(p.workspace);
  const dim3 grid(static_cast<unsigned>(s.splits), static_cast<unsigned>(p.rows));
  norm_split_stats_kernel<T><<<grid, kSplitBlock, 0, stream>>>(p, s.chunk, partials);
  KILN_RETURN_IF_ERROR(last_launch_status("norm_split_stats_kernel"));
  norm_split_apply_kernel<T><<<grid, kSplitBlock, 0, stream>>>(p, s.chunk, partials);
  return last_launch_status("norm_split_apply_kernel");
}

}  // namespace

size_t normalization_workspace_bytes(DType dtype, int64_t rows, int64_t cols) {
  const SplitPlan s = split_plan(rows, cols);
  if (s.splits <= 1) return 0;
  return size_t(rows * s.splits) * 3 * (dtype == DType::kF64 ? 8 : 4);
}

ParamMap broadcast_param_map(const std::vector<int64_t>& param_dims, const std::vector<int64_t>& normalized_dims) {
  ParamMap m;
  const size_t rank = normalized_dims.size(), prank = param_dims.size();
  int64_t p_numel = 1, n_numel = 1;
  for (int64_t d : param_dims) p_numel *= d;
  for (int64_t d : normalized_dims) n_numel *= d;
  if (p_numel == n_numel) return m;  // broadcastable and as large: the same elements in the same order
  m.kind = ParamMap::Kind::kBroadcast;
  m.rank = static_cast<int>(rank);
  int64_t stride = 1;
  for (size_t i = rank; i-- > 0;) {
    const size_t from_end = rank - 1 - i;
    const int64_t pd = from_end < prank ? param_dims[prank - 1 - from_end] : 1;
    m.dims[i] = normalized_dims[i];
    m.strides[i] = pd == 1 ? 0 : stride;
    stride *= pd;
  }
  return m;
}

Status launch_normalization(const NormParams& in, cudaStream_t stream) {
  if (in.rows == 0 || in.cols == 0) return Status::ok();
  NormParams p = in;
  if (p.scale_dtype == DType::kUndefined) p.scale_dtype = p.dtype;
  if (p.bias_dtype == DType::kUndefined) p.bias_dtype = p.dtype;
  if (p.scale_map.rank > 8 || p.bias_map.rank > 8)
    return unsupported("normalization: parameters of rank {} (the CUDA kernel takes up to 8)",
                       std::max(p.scale_map.rank, p.bias_map.rank));
  auto plain = [&](const void* ptr, DType t, const ParamMap& m) {
    return !ptr || (t == p.dtype && m.kind == ParamMap::Kind::kCol && aligned16(ptr));
  };
  const bool packed = plain(p.scale, p.scale_dtype, p.scale_map) && plain(p.bias, p.bias_dtype, p.bias_map);
  const SplitPlan s = split_plan(p.rows, p.cols);
  if (s.splits > 1 && p.workspace && p.workspace_bytes >= normalization_workspace_bytes(p.dtype, p.rows, p.cols)) {
    KILN_CUDA_DISPATCH_FLOATS(p.dtype, "normalization", return launch_split<T>(p, s, stream));
  }
  const RowLaunch l = row_launch(p.rows, p.cols);
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "normalization",
                            norm_kernel<T><<<l.grid, l.block, 0, stream>>>(p, l.group, packed));
  return last_launch_status("norm_kernel");
}

}  // namespace kiln::cuda
