#include <cmath>
#include <limits>

#include "backends/cuda/kernels/pool.cuh"
#include "backends/cuda/kernels/window_common.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

// The first strictly greater element wins, as on the CPU (ties keep the
// earliest position; a NaN only wins as the window's first element).
template <typename T>
__global__ void max_pool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ indices,
                                WindowGeometry g, bool column_major, int64_t n) {
  using C = ComputeT<T>;
  const int64_t isize = g.in_size();
  KILN_GRID_STRIDE_LOOP(i, n) {
    const OutputPosition o = output_position(g, i);
    const T* xp = x + o.plane * isize;
    C best = std::numeric_limits<C>::lowest();
    int64_t best_at = -1, bd = 0, bh = 0, bw = 0;
    for_each_tap(g, o, [&](const WindowTap& t) {
      const C v = load_as<C>(xp[t.at]);
      if (best_at < 0 || v > best) best = v, best_at = t.at, bd = t.d, bh = t.h, bw = t.w;
    });
    y[i] = store_as<T>(best);
    if (indices) {
      const int64_t spatial = column_major ? (bw * g.in[1] + bh) * g.in[0] + bd : best_at;
      indices[i] = best_at < 0 ? -1 : o.plane * isize + spatial;
    }
  }
}

// Window taps of output o along dim a inside the explicitly padded input.
__device__ __forceinline__ int64_t padded_count(const WindowGeometry& g, int a, int64_t o) {
  int64_t count = 0;
  for (int64_t k = 0; k < g.kernel[a]; ++k) {
    const int64_t i = input_coord(g, a, o, k);
    if (i >= -g.pad_begin[a] && i < g.in[a] + g.pad_end[a]) ++count;
  }
  return count;
}

template <typename Acc>
__device__ __forceinline__ Acc lp_term(Acc v, int64_t p) {
  const Acc a = v < Acc(0) ? -v : v;
  if (p == 1) return a;
  if (p == 2) return a * a;
  return pow(a, Acc(p));
}

template <typename Acc>
__device__ __forceinline__ Acc lp_root(Acc sum, int64_t p) {
  if (p == 1) return sum;
  if (p == 2) return sqrt(sum);
  return pow(sum, Acc(1) / Acc(p));
}

// AveragePool (lp == 0) and LpPool (lp >= 1).
template <typename T, typename Acc>
__global__ void mean_pool_kernel(const T* __restrict__ x, T* __restrict__ y, WindowGeometry g, bool include_pad,
                                 int64_t lp, int64_t n) {
  const int64_t isize = g.in_size();
  KILN_GRID_STRIDE_LOOP(i, n) {
    const OutputPosition o = output_position(g, i);
    const T* xp = x + o.plane * isize;
    Acc sum = 0;
    int64_t count = 0;
    for_each_tap(g, o, [&](const WindowTap& t) {
      const Acc v = load_as<Acc>(xp[t.at]);
      sum += lp == 0 ? v : lp_term(v, lp);
      ++count;
    });
    Acc r;
    if (lp > 0) {
      r = lp_root(sum, lp);
    } else {
      if (include_pad) count = padded_count(g, 0, o.d) * padded_count(g, 1, o.h) * padded_count(g, 2, o.w);
      r = count == 0 ? Acc(0) : sum / Acc(count);
    }
    y[i] = store_as<T>(r);
  }
}

