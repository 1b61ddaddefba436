// The plain tiled product (16x16 tiles of A and B in shared memory, a thread
// per output element) and a broadcast copy. Tiles hold accumulator-type values
// with the zero points already taken off, so the inner loop is one multiply-add.
#include <type_traits>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/matmul.cuh"

namespace kiln::cuda {
namespace {

constexpr int kTile = 16;

struct BatchGeometry {
  int rank;
  int64_t dims[kMaxRank];
  int64_t a_strides[kMaxRank], b_strides[kMaxRank];
};

template <typename T>
using acc_of = std::conditional_t<
    std::is_same_v<T, double>, double,
    std::conditional_t<std::is_integral_v<T>, std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>, float>>;

template <typename T>
__device__ __forceinline__ float scalar_as_float(const void* p, int64_t i) {
  return to_float(static_cast<const T*>(p)[i]);
}

__device__ __forceinline__ double load_scale(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::kF16: return scalar_as_float<__half>(p, i);
    case DType::kBF16: return scalar_as_float<__nv_bfloat16>(p, i);
    default: return static_cast<const float*>(p)[i];
  }
}

// An operand element widened to the accumulator (16-bit floats through float).
template <typename Acc, typename T>
__device__ __forceinline__ Acc widen(T v) {
  if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>)
    return static_cast<Acc>(to_float(v));
  else
    return static_cast<Acc>(v);
}

template <typename TA, typename TB, typename TY, typename Acc>
__device__ void finish(const SimpleMatmulCore& p, TY* y, int64_t i, int64_t j, Acc acc) {
  if (p.epilogue == MatmulEpilogue::kRequantize) {
    const double real = static_cast<double>(acc) * load_scale(p.scale_type, p.a_scale, p.a_scale_count == 1 ? 0 : i) *
                        load_scale(p.scale_type, p.b_scale, p.b_scale_count == 1 ? 0 : j);
    // Rounded half to even in float, as the CPU kernel does.
    int64_t q = llrintf(static_cast<float>(real / load_scale(p.scale_type, p.y_scale, 0)));
    q += static_cast<int64_t>(static_cast<const TY*>(p.y_zero)[0]);
    const int64_t lo = std::is_signed_v<TY> ? -128 : 0, hi = std::is_signed_v<TY> ? 127 : 255;
    *y = static_cast<TY>(q < lo ? lo : (q > hi ? hi : q));
    return;
  }
  if (p.epilogue == MatmulEpilogue::kGemm) {
    Acc r = static_cast<Acc>(p.alpha) * acc;
    if (p.c) r += static_cast<Acc>(p.beta) * widen<Acc>(static_cast<const TY*>(p.c)[i * p.c_row + j * p.c_col]);
    acc = r;
  }
  if constexpr (std::is_same_v<TY, __half> || std::is_same_v<TY, __nv_bfloat16>)
    *y = from_float<TY>(acc);
  else
    *y = static_cast<TY>(acc);
}

