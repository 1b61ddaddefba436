// A group of threads (a warp or a block, see row_launch.cuh) owns a row:
// pass 1 sums x (not for RMS), pass 2 sums (x - mean)^2 (or x^2 for RMS),
// pass 3 writes. Two passes over the data avoid the cancellation of
// E[x^2] - E[x]^2; the re-reads hit L1/L2. Loads are 16 bytes wide when the
// rows are aligned, and so are the parameters' when they are plain [cols]
// vectors of x's dtype (LayerNormalization's usual case).
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

}  // namespace

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
  const RowLaunch l = row_launch(p.rows, p.cols);
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "normalization",
                            norm_kernel<T><<<l.grid, l.block, 0, stream>>>(p, l.group, packed));
  return last_launch_status("norm_kernel");
}

}  // namespace kiln::cuda