// Channels-last MaxPool (kind kMax, Acc = ComputeT<T>) and AveragePool
// (kAverage, Acc float or double): i runs over [N, H', W', C / V] in memory
// order, so y's element i * V is the first of this thread's V channels. Ties
// and NaNs resolve as in max_pool_kernel, per channel.
template <typename T, typename Acc, int V>
__global__ void pool_nhwc_kernel(const T* __restrict__ x, T* __restrict__ y, WindowGeometry g, PoolKind kind,
                                 bool include_pad, int64_t n) {
  using P = Pack<T, V>;
  const int64_t channels = g.in_channels, groups = channels / V, isize = g.in_size();
  KILN_GRID_STRIDE_LOOP(i, n) {
    const OutputPosition o = output_position(g, i / groups);  // o.plane is the batch index
    const T* xb = x + o.plane * isize * channels + i % groups * V;
    Acc acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = kind == PoolKind::kMax ? std::numeric_limits<Acc>::lowest() : Acc(0);
    int64_t count = 0;
    for_each_tap(g, o, [&](const WindowTap& t) {
      const P in = *reinterpret_cast<const P*>(xb + t.at * channels);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const Acc a = load_as<Acc>(in.v[v]);
        if (kind != PoolKind::kMax)
          acc[v] += a;
        else if (count == 0 || a > acc[v])
          acc[v] = a;
      }
      ++count;
    });
    if (kind == PoolKind::kAverage && include_pad)
      count = padded_count(g, 0, o.d) * padded_count(g, 1, o.h) * padded_count(g, 2, o.w);
    P out;
#pragma unroll
    for (int v = 0; v < V; ++v)
      out.v[v] = store_as<T>(kind == PoolKind::kMax ? acc[v] : (count == 0 ? Acc(0) : acc[v] / Acc(count)));
    *reinterpret_cast<P*>(y + i * V) = out;
  }
}

template <typename T, typename Acc>
Status launch_pool_nhwc(const PoolParams& p, cudaStream_t stream) {
  const int64_t positions = p.g.batch * p.g.out_size(), channels = p.g.in_channels;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  if constexpr (kIs16BitFloat<T>) {
    if (channels % 8 == 0 && aligned16(p.x) && aligned16(p.y)) {
      const int64_t n = positions * channels / 8;
      pool_nhwc_kernel<T, Acc, 8>
          <<<grid_for(n, kBlock), kBlock, 0, stream>>>(x, y, p.g, p.kind, p.count_include_pad, n);
      return last_launch_status("pool_nhwc_kernel");
    }
  }
  const int64_t n = positions * channels;
  pool_nhwc_kernel<T, Acc, 1><<<grid_for(n, kBlock), kBlock, 0, stream>>>(x, y, p.g, p.kind, p.count_include_pad, n);
  return last_launch_status("pool_nhwc_kernel");
}

template <typename T>
Status launch_max_typed(const PoolParams& p, int64_t n, cudaStream_t stream) {
  if (p.channels_last) return launch_pool_nhwc<T, ComputeT<T>>(p, stream);
  max_pool_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y),
                                                                 p.indices, p.g, p.column_major, n);
  return last_launch_status("max_pool_kernel");
}

Status launch_max_pool(const PoolParams& p, int64_t n, cudaStream_t stream) {
  switch (p.dtype) {
    case DType::kF32: return launch_max_typed<float>(p, n, stream);
    case DType::kF64: return launch_max_typed<double>(p, n, stream);
    case DType::kF16: return launch_max_typed<__half>(p, n, stream);
    case DType::kBF16: return launch_max_typed<__nv_bfloat16>(p, n, stream);
    case DType::kI8: return launch_max_typed<int8_t>(p, n, stream);
    case DType::kI16: return launch_max_typed<int16_t>(p, n, stream);
    case DType::kI32: return launch_max_typed<int32_t>(p, n, stream);
    case DType::kI64: return launch_max_typed<int64_t>(p, n, stream);
    case DType::kU8: return launch_max_typed<uint8_t>(p, n, stream);
    case DType::kU16: return launch_max_typed<uint16_t>(p, n, stream);
    case DType::kU32: return launch_max_typed<uint32_t>(p, n, stream);
    case DType::kU64: return launch_max_typed<uint64_t>(p, n, stream);
    default:
      return unsupported("MaxPool: dtype {} (the CUDA kernel takes float and integer types)", dtype_name(p.dtype));
  }
}

template <typename T>
Status launch_mean_typed(const PoolParams& p, int64_t n, cudaStream_t stream) {
  using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
  if (p.channels_last) return launch_pool_nhwc<T, Acc>(p, stream);
  const int64_t lp = p.kind == PoolKind::kLp ? p.p : 0;
  mean_pool_kernel<T, Acc><<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y),
                                                                       p.g, p.count_include_pad, lp, n);
  return last_launch_status("mean_pool_kernel");
}

