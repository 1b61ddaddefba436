#include <algorithm>
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

// One spatial dim of a 2-D channels-last pool, in 32-bit arithmetic.
struct PoolAxis {
  int in, out, kernel, stride, dilation, pad_begin, pad_end;

  // The taps [first, last) of output o that fall inside the input.
  __device__ __forceinline__ void taps(int o, int& first, int& last) const {
    const int origin = o * stride - pad_begin;  // input coordinate of tap 0
    first = origin >= 0 ? 0 : (-origin + dilation - 1) / dilation;
    last = origin >= in ? 0 : min(kernel, (in - 1 - origin) / dilation + 1);
  }
  // Taps of output o inside the explicitly padded input (count_include_pad).
  __device__ __forceinline__ int padded_taps(int o) const {
    int count = 0;
    for (int k = 0; k < kernel; ++k) {
      const int i = o * stride - pad_begin + k * dilation;
      count += i >= -pad_begin && i < in + pad_end;
    }
    return count;
  }
};

// The 2-D channels-last pools of 16-bit floats with C % 8 == 0, where one
// image's offsets fit in 32 bits: blockIdx.y walks the output rows (n, oh)
// and a thread owns one (ow, 8-channel pack). Unlike pool_nhwc_kernel, it
// splits no 64-bit flat index and clips the window to the input before the
// loop, so the taps' loads carry no bounds checks and issue back to back
// (ResNet-50's 3x3 stride-2 MaxPool: 9 loads of 16 bytes a thread). Same
// results as pool_nhwc_kernel, ties and NaNs included.
template <typename T, typename Acc>
__global__ void pool2d_nhwc_rows_kernel(const T* __restrict__ x, T* __restrict__ y, PoolAxis ah, PoolAxis aw,
                                        int groups, int rows, PoolKind kind, bool include_pad) {
  using P = Pack<T, 8>;
  const int channels = groups * 8;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= aw.out * groups) return;
  const int ow = t / groups, cg = t - ow * groups;
  int w0, w1;
  aw.taps(ow, w0, w1);
  for (int row = blockIdx.y; row < rows; row += gridDim.y) {
    const int n = row / ah.out, oh = row - n * ah.out;
    int h0, h1;
    ah.taps(oh, h0, h1);
    const T* xb = x + int64_t(n) * ah.in * aw.in * channels + cg * 8;
    Acc acc[8];
    bool first = true;
#pragma unroll
    for (int v = 0; v < 8; ++v) acc[v] = Acc(0);
    for (int kh = h0; kh < h1; ++kh) {
      const T* xr = xb + (oh * ah.stride - ah.pad_begin + kh * ah.dilation) * aw.in * channels;
      for (int kw = w0; kw < w1; ++kw) {
        const P in = *reinterpret_cast<const P*>(xr + (ow * aw.stride - aw.pad_begin + kw * aw.dilation) * channels);
#pragma unroll
        for (int v = 0; v < 8; ++v) {
          const Acc a = load_as<Acc>(in.v[v]);
          if (kind != PoolKind::kMax)
            acc[v] += a;
          else if (first || a > acc[v])
            acc[v] = a;
        }
        first = false;
      }
    }
    const int count = include_pad ? ah.padded_taps(oh) * aw.padded_taps(ow) : max(h1 - h0, 0) * max(w1 - w0, 0);
    P out;
#pragma unroll
    for (int v = 0; v < 8; ++v)
      out.v[v] = store_as<T>(kind == PoolKind::kMax ? (count == 0 ? std::numeric_limits<Acc>::lowest() : acc[v])
                                                    : (count == 0 ? Acc(0) : acc[v] / Acc(count)));
    *reinterpret_cast<P*>(y + (int64_t(row) * aw.out + ow) * channels + cg * 8) = out;
  }
}

