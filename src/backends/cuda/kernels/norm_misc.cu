// Element-wise kernels (a thread per element, grid-stride) for
// BatchNormalization, the running statistics, LRN and
// MeanVarianceNormalization's last step; LpNormalization is a row kernel (a
// group per row, row_launch.cuh) when its axis is the last, else a thread per
// slice. These ops are rare in transformer graphs and usually fused away in
// CNNs, so they favour simplicity over the last bit of bandwidth.
#include "backends/cuda/kernels/norm_misc.cuh"
#include "backends/cuda/kernels/reduce_common.cuh"
#include "backends/cuda/kernels/row_launch.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void batch_norm_kernel(BatchNormParams p) {
  using A = float_acc_t<T>;
  const auto* x = static_cast<const T*>(p.x);
  auto* y = static_cast<T*>(p.y);
  const int64_t total = p.n * p.c * p.inner, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t r = e / p.inner, i = e - r * p.inner;
    const int64_t k = (r % p.c) * p.per + (p.per == 1 ? 0 : i);
    const A m = load_float_as<A>(p.mean, p.mean_dtype, k), v = load_float_as<A>(p.var, p.var_dtype, k);
    const A s = load_float_as<A>(p.scale, p.scale_dtype, k), b = load_float_as<A>(p.bias, p.bias_dtype, k);
    y[e] = from_acc<T>((to_acc<A>(x[e]) - m) / sqrt(v + static_cast<A>(p.epsilon)) * s + b);
  }
}

template <typename A>
__global__ void running_stat_kernel(RunningStatParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const A mom = static_cast<A>(p.momentum);
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < p.count; k += stride)
    store_float_as(p.out, p.dtype, k,
                   load_float_as<A>(p.a, p.dtype, k) * mom + load_float_as<A>(p.b, p.b_dtype, k) * (A(1) - mom));
}

template <typename T>
__global__ void __launch_bounds__(1024)
    lp_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n, int group, int p) {
  using A = float_acc_t<T>;
  __shared__ A smem[32];
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t first = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (rows - first + step - 1) / step;  // the same for the whole block
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = first + threadIdx.x / group + it * step;
    const bool active = row < rows;
    A acc = 0;
    if (active)
      for (int64_t c = lane; c < n; c += group) {
        const A v = to_acc<A>(x[row * n + c]);
        acc += p == 1 ? (v < A(0) ? -v : v) : v * v;
      }
    acc = group_reduce_acc<Combine::kSum>(acc, group, smem);
    if (!active) continue;
    const A norm = p == 1 ? acc : sqrt(acc);
    for (int64_t c = lane; c < n; c += group)
      y[row * n + c] = from_acc<T>(norm == A(0) ? A(0) : to_acc<A>(x[row * n + c]) / norm);
  }
}

template <typename T>
__global__ void lp_strided_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer, int64_t n, int64_t inner,
                                  int p) {
  using A = float_acc_t<T>;
  const int64_t count = outer * inner, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < count; s += stride) {
    const int64_t o = s / inner, base = o * n * inner + (s - o * inner);
    A acc = 0;
    for (int64_t k = 0; k < n; ++k) {
      const A v = to_acc<A>(x[base + k * inner]);
      acc += p == 1 ? (v < A(0) ? -v : v) : v * v;
    }
    const A norm = p == 1 ? acc : sqrt(acc);
    for (int64_t k = 0; k < n; ++k)
      y[base + k * inner] = from_acc<T>(norm == A(0) ? A(0) : to_acc<A>(x[base + k * inner]) / norm);
  }
}

template <typename T>
__global__ void lrn_kernel(LrnParams p) {
  using A = float_acc_t<T>;
  const auto* x = static_cast<const T*>(p.x);
  auto* y = static_cast<T*>(p.y);
  const int64_t below = (p.size - 1) / 2, above = p.size - 1 - below;  // floor and ceil of (size - 1) / 2
  const A scale = static_cast<A>(p.alpha) / static_cast<A>(p.size);
  const int64_t total = p.n * p.c * p.inner, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t r = e / p.inner, i = e - r * p.inner, b = r / p.c, ch = r - b * p.c;
    const int64_t lo = ch - below < 0 ? 0 : ch - below, hi = ch + above >= p.c ? p.c - 1 : ch + above;
    A sq = 0;
    for (int64_t k = lo; k <= hi; ++k) {
      const A v = to_acc<A>(x[(b * p.c + k) * p.inner + i]);
      sq += v * v;
    }
    y[e] = from_acc<T>(to_acc<A>(x[e]) / pow(static_cast<A>(p.bias) + scale * sq, static_cast<A>(p.beta)));
  }
}