// A warp per plane: lanes stride over the plane, then combine by shuffles.
// The loop bound is the same for every lane of a warp, so the shuffles see
// the whole warp.
template <typename T, typename Acc>
__global__ void global_pool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes, int64_t size,
                                   PoolKind kind, int64_t lp) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t plane = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; plane < planes; plane += warps) {
    const T* xp = x + plane * size;
    Acc acc = kind == PoolKind::kMax ? -std::numeric_limits<Acc>::infinity() : Acc(0);
    for (int64_t i = lane; i < size; i += 32) {
      const Acc v = load_as<Acc>(xp[i]);
      if (kind == PoolKind::kMax)
        acc = v > acc ? v : acc;
      else
        acc += kind == PoolKind::kAverage ? v : lp_term(v, lp);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const Acc other = __shfl_xor_sync(0xffffffffu, acc, offset);
      acc = kind == PoolKind::kMax ? (other > acc ? other : acc) : acc + other;
    }
    if (lane != 0) continue;
    if (kind == PoolKind::kAverage) acc /= Acc(size);
    if (kind == PoolKind::kLp) acc = lp_root(acc, lp);
    y[plane] = store_as<T>(acc);
  }
}

// Channels-last GlobalAveragePool / GlobalMaxPool over x [batches, size,
// channels]: a block's threadIdx.x lanes own V adjacent channels each (a
// warp's loads of one row are consecutive), its threadIdx.y rows split the
// size positions; row 0 then combines the rows' partials in order.
template <typename T, typename Acc, int V>
__global__ void global_pool_nhwc_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t batches, int64_t size,
                                        int64_t channels, PoolKind kind) {
  using P = Pack<T, V>;
  extern __shared__ __align__(16) unsigned char smem[];
  Acc* part = reinterpret_cast<Acc*>(smem);  // [blockDim.y][blockDim.x][V]
  const int64_t groups = channels / V, group = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const Acc init = kind == PoolKind::kMax ? -std::numeric_limits<Acc>::infinity() : Acc(0);
  Acc* mine = part + (int64_t(threadIdx.y) * blockDim.x + threadIdx.x) * V;
  // The batch loop's bounds are the same for the whole block, so every thread reaches both barriers.
  for (int64_t batch = blockIdx.y; batch < batches; batch += gridDim.y) {
    Acc acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = init;
    if (group < groups) {
      const T* xb = x + batch * size * channels + group * V;
      for (int64_t s = threadIdx.y; s < size; s += blockDim.y) {
        const P in = *reinterpret_cast<const P*>(xb + s * channels);
#pragma unroll
        for (int v = 0; v < V; ++v) {
          const Acc a = load_as<Acc>(in.v[v]);
          acc[v] = kind == PoolKind::kMax ? (a > acc[v] ? a : acc[v]) : acc[v] + a;
        }
      }
    }
#pragma unroll
    for (int v = 0; v < V; ++v) mine[v] = acc[v];
    __syncthreads();
    if (threadIdx.y == 0 && group < groups) {
      for (unsigned r = 1; r < blockDim.y; ++r) {
        const Acc* other = part + (int64_t(r) * blockDim.x + threadIdx.x) * V;
#pragma unroll
        for (int v = 0; v < V; ++v)
          acc[v] = kind == PoolKind::kMax ? (other[v] > acc[v] ? other[v] : acc[v]) : acc[v] + other[v];
      }
      P out;
#pragma unroll
      for (int v = 0; v < V; ++v) out.v[v] = store_as<T>(kind == PoolKind::kAverage ? acc[v] / Acc(size) : acc[v]);
      *reinterpret_cast<P*>(y + batch * channels + group * V) = out;
    }
    __syncthreads();
  }
}

template <typename T, typename Acc, int V>
Status launch_global_nhwc_v(const GlobalPoolParams& p, cudaStream_t stream) {
  const int64_t groups = p.channels / V, batches = p.planes / p.channels;
  unsigned lanes = 1;
  while (lanes < 32 && lanes < groups) lanes *= 2;
  const dim3 block(lanes, kBlock / lanes);
  const dim3 grid(static_cast<unsigned>((groups + lanes - 1) / lanes),
                  static_cast<unsigned>(batches < 65535 ? batches : 65535));
  const size_t smem = sizeof(Acc) * V * kBlock;
  global_pool_nhwc_kernel<T, Acc, V><<<grid, block, smem, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y),
                                                                    batches, p.size, p.channels, p.kind);
  return last_launch_status("global_pool_nhwc_kernel");
}

