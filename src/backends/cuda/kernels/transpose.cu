// Transpose. The permutation is first simplified: size-1 dims dropped and
// dims that stay neighbours merged (perm [0,1,3,2] of [B,H,S,D] becomes a
// [B*H,S,D] batch swap), and an identity becomes a plain copy. A swap of the last
// two dims (with any leading batch) goes through 32x32 shared-memory tiles
// (block 32x8, padding 33 against bank conflicts) so both the read and the
// write are coalesced, unless one of the two is narrow (at most kNarrow, as
// the 3 channels of an image going NCHW -> NHWC): a 32x32 tile would then
// idle all but a few of its rows, so each thread moves one whole narrow line
// instead. Any other permutation takes the general strided kernel (one
// thread per 16 bytes of output, stepping its input offset per element).
#include <algorithm>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/data_movement.cuh"

namespace kiln::cuda {
namespace {

constexpr int kTile = 32;
constexpr int kTileRows = 8;

template <typename E>
__global__ void transpose_tiled_kernel(const E* __restrict__ x, E* __restrict__ y, int64_t rows, int64_t cols) {
  __shared__ E tile[kTile][kTile + 1];
  const int64_t batch = blockIdx.z;
  const E* xb = x + batch * rows * cols;
  E* yb = y + batch * rows * cols;
  const int64_t c0 = int64_t(blockIdx.x) * kTile, r0 = int64_t(blockIdx.y) * kTile;
  for (int i = threadIdx.y; i < kTile; i += kTileRows) {
    const int64_t r = r0 + i, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[i][threadIdx.x] = xb[r * cols + c];
  }
  __syncthreads();
  // y is [cols, rows]: y[c][r] = x[r][c].
  for (int i = threadIdx.y; i < kTile; i += kTileRows) {
    const int64_t c = c0 + i, r = r0 + threadIdx.x;
    if (r < rows && c < cols) yb[c * rows + r] = tile[threadIdx.x][i];
  }
}

constexpr int64_t kNarrow = 8;

// y[b][c][r] = x[b][r][c] with `rows` or `cols` narrow (at most kNarrow): one
// thread per element of the wide dim, looping over the narrow one, so the
// threads of a warp read (and write) neighbouring addresses.
template <typename E, bool kNarrowRows>
__global__ void transpose_narrow_kernel(const E* __restrict__ x, E* __restrict__ y, int64_t batch, int64_t rows,
                                        int64_t cols) {
  const int64_t wide = kNarrowRows ? cols : rows, narrow = kNarrowRows ? rows : cols;
  const int64_t n = batch * wide, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t b = i / wide, w = i % wide;
    const E* xb = x + b * rows * cols;
    E* yb = y + b * rows * cols;
    for (int64_t k = 0; k < narrow; ++k) {
      if constexpr (kNarrowRows)
        yb[w * rows + k] = xb[k * cols + w];  // r = k, c = w
      else
        yb[k * rows + w] = xb[w * cols + k];  // r = w, c = k
    }
  }
}

// The general kernel's index math is in I: uint32_t when the tensor has
// fewer than 2^31 elements (a 64-bit division costs several 32-bit ones),
// int64_t otherwise.
template <typename I>
struct PermGeometry {
  int rank;
  I out_dims[kMaxRank];
  I in_strides[kMaxRank];  // x stride of output dim d
  I wrap[kMaxRank];        // out_dims[d] * in_strides[d]: what a carry out of dim d takes back
};

template <typename E, int V>
struct alignas(sizeof(E) * V) OutVec {
  E e[V];
};

// Thread t writes output elements [t*V, t*V + V) with one store (y is
// aligned to sizeof(E)*V): it divides its first index into coordinates once,
// then steps them like an odometer (a carry per wrapped dim) instead of
// dividing again for every element. The coordinates are indexed by unrolled
// loops only, so they stay in registers.
template <typename E, int V, typename I>
__global__ void transpose_general_kernel(const E* __restrict__ x, E* __restrict__ y, I n, PermGeometry<I> g) {
  const I vectors = (n + V - 1) / V, stride = I(gridDim.x) * I(blockDim.x);
  for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < vectors; t += stride) {
    const I i0 = t * V;
    I c[kMaxRank] = {};
    I rest = i0, off = 0;
#pragma unroll
    for (int d = kMaxRank - 1; d > 0; --d) {
      if (d < g.rank) {
        const I q = rest / g.out_dims[d];
        c[d] = rest - q * g.out_dims[d];
        off += c[d] * g.in_strides[d];
        rest = q;
      }
    }
    off += rest * g.in_strides[0];  // rest < out_dims[0]: no division
    OutVec<E, V> v;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      v.e[k] = i0 + I(k) < n ? x[off] : E{};
      if (k + 1 == V) break;
#pragma unroll
      for (int d = kMaxRank - 1; d >= 0; --d) {
        if (d >= g.rank) continue;
        off += g.in_strides[d];
        if (d == 0 || ++c[d] < g.out_dims[d]) break;  // past the last element only at the tail, never read
        c[d] = 0;
        off -= g.wrap[d];
      }
    }
    if (i0 + I(V) <= n) {
      *reinterpret_cast<OutVec<E, V>*>(y + i0) = v;
    } else {
      for (int k = 0; k < V && i0 + I(k) < n; ++k) y[i0 + k] = v.e[k];
    }
  }
}