// Grid: x over column tiles, y over row tiles, z over the batch (y and z
// loop, so any row count and batch fit the 65535 limit).
template <typename TA, typename TB, typename TY, typename Acc>
__global__ void simple_matmul_kernel(SimpleMatmulCore p, BatchGeometry g, int64_t batch_count) {
  __shared__ Acc as[kTile][kTile + 1], bs[kTile][kTile + 1];
  const auto* a = static_cast<const TA*>(p.a);
  const auto* b = static_cast<const TB*>(p.b);
  const auto* za = static_cast<const TA*>(p.a_zero);
  const auto* zb = static_cast<const TB*>(p.b_zero);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t j = int64_t(blockIdx.x) * kTile + tx;
  const int64_t row_tiles = (p.m + kTile - 1) / kTile;
  for (int64_t z = blockIdx.z; z < batch_count; z += gridDim.z) {
    int64_t a_off = 0, b_off = 0, rest = z;
    for (int d = g.rank - 1; d >= 0; --d) {
      const int64_t idx = rest % g.dims[d];
      rest /= g.dims[d];
      a_off += idx * g.a_strides[d];
      b_off += idx * g.b_strides[d];
    }
    for (int64_t rt = blockIdx.y; rt < row_tiles; rt += gridDim.y) {
      const int64_t i = rt * kTile + ty;
      Acc acc = 0;
      for (int64_t p0 = 0; p0 < p.k; p0 += kTile) {
        // A tile: row i, column p0 + tx; B tile: row p0 + ty, column j.
        const int64_t pa = p0 + tx, pb = p0 + ty;
        Acc va = 0, vb = 0;
        if (i < p.m && pa < p.k) {
          va = widen<Acc>(a[a_off + i * p.a_row + pa * p.a_col]);
          if (za) va -= widen<Acc>(za[p.a_zero_count == 1 ? 0 : i]);
        }
        if (pb < p.k && j < p.n) {
          vb = widen<Acc>(b[b_off + pb * p.b_row + j * p.b_col]);
          if (zb) vb -= widen<Acc>(zb[p.b_zero_count == 1 ? 0 : j]);
        }
        as[ty][tx] = va;
        bs[ty][tx] = vb;
        __syncthreads();
        const int64_t left = p.k - p0;
        const int count = left < kTile ? static_cast<int>(left) : kTile;
        for (int q = 0; q < count; ++q) acc += as[ty][q] * bs[q][tx];
        __syncthreads();
      }
      if (i < p.m && j < p.n) finish<TA, TB, TY, Acc>(p, static_cast<TY*>(p.y) + (z * p.m + i) * p.n + j, i, j, acc);
    }
  }
}

template <typename TA, typename TB, typename TY, typename Acc>
Status run_simple(const SimpleMatmulParams& p, cudaStream_t stream) {
  BatchGeometry g{};
  g.rank = static_cast<int>(p.batch_dims.size());
  int64_t batch_count = 1;
  for (int d = 0; d < g.rank; ++d) {
    g.dims[d] = p.batch_dims[d];
    g.a_strides[d] = p.a_batch_strides[d];
    g.b_strides[d] = p.b_batch_strides[d];
    batch_count *= p.batch_dims[d];
  }
  const int64_t col_tiles = (p.n + kTile - 1) / kTile, row_tiles = (p.m + kTile - 1) / kTile;
  if (col_tiles > 0x7fffffff) return unsupported("matmul: n = {} is too large for the plain kernel", p.n);
  const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_tiles < 65535 ? row_tiles : 65535),
                  static_cast<unsigned>(batch_count < 65535 ? batch_count : 65535));
  simple_matmul_kernel<TA, TB, TY, Acc><<<grid, dim3(kTile, kTile), 0, stream>>>(SimpleMatmulCore(p), g, batch_count);
  return last_launch_status("simple_matmul_kernel");
}

template <typename TA, typename TB>
Status run_quantized(const SimpleMatmulParams& p, cudaStream_t stream) {
  if (p.epilogue == MatmulEpilogue::kStore && p.y_type == DType::kI32)
    return run_simple<TA, TB, int32_t, int64_t>(p, stream);
  if (p.epilogue == MatmulEpilogue::kRequantize && p.y_type == DType::kI8)
    return run_simple<TA, TB, int8_t, int64_t>(p, stream);
  if (p.epilogue == MatmulEpilogue::kRequantize && p.y_type == DType::kU8)
    return run_simple<TA, TB, uint8_t, int64_t>(p, stream);
  return unsupported("matmul: 8-bit operands with output {}", dtype_name(p.y_type));
}

template <typename T>
Status run_same_type(const SimpleMatmulParams& p, cudaStream_t stream) {
  if (p.epilogue == MatmulEpilogue::kRequantize) return unsupported("matmul: requantizing {}", dtype_name(p.a_type));
  return run_simple<T, T, T, acc_of<T>>(p, stream);
}

template <typename E>
__global__ void broadcast_copy_kernel(const E* __restrict__ x, E* __restrict__ y, int64_t n, int rank,
                                      BatchGeometry g) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t rest = i, off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      off += rest % g.dims[d] * g.a_strides[d];
      rest /= g.dims[d];
    }
    y[i] = x[off];
  }
}

}  // namespace