PoolAxis pool_axis(const WindowGeometry& g, int a) {
  return {static_cast<int>(g.in[a]),     static_cast<int>(g.out[a]),      static_cast<int>(g.kernel[a]),
          static_cast<int>(g.stride[a]), static_cast<int>(g.dilation[a]), static_cast<int>(g.pad_begin[a]),
          static_cast<int>(g.pad_end[a])};
}

// Whether pool2d_nhwc_rows_kernel takes p: 2-D, C % 8 == 0, aligned, and one
// image (and every window coordinate) within 32-bit offsets.
bool fits_rows_kernel(const PoolParams& p) {
  const WindowGeometry& g = p.g;
  if (g.in[0] != 1 || g.out[0] != 1 || g.kernel[0] != 1 || g.in_channels % 8 != 0) return false;
  if (!aligned16(p.x) || !aligned16(p.y)) return false;
  const int64_t limit = int64_t{1} << 30;
  const int64_t span_h = g.out[1] * g.stride[1] + g.kernel[1] * g.dilation[1] + g.pad_begin[1];
  const int64_t span_w = g.out[2] * g.stride[2] + g.kernel[2] * g.dilation[2] + g.pad_begin[2];
  return g.in_size() * g.in_channels < limit && span_h * g.in[2] * g.in_channels < limit &&
         span_w * g.in_channels < limit && g.batch * g.out[1] < limit && g.out[2] * g.in_channels < limit;
}

template <typename T, typename Acc>
Status launch_pool_nhwc(const PoolParams& p, cudaStream_t stream) {
  const int64_t positions = p.g.batch * p.g.out_size(), channels = p.g.in_channels;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  if constexpr (kIs16BitFloat<T>) {
    if (fits_rows_kernel(p)) {
      const int groups = static_cast<int>(channels / 8), rows = static_cast<int>(p.g.batch * p.g.out[1]);
      const int per_row = static_cast<int>(p.g.out[2]) * groups;
      const int block = std::min(256, (per_row + 31) / 32 * 32);
      const dim3 grid((per_row + block - 1) / block, std::min(rows, 65535));
      pool2d_nhwc_rows_kernel<T, Acc><<<grid, block, 0, stream>>>(x, y, pool_axis(p.g, 1), pool_axis(p.g, 2), groups,
                                                                  rows, p.kind, p.count_include_pad);
      return last_launch_status("pool2d_nhwc_rows_kernel");
    }
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
// channels]. A block owns `lanes` groups of V adjacent channels (threadIdx.x)
// of one batch at a time (blockIdx.y); its rows (threadIdx.y) stride over the
// size positions with kGlobalUnroll 16-byte loads in flight per thread, as a
// batch of 128 EfficientNet-B0 images gives one block per SM and only the
// loads in flight set the bandwidth. A tree over the rows then combines the
// partials in shared memory (laid out [V][rows][lanes]: no bank conflicts),
// always in the same order.
constexpr int kGlobalThreads = 1024;
constexpr int kGlobalUnroll = 4;

template <typename Acc>
__device__ __forceinline__ Acc global_combine(PoolKind kind, Acc acc, Acc a) {
  return kind == PoolKind::kMax ? (a > acc ? a : acc) : acc + a;
}

// (Without the minimum of 1 block per SM, ptxas 13 held the bf16 and f32
// forms to 32 registers and spilled.)
template <typename T, typename Acc, int V>
__global__ void __launch_bounds__(kGlobalThreads, 1)
    global_pool_nhwc_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t batches, int64_t size, int64_t channels,
                            PoolKind kind) {
  using P = Pack<T, V>;
  extern __shared__ __align__(16) unsigned char smem[];
  Acc* part = reinterpret_cast<Acc*>(smem);
  const unsigned lanes = blockDim.x, rows = blockDim.y, row = threadIdx.y;
  const int64_t groups = channels / V, group = int64_t(blockIdx.x) * lanes + threadIdx.x;
  const bool active = group < groups;
  auto slot = [&](int v, unsigned r) -> Acc& { return part[(v * rows + r) * lanes + threadIdx.x]; };
  const Acc init = kind == PoolKind::kMax ? -std::numeric_limits<Acc>::infinity() : Acc(0);
  unsigned top = 1;  // the tree's width: rows rounded up to a power of two
  while (top < rows) top *= 2;
  // The batch loop's bounds are the same for the whole block, so every thread reaches every barrier.
  for (int64_t batch = blockIdx.y; batch < batches; batch += gridDim.y) {
    Acc acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = init;
    if (active) {
      const T* xb = x + batch * size * channels + group * V;
      int64_t s = row;
      for (; s + (kGlobalUnroll - 1) * int64_t(rows) < size; s += kGlobalUnroll * int64_t(rows)) {
        P in[kGlobalUnroll];
#pragma unroll
        for (int u = 0; u < kGlobalUnroll; ++u) in[u] = *reinterpret_cast<const P*>(xb + (s + u * rows) * channels);
#pragma unroll
        for (int u = 0; u < kGlobalUnroll; ++u)
#pragma unroll
          for (int v = 0; v < V; ++v) acc[v] = global_combine(kind, acc[v], load_as<Acc>(in[u].v[v]));
      }
      for (; s < size; s += rows) {
        const P in = *reinterpret_cast<const P*>(xb + s * channels);
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] = global_combine(kind, acc[v], load_as<Acc>(in.v[v]));
      }
    }
#pragma unroll
    for (int v = 0; v < V; ++v) slot(v, row) = acc[v];
    __syncthreads();
    for (unsigned half = top / 2; half > 0; half /= 2) {
      if (row < half && row + half < rows) {
#pragma unroll
        for (int v = 0; v < V; ++v) slot(v, row) = global_combine(kind, slot(v, row), slot(v, row + half));
      }
      __syncthreads();
    }
    if (row == 0 && active) {
      P out;
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const Acc r = slot(v, 0);
        out.v[v] = store_as<T>(kind == PoolKind::kAverage ? r / Acc(size) : r);
      }
      *reinterpret_cast<P*>(y + batch * channels + group * V) = out;
    }
    __syncthreads();  // the partials are rewritten for the next batch
  }
}