template <typename E, int V, typename I>
void launch_transpose_general_as(const E* x, E* y, int64_t n, const std::vector<int64_t>& dims,
                                 const std::vector<int64_t>& perm, cudaStream_t stream) {
  PermGeometry<I> g{};
  g.rank = static_cast<int>(dims.size());
  std::vector<int64_t> strides(dims.size());
  int64_t s = 1;
  for (size_t d = dims.size(); d-- > 0;) strides[d] = s, s *= dims[d];
  for (size_t d = 0; d < dims.size(); ++d) {
    const int64_t out = dims[static_cast<size_t>(perm[d])], in_stride = strides[static_cast<size_t>(perm[d])];
    g.out_dims[d] = static_cast<I>(out);
    g.in_strides[d] = static_cast<I>(in_stride);
    g.wrap[d] = static_cast<I>(out * in_stride);
  }
  constexpr int kBlock = 256;
  transpose_general_kernel<E, V, I>
      <<<grid_for((n + V - 1) / V, kBlock), kBlock, 0, stream>>>(x, y, static_cast<I>(n), g);
}

template <typename E>
void launch_transpose_general(const E* x, E* y, int64_t n, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& perm, cudaStream_t stream) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(E));
  const bool small = n < (int64_t(1) << 31);
  if (aligned16(y))
    small ? launch_transpose_general_as<E, kVec, uint32_t>(x, y, n, dims, perm, stream)
          : launch_transpose_general_as<E, kVec, int64_t>(x, y, n, dims, perm, stream);
  else
    small ? launch_transpose_general_as<E, 1, uint32_t>(x, y, n, dims, perm, stream)
          : launch_transpose_general_as<E, 1, int64_t>(x, y, n, dims, perm, stream);
}

// Drops size-1 dims and merges x dims a, a+1 that are also adjacent in perm.
void simplify(std::vector<int64_t>& dims, std::vector<int64_t>& perm) {
  std::vector<int64_t> keep_index(dims.size(), -1), kd;
  for (size_t d = 0; d < dims.size(); ++d)
    if (dims[d] != 1) keep_index[d] = static_cast<int64_t>(kd.size()), kd.push_back(dims[d]);
  std::vector<int64_t> kp;
  for (int64_t a : perm)
    if (keep_index[static_cast<size_t>(a)] >= 0) kp.push_back(keep_index[static_cast<size_t>(a)]);
  // Merge: walk the output order; an x dim that follows its predecessor joins it.
  std::vector<int64_t> group_of(kd.size(), -1);
  std::vector<std::vector<int64_t>> groups;
  for (size_t i = 0; i < kp.size(); ++i) {
    if (i > 0 && kp[i] == kp[i - 1] + 1) {
      groups.back().push_back(kp[i]);
    } else {
      groups.push_back({kp[i]});
    }
  }
  // Groups ordered by their first x dim give the merged x shape.
  std::vector<size_t> order(groups.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return groups[a][0] < groups[b][0]; });
  std::vector<int64_t> new_dims(groups.size()), rank_of_group(groups.size());
  for (size_t r = 0; r < order.size(); ++r) {
    int64_t size = 1;
    for (int64_t d : groups[order[r]]) size *= kd[static_cast<size_t>(d)];
    new_dims[r] = size;
    rank_of_group[order[r]] = static_cast<int64_t>(r);
  }
  dims = new_dims;
  perm.assign(rank_of_group.begin(), rank_of_group.end());
}