struct KeptIndex {  // an element's index among the kept dims: sum of coord * out_stride
  int rank = 0;
  int64_t dims[kMaxRank] = {}, out_strides[kMaxRank] = {};
};

template <typename T>
__global__ void mvn_apply_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t total, KeptIndex g,
                                 const float_acc_t<T>* __restrict__ mean, const float_acc_t<T>* __restrict__ var) {
  using A = float_acc_t<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    int64_t rest = e, o = 0;
    for (int d = g.rank - 1; d >= 0; --d) {
      const int64_t q = rest / g.dims[d];
      o += (rest - q * g.dims[d]) * g.out_strides[d];
      rest = q;
    }
    y[e] = from_acc<T>((to_acc<A>(x[e]) - mean[o]) / (sqrt(var[o]) + A(1e-9)));
  }
}

}  // namespace

Status launch_batch_norm(const BatchNormParams& p, cudaStream_t stream) {
  const int64_t total = p.n * p.c * p.inner;
  if (total == 0) return Status::ok();
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "BatchNormalization",
                            batch_norm_kernel<T><<<grid_for(total, kBlock), kBlock, 0, stream>>>(p));
  return last_launch_status("batch_norm_kernel");
}

Status launch_running_stat(const RunningStatParams& p, cudaStream_t stream) {
  if (p.count == 0) return Status::ok();
  if (p.dtype == DType::kF64)
    running_stat_kernel<double><<<grid_for(p.count, kBlock), kBlock, 0, stream>>>(p);
  else
    running_stat_kernel<float><<<grid_for(p.count, kBlock), kBlock, 0, stream>>>(p);
  return last_launch_status("running_stat_kernel");
}

Status launch_lp_norm(const LpNormParams& p, cudaStream_t stream) {
  if (p.outer * p.n * p.inner == 0) return Status::ok();
  if (p.p != 1 && p.p != 2) return unsupported("LpNormalization: p = {} (1 or 2)", p.p);
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "LpNormalization", {
    const auto* x = static_cast<const T*>(p.x);
    auto* y = static_cast<T*>(p.y);
    if (p.inner == 1) {
      const RowLaunch l = row_launch(p.outer, p.n);
      lp_rows_kernel<T><<<l.grid, l.block, 0, stream>>>(x, y, p.outer, p.n, l.group, p.p);
    } else {
      lp_strided_kernel<T>
          <<<grid_for(p.outer * p.inner, kBlock), kBlock, 0, stream>>>(x, y, p.outer, p.n, p.inner, p.p);
    }
  });
  return last_launch_status("LpNormalization kernel");
}

Status launch_lrn(const LrnParams& p, cudaStream_t stream) {
  const int64_t total = p.n * p.c * p.inner;
  if (total == 0) return Status::ok();
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "LRN", lrn_kernel<T><<<grid_for(total, kBlock), kBlock, 0, stream>>>(p));
  return last_launch_status("lrn_kernel");
}

Status launch_mvn_apply(const MvnApplyParams& p, cudaStream_t stream) {
  if (p.dims.size() > static_cast<size_t>(kMaxRank))
    return unsupported("MeanVarianceNormalization: rank {} (the CUDA kernel takes up to {})", p.dims.size(), kMaxRank);
  KeptIndex g;
  g.rank = static_cast<int>(p.dims.size());
  int64_t total = 1, out_stride = 1;
  for (size_t d = p.dims.size(); d-- > 0;) {
    g.dims[d] = p.dims[d];
    g.out_strides[d] = p.reduced[d] ? 0 : out_stride;
    if (!p.reduced[d]) out_stride *= p.dims[d];
    total *= p.dims[d];
  }
  if (total == 0) return Status::ok();
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "MeanVarianceNormalization", {
    using A = float_acc_t<T>;
    mvn_apply_kernel<T>
        <<<grid_for(total, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y), total, g,
                                                         static_cast<const A*>(p.mean), static_cast<const A*>(p.var));
  });
  return last_launch_status("mvn_apply_kernel");
}

}  // namespace kiln::cuda