// Lanes per block: every channel group when they fit a warp (a block's loads
// are then one contiguous run), else the widest divisor of the groups from 16
// to 32 (no idle lanes in the last block), else 32.
int64_t global_lanes(int64_t groups) {
  if (groups <= 32) return groups;
  for (int64_t l = 32; l >= 16; --l)
    if (groups % l == 0) return l;
  return 32;
}

template <typename T, typename Acc, int V>
Status launch_global_nhwc_v(const GlobalPoolParams& p, cudaStream_t stream) {
  const int64_t groups = p.channels / V, batches = p.planes / p.channels;
  const int64_t lanes = global_lanes(groups);
  // Rows enough for a full unroll each, up to the block's threads: short
  // planes (EfficientNet's 7x7) get small blocks, several to an SM.
  const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(kGlobalThreads / lanes, p.size / kGlobalUnroll));
  const dim3 block(static_cast<unsigned>(lanes), static_cast<unsigned>(rows));
  const dim3 grid(static_cast<unsigned>((groups + lanes - 1) / lanes),
                  static_cast<unsigned>(batches < 65535 ? batches : 65535));
  const size_t smem = sizeof(Acc) * V * lanes * rows;
  global_pool_nhwc_kernel<T, Acc, V><<<grid, block, smem, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y),
                                                                    batches, p.size, p.channels, p.kind);
  return last_launch_status("global_pool_nhwc_kernel");
}

template <typename T>
Status launch_global_typed(const GlobalPoolParams& p, cudaStream_t stream) {
  using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
  if (p.channels_last) {
    constexpr int V = static_cast<int>(16 / sizeof(T));  // one 16-byte load
    if (p.channels % V == 0 && aligned16(p.x) && aligned16(p.y)) return launch_global_nhwc_v<T, Acc, V>(p, stream);
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
