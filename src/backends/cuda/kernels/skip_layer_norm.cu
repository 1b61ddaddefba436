// Two kernels. Rows of up to 32 * kMaxPacks 16-byte packs (768 or 1024
// halves: BERT, GPT-2, ViT) take a warp each and keep the rounded sums in
// registers: X and Skip are read once with 16-byte loads, and the mean and
// variance passes (two passes, not E[x^2] - E[x]^2) run over registers.
// Other rows (odd lengths, unaligned tensors, long rows) take row_launch's
// warp or block and recompute the sum in each pass from X and Skip, whose
// re-reads hit L1/L2. Statistics are in float (double for f64) and the
// normalized value is (s - mean) * inv * scale + bias, as the LayerNorm
// kernel (normalization.cu) computes it.
#include <algorithm>

#include "backends/cuda/kernels/reduce_common.cuh"
#include "backends/cuda/kernels/row_launch.cuh"
#include "backends/cuda/kernels/skip_layer_norm.cuh"

namespace kiln::cuda {
namespace {

constexpr int kMaxPacks = 8;  // per lane: 64 halves, 32 floats or 16 doubles in registers
constexpr int kWarpsPerBlock = 4;

// X + Skip as the CPU's Add computes it: in the accumulator type, rounded to T.
template <typename T, typename A>
__device__ __forceinline__ T rounded_sum(T a, T b) {
  return from_acc<T>(to_acc<A>(a) + to_acc<A>(b));
}

// A warp per row, N packs of kVec<T> elements per lane (cols <= 32 * N * V,
// every tensor 16-byte aligned, cols a multiple of V).
template <typename T, int N>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) skip_norm_warp_kernel(SkipNormParams p) {
  using A = float_acc_t<T>;
  constexpr int V = kVec<T>;
  using P = Pack<T, V>;
  const auto* __restrict__ xv = static_cast<const P*>(p.x);
  const auto* __restrict__ sv = static_cast<const P*>(p.skip);
  const auto* __restrict__ gv = static_cast<const P*>(p.scale);
  const auto* __restrict__ bv = static_cast<const P*>(p.bias);
  auto* __restrict__ yv = static_cast<P*>(p.y);
  auto* __restrict__ sumv = static_cast<P*>(p.sum);
  const int lane = threadIdx.x % 32;
  const int64_t packs = p.cols / V;
  const int64_t step = int64_t(gridDim.x) * kWarpsPerBlock;
  // The loop bound is the same for a whole warp: the shuffles see all 32 lanes.
  for (int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; row < p.rows; row += step) {
    const int64_t at = row * packs;
    A v[N][V];
    A s = 0;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const int64_t c = lane + k * 32;
      if (c < packs) {
        const P xp = xv[at + c], sp = sv[at + c];
        P out;
#pragma unroll
        for (int j = 0; j < V; ++j) {
          out.v[j] = rounded_sum<T, A>(xp.v[j], sp.v[j]);
          v[k][j] = to_acc<A>(out.v[j]);
          s += v[k][j];
        }
        if (sumv) sumv[at + c] = out;
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) v[k][j] = 0;
      }
    }
    const A mean = warp_reduce_acc<Combine::kSum>(s) / static_cast<A>(p.cols);
    A sq = 0;
#pragma unroll
    for (int k = 0; k < N; ++k)
      if (lane + k * 32 < packs) {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const A d = v[k][j] - mean;
          sq += d * d;
        }
      }
    sq = warp_reduce_acc<Combine::kSum>(sq);
    const A inv = A(1) / sqrt(sq / static_cast<A>(p.cols) + static_cast<A>(p.epsilon));
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const int64_t c = lane + k * 32;
      if (c >= packs) continue;
      const P g = gv[c];
      P b, out;
      if (bv) b = bv[c];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        A r = (v[k][j] - mean) * inv;
        r *= to_acc<A>(g.v[j]);
        if (bv) r += to_acc<A>(b.v[j]);
        out.v[j] = from_acc<T>(r);
      }
      yv[at + c] = out;
    }
  }
}