Status launch_simple_matmul(const SimpleMatmulParams& p, cudaStream_t stream) {
  if (p.batch_dims.size() > static_cast<size_t>(kMaxRank) || p.a_batch_strides.size() != p.batch_dims.size() ||
      p.b_batch_strides.size() != p.batch_dims.size())
    return invalid_argument("matmul: {} batch dims (at most {}, one stride each)", p.batch_dims.size(), kMaxRank);
  if (p.m == 0 || p.n == 0 || product(p.batch_dims, 0, p.batch_dims.size()) == 0) return Status::ok();
  const bool quantized = p.a_type == DType::kI8 || p.a_type == DType::kU8;
  if (quantized) {
    const bool a_signed = p.a_type == DType::kI8;
    if (p.b_type == DType::kI8)
      return a_signed ? run_quantized<int8_t, int8_t>(p, stream) : run_quantized<uint8_t, int8_t>(p, stream);
    if (p.b_type == DType::kU8)
      return a_signed ? run_quantized<int8_t, uint8_t>(p, stream) : run_quantized<uint8_t, uint8_t>(p, stream);
    return unsupported("matmul: A is {} but B is {}", dtype_name(p.a_type), dtype_name(p.b_type));
  }
  if (p.b_type != p.a_type || p.y_type != p.a_type)
    return unsupported("matmul: mixed dtypes {}, {} -> {}", dtype_name(p.a_type), dtype_name(p.b_type),
                       dtype_name(p.y_type));
  switch (p.a_type) {
    case DType::kF32: return run_same_type<float>(p, stream);
    case DType::kF16: return run_same_type<__half>(p, stream);
    case DType::kBF16: return run_same_type<__nv_bfloat16>(p, stream);
    case DType::kF64: return run_same_type<double>(p, stream);
    case DType::kI32: return run_same_type<int32_t>(p, stream);
    case DType::kI64: return run_same_type<int64_t>(p, stream);
    case DType::kU32: return run_same_type<uint32_t>(p, stream);
    case DType::kU64: return run_same_type<uint64_t>(p, stream);
    default: return unsupported("matmul: dtype {}", dtype_name(p.a_type));
  }
}

Status launch_broadcast_copy(int elem_size, const void* x, const std::vector<int64_t>& x_dims, void* y,
                             const std::vector<int64_t>& y_dims, cudaStream_t stream) {
  const size_t rank = y_dims.size();
  if (rank > static_cast<size_t>(kMaxRank) || x_dims.size() > rank)
    return unsupported("broadcast copy: rank {} (at most {})", rank, kMaxRank);
  BatchGeometry g{};
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    const size_t xd = d + x_dims.size() - rank;  // x's dim aligned with y's dim d (when d >= rank - x rank)
    const bool present = d + x_dims.size() >= rank;
    const int64_t size = present ? x_dims[xd] : 1;
    g.dims[d] = y_dims[d];
    g.a_strides[d] = size == 1 ? 0 : stride;
    stride *= size;
  }
  const int64_t n = product(y_dims, 0, rank);
  if (n == 0) return Status::ok();
  constexpr int kBlock = 256;
  const unsigned grid = grid_for(n, kBlock);
  const int r = static_cast<int>(rank);
  switch (elem_size) {
    case 1:
      broadcast_copy_kernel<<<grid, kBlock, 0, stream>>>(static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), n, r,
                                                         g);
      break;
    case 2:
      broadcast_copy_kernel<<<grid, kBlock, 0, stream>>>(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), n,
                                                         r, g);
      break;
    case 4:
      broadcast_copy_kernel<<<grid, kBlock, 0, stream>>>(static_cast<const uint32_t*>(x), static_cast<uint32_t*>(y), n,
                                                         r, g);
      break;
    case 8:
      broadcast_copy_kernel<<<grid, kBlock, 0, stream>>>(static_cast<const uint64_t*>(x), static_cast<uint64_t*>(y), n,
                                                         r, g);
      break;
    default: return unsupported("broadcast copy: element size {}", elem_size);
  }
  return last_launch_status("broadcast_copy_kernel");
}

}  // namespace kiln::cuda