template <typename T>
Status launch_global_typed(const GlobalPoolParams& p, cudaStream_t stream) {
  using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
  if (p.channels_last) {
    if constexpr (kIs16BitFloat<T>) {
      if (p.channels % 8 == 0 && aligned16(p.x) && aligned16(p.y)) return launch_global_nhwc_v<T, Acc, 8>(p, stream);
    }
    return launch_global_nhwc_v<T, Acc, 1>(p, stream);
  }
  global_pool_kernel<T, Acc><<<grid_for(p.planes * 32, kBlock), kBlock, 0, stream>>>(
      static_cast<const T*>(p.x), static_cast<T*>(p.y), p.planes, p.size, p.kind, p.p);
  return last_launch_status("global_pool_kernel");
}

template <typename E>
__global__ void max_unpool_kernel(const E* __restrict__ x, const int64_t* __restrict__ indices, E* __restrict__ y,
                                  MaxUnpoolParams p) {
  int64_t full_numel = 1;
  for (int d = 0; d < p.rank; ++d) full_numel *= p.full_dims[d];
  KILN_GRID_STRIDE_LOOP(i, p.n) {
    int64_t rest = indices[i];
    if (rest < 0 || rest >= full_numel) continue;
    int64_t at = 0, out_stride = 1;
    for (int d = p.rank - 1; d >= 0; --d) {
      at += rest % p.full_dims[d] * out_stride;
      rest /= p.full_dims[d];
      out_stride *= p.out_dims[d];
    }
    y[at] = x[i];
  }
}

}  // namespace

Status launch_pool(const PoolParams& p, cudaStream_t stream) {
  const int64_t n = p.g.batch * p.g.in_channels * p.g.out_size();
  if (n == 0) return Status::ok();
  if (p.kind == PoolKind::kMax) return launch_max_pool(p, n, stream);
  if (p.dtype == DType::kF64) return launch_mean_typed<double>(p, n, stream);
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "AveragePool/LpPool", return launch_mean_typed<T>(p, n, stream));
  return Status::ok();
}

Status launch_global_pool(const GlobalPoolParams& p, cudaStream_t stream) {
  if (p.planes == 0) return Status::ok();
  if (p.dtype == DType::kF64) return launch_global_typed<double>(p, stream);
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "global pool", return launch_global_typed<T>(p, stream));
  return Status::ok();
}

Status launch_max_unpool(const MaxUnpoolParams& p, cudaStream_t stream) {
  int64_t out_numel = 1;
  for (int d = 0; d < p.rank; ++d) out_numel *= p.out_dims[d];
  if (out_numel == 0) return Status::ok();
  KILN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p.y, 0, static_cast<size_t>(out_numel) * p.element_bytes, stream));
  if (p.n == 0) return Status::ok();
  const unsigned grid = grid_for(p.n, kBlock);
  switch (p.element_bytes) {
    case 1:
      max_unpool_kernel<uint8_t>
          <<<grid, kBlock, 0, stream>>>(static_cast<const uint8_t*>(p.x), p.indices, static_cast<uint8_t*>(p.y), p);
      break;
    case 2:
      max_unpool_kernel<uint16_t>
          <<<grid, kBlock, 0, stream>>>(static_cast<const uint16_t*>(p.x), p.indices, static_cast<uint16_t*>(p.y), p);
      break;
    case 4:
      max_unpool_kernel<uint32_t>
          <<<grid, kBlock, 0, stream>>>(static_cast<const uint32_t*>(p.x), p.indices, static_cast<uint32_t*>(p.y), p);
      break;
    case 8:
      max_unpool_kernel<uint64_t>
          <<<grid, kBlock, 0, stream>>>(static_cast<const uint64_t*>(p.x), p.indices, static_cast<uint64_t*>(p.y), p);
      break;
    default: return unsupported("MaxUnpool: elements of {} bytes", p.element_bytes);
  }
  return last_launch_status("max_unpool_kernel");
}

}  // namespace kiln::cuda