template <typename E>
Status run_transpose(const TransposeParams& p, const std::vector<int64_t>& dims, const std::vector<int64_t>& perm,
                     int64_t n, cudaStream_t stream) {
  auto x = static_cast<const E*>(p.x);
  auto y = static_cast<E*>(p.y);
  const size_t r = dims.size();
  bool batch_swap = r >= 2 && perm[r - 1] == int64_t(r) - 2 && perm[r - 2] == int64_t(r) - 1;
  for (size_t d = 0; batch_swap && d + 2 < r; ++d) batch_swap = perm[d] == int64_t(d);
  const int64_t batch = r >= 2 ? n / (dims[r - 1] * dims[r - 2]) : 1;
  const int64_t row_tiles = r >= 2 ? (dims[r - 2] + kTile - 1) / kTile : 0;
  if (batch_swap && std::min(dims[r - 2], dims[r - 1]) <= kNarrow) {
    const int64_t rows = dims[r - 2], cols = dims[r - 1];
    constexpr int kBlock = 256;
    const int64_t threads = batch * std::max(rows, cols);
    if (rows <= cols)
      transpose_narrow_kernel<E, true><<<grid_for(threads, kBlock), kBlock, 0, stream>>>(x, y, batch, rows, cols);
    else
      transpose_narrow_kernel<E, false><<<grid_for(threads, kBlock), kBlock, 0, stream>>>(x, y, batch, rows, cols);
    return last_launch_status("transpose_narrow_kernel");
  }
  if (batch_swap && batch <= 65535 && row_tiles <= 65535) {  // else the grid does not fit: general kernel
    const int64_t rows = dims[r - 2], cols = dims[r - 1];
    dim3 grid(static_cast<unsigned>((cols + kTile - 1) / kTile), static_cast<unsigned>(row_tiles),
              static_cast<unsigned>(batch));
    transpose_tiled_kernel<E><<<grid, dim3(kTile, kTileRows), 0, stream>>>(x, y, rows, cols);
    return last_launch_status("transpose_tiled_kernel");
  }
  launch_transpose_general<E>(x, y, n, dims, perm, stream);
  return last_launch_status("transpose_general_kernel");
}

}  // namespace

Status launch_transpose(const TransposeParams& p, cudaStream_t stream) {
  const size_t rank = p.dims.size();
  if (p.perm.size() != rank) return invalid_argument("transpose: perm has {} entries for rank {}", p.perm.size(), rank);
  std::vector<bool> seen(rank);
  for (int64_t a : p.perm) {
    if (a < 0 || a >= int64_t(rank) || seen[static_cast<size_t>(a)])
      return invalid_argument("transpose: perm is not a permutation of 0..{}", rank - 1);
    seen[static_cast<size_t>(a)] = true;
  }
  if (rank > static_cast<size_t>(kMaxRank))
    return unsupported("transpose: rank {} (the CUDA kernel takes up to {})", rank, kMaxRank);
  const int64_t n = product(p.dims, 0, rank);
  if (n == 0) return Status::ok();
  std::vector<int64_t> dims = p.dims, perm = p.perm;
  simplify(dims, perm);
  if (dims.size() <= 1)
    return to_status(cudaMemcpyAsync(p.y, p.x, static_cast<size_t>(n) * p.elem_size, cudaMemcpyDeviceToDevice, stream),
                     "cudaMemcpyAsync (identity transpose)");
  switch (p.elem_size) {
    case 1: return run_transpose<uint8_t>(p, dims, perm, n, stream);
    case 2: return run_transpose<uint16_t>(p, dims, perm, n, stream);
    case 4: return run_transpose<uint32_t>(p, dims, perm, n, stream);
    case 8: return run_transpose<uint64_t>(p, dims, perm, n, stream);
    default: return unsupported("transpose: element size {} bytes", p.elem_size);
  }
}

}  // namespace kiln::cuda