// Calls f(rounded sum, col) for the columns lane `lane` of a group of `group`
// threads owns (16-byte loads of X and Skip when `vec`).
template <typename T, typename F>
__device__ __forceinline__ void visit_sums(const T* __restrict__ xr, const T* __restrict__ sr, int64_t cols, int lane,
                                           int group, bool vec, F f) {
  using A = float_acc_t<T>;
  constexpr int V = kVec<T>;
  if (vec) {
    const auto* xv = reinterpret_cast<const Pack<T, V>*>(xr);
    const auto* sv = reinterpret_cast<const Pack<T, V>*>(sr);
    for (int64_t c = lane; c < cols / V; c += group) {
      const Pack<T, V> xp = xv[c], sp = sv[c];
#pragma unroll
      for (int j = 0; j < V; ++j) f(rounded_sum<T, A>(xp.v[j], sp.v[j]), c * V + j);
    }
  } else {
    for (int64_t c = lane; c < cols; c += group) f(rounded_sum<T, A>(xr[c], sr[c]), c);
  }
}

// Any row: a group of threads (row_launch) per row, three passes.
template <typename T>
__global__ void __launch_bounds__(1024) skip_norm_kernel(SkipNormParams p, int group, bool vec) {
  using A = float_acc_t<T>;
  __shared__ A smem[32];
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ skip = static_cast<const T*>(p.skip);
  const T* __restrict__ scale = static_cast<const T*>(p.scale);
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  T* __restrict__ y = static_cast<T*>(p.y);
  T* __restrict__ sum = static_cast<T*>(p.sum);
  const int64_t cols = p.cols;
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t base = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (p.rows - base + step - 1) / step;  // the same for the whole block
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = base + threadIdx.x / group + it * step;
    const bool active = row < p.rows;
    const int64_t at = (active ? row : 0) * cols;
    A s = 0;
    if (active) visit_sums(x + at, skip + at, cols, lane, group, vec, [&](T v, int64_t) { s += to_acc<A>(v); });
    const A mean = group_reduce_acc<Combine::kSum>(s, group, smem) / static_cast<A>(cols);
    A sq = 0;
    if (active)
      visit_sums(x + at, skip + at, cols, lane, group, vec, [&](T v, int64_t) {
        const A d = to_acc<A>(v) - mean;
        sq += d * d;
      });
    sq = group_reduce_acc<Combine::kSum>(sq, group, smem);
    if (!active) continue;
    const A inv = A(1) / sqrt(sq / static_cast<A>(cols) + static_cast<A>(p.epsilon));
    visit_sums(x + at, skip + at, cols, lane, group, vec, [&](T v, int64_t c) {
      A r = (to_acc<A>(v) - mean) * inv;
      r *= to_acc<A>(scale[c]);
      if (bias) r += to_acc<A>(bias[c]);
      y[at + c] = from_acc<T>(r);
      if (sum) sum[at + c] = v;
    });
  }
}

template <typename T>
Status launch_typed(const SkipNormParams& p, cudaStream_t stream) {
  constexpr int V = kVec<T>;
  auto ok = [](const void* ptr) { return !ptr || aligned16(ptr); };
  const bool vec = p.cols % V == 0 && ok(p.x) && ok(p.skip) && ok(p.scale) && ok(p.bias) && ok(p.y) && ok(p.sum);
  const int64_t per_lane = (p.cols / V + 31) / 32;
  if (vec && per_lane <= kMaxPacks) {
    const int64_t blocks = std::min<int64_t>((p.rows + kWarpsPerBlock - 1) / kWarpsPerBlock, 0x7fffffff);
    const dim3 grid(static_cast<unsigned>(blocks)), block(kWarpsPerBlock * 32);
    // Exact fits for 768 (f16: 3, f32: 6 packs a lane) and 1024 (f16: 4).
    switch (per_lane) {
      case 1: skip_norm_warp_kernel<T, 1><<<grid, block, 0, stream>>>(p); break;
      case 2: skip_norm_warp_kernel<T, 2><<<grid, block, 0, stream>>>(p); break;
      case 3: skip_norm_warp_kernel<T, 3><<<grid, block, 0, stream>>>(p); break;
      case 4: skip_norm_warp_kernel<T, 4><<<grid, block, 0, stream>>>(p); break;
      case 5:
      case 6: skip_norm_warp_kernel<T, 6><<<grid, block, 0, stream>>>(p); break;
      default: skip_norm_warp_kernel<T, kMaxPacks><<<grid, block, 0, stream>>>(p); break;
    }
    return last_launch_status("skip_norm_warp_kernel");
  }
  const RowLaunch l = row_launch(p.rows, p.cols);
  skip_norm_kernel<T><<<l.grid, l.block, 0, stream>>>(p, l.group, vec);
  return last_launch_status("skip_norm_kernel");
}

}  // namespace

Status launch_skip_layer_norm(const SkipNormParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return Status::ok();
  if (!p.scale) return invalid_argument("SkipLayerNormalization: Scale is required");
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "SkipLayerNormalization", return launch_typed<T>(p, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
