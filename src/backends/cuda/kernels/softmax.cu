// Softmax / LogSoftmax / Hardmax along one axis.
// - The axis is the last one (inner == 1): a group of threads (a warp or a
//   block, see row_launch.cuh) owns a row and reads it twice with 16-byte
//   loads: an online max-and-sum pass (each thread rescales its running sum
//   when its max grows; the group then rescales to the row's max), then the
//   write pass, whose re-read hits L1/L2.
// - Otherwise: a thread per (outer, inner) slice walks the axis with stride
//   `inner`, adjacent threads reading adjacent addresses; when there are too
//   few slices to fill the GPU that way, the row kernel's groups take them,
//   reading with stride `inner`.
// Any NaN in a slice makes the whole slice NaN (as the CPU kernel's sum does);
// Hardmax picks the first maximum, NaNs skipped unless the first element is
// one (the CPU kernel's rule).
#include "backends/cuda/kernels/reduce_common.cuh"
#include "backends/cuda/kernels/row_launch.cuh"
#include "backends/cuda/kernels/softmax.cuh"

namespace kiln::cuda {
namespace {

template <typename A>
__device__ __forceinline__ A exp_of(A v) {
  if constexpr (std::is_same_v<A, float>)
    return expf(v);
  else
    return exp(v);
}

// Folds a into the running (max, sum of exp(x - max)).
template <typename A>
__device__ __forceinline__ void online_add(A a, A& m, A& s) {
  if (a != a) {
    s = a;  // NaN sticks
  } else if (a > m) {
    s = s * exp_of(m - a) + A(1);
    m = a;
  } else if (m != -INFINITY) {
    s += exp_of(a - m);
  }
}

// Slices are rows when inner == 1 (16-byte loads); otherwise slice s starts
// at (s / inner) * cols * inner + s % inner with stride inner (few slices
// only: the strided kernel serves many).
template <typename T>
__global__ void __launch_bounds__(1024) softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                                            int64_t cols, int64_t inner, int group, SoftmaxKind kind) {
  using A = float_acc_t<T>;
  __shared__ A smem[32];
  __shared__ int64_t ismem[32];
  const bool vec = inner == 1 && rows_vectorizable<T>(x, cols) && rows_vectorizable<T>(y, cols);
  auto visit = [&](const T* xr, int lane, auto f) {
    if (inner == 1)
      row_visit(xr, cols, lane, group, vec, f);
    else
      for (int64_t c = lane; c < cols; c += group) f(xr[c * inner], c);
  };
  auto map = [&](const T* xr, T* yr, int lane, auto f) {
    if (inner == 1)
      row_map(xr, yr, cols, lane, group, vec, f);
    else
      for (int64_t c = lane; c < cols; c += group) yr[c * inner] = f(xr[c * inner], c);
  };
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t first = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (rows - first + step - 1) / step;  // the same for the whole block: barriers are safe
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = first + threadIdx.x / group + it * step;
    const bool active = row < rows;
    const int64_t slice = active ? row : 0, o = slice / inner;
    const int64_t base = o * cols * inner + (slice - o * inner);
    const T* xr = x + base;
    T* yr = y + base;
    if (kind == SoftmaxKind::kHardmax) {
      A best = -INFINITY;
      int64_t best_col = cols;  // none yet
      if (active)
        visit(xr, lane, [&](T v, int64_t c) {
          const A a = to_acc<A>(v);
          if (a > best) best = a, best_col = c;  // a lane sees its columns in increasing order
        });
      const A row_best = group_reduce_acc<Combine::kMax>(best, group, smem);
      int64_t col = group_reduce_acc<Combine::kMin>(best == row_best ? best_col : cols, group, ismem);
      if (!active) continue;
      if (col == cols || to_acc<A>(xr[0]) != to_acc<A>(xr[0])) col = 0;
      map(xr, yr, lane, [&](T, int64_t c) { return from_acc<T>(A(c == col ? 1 : 0)); });
      continue;
    }
    A m = -INFINITY, s = 0;
    if (active) visit(xr, lane, [&](T v, int64_t) { online_add(to_acc<A>(v), m, s); });
    const A row_max = group_reduce_acc<Combine::kMax>(m, group, smem);
    if (s != A(0)) s *= exp_of(m - row_max);
    const A sum = group_reduce_acc<Combine::kSum>(s, group, smem);
    if (!active) continue;
    if (kind == SoftmaxKind::kLogSoftmax) {
      const A shift = row_max + log(sum);
      map(xr, yr, lane, [&](T v, int64_t) { return from_acc<T>(to_acc<A>(v) - shift); });
    } else {
      const A inv = A(1) / sum;
      map(xr, yr, lane, [&](T v, int64_t) { return from_acc<T>(exp_of(to_acc<A>(v) - row_max) * inv); });
    }
  }
}

template <typename T>
__global__ void softmax_strided_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t cols,
                                       int64_t inner, SoftmaxKind kind) {
  using A = float_acc_t<T>;
  const int64_t n = rows * inner, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += stride) {
    const int64_t o = s / inner, base = o * cols * inner + (s - o * inner);
    const T* xs = x + base;
    T* ys = y + base;
    if (kind == SoftmaxKind::kHardmax) {
      A best = to_acc<A>(xs[0]);
      int64_t col = 0;
      for (int64_t k = 1; k < cols; ++k) {
        const A a = to_acc<A>(xs[k * inner]);
        if (a > best) best = a, col = k;
      }
      for (int64_t k = 0; k < cols; ++k) ys[k * inner] = from_acc<T>(A(k == col ? 1 : 0));
      continue;
    }
    A m = -INFINITY, sum = 0;
    for (int64_t k = 0; k < cols; ++k) online_add(to_acc<A>(xs[k * inner]), m, sum);
    if (kind == SoftmaxKind::kLogSoftmax) {
      const A shift = m + log(sum);
      for (int64_t k = 0; k < cols; ++k) ys[k * inner] = from_acc<T>(to_acc<A>(xs[k * inner]) - shift);
    } else {
      const A inv = A(1) / sum;
      for (int64_t k = 0; k < cols; ++k) ys[k * inner] = from_acc<T>(exp_of(to_acc<A>(xs[k * inner]) - m) * inv);
    }
  }
}

template <typename T>
Status run_softmax(const SoftmaxParams& p, SoftmaxKind kind, cudaStream_t stream) {
  const auto* x = static_cast<const T*>(p.x);
  auto* y = static_cast<T*>(p.y);
  // Fewer slices than ~16 warps' worth of threads: a group per slice beats a
  // thread per slice despite the strided reads.
  constexpr int64_t kMinStridedSlices = 132 * 16 * 32;
  const int64_t slices = p.rows * p.inner;
  if (p.inner == 1 || slices < kMinStridedSlices) {
    const RowLaunch l = row_launch(slices, p.cols);
    softmax_rows_kernel<T><<<l.grid, l.block, 0, stream>>>(x, y, slices, p.cols, p.inner, l.group, kind);
  } else {
    constexpr int kBlock = 256;
    softmax_strided_kernel<T>
        <<<grid_for(p.rows * p.inner, kBlock), kBlock, 0, stream>>>(x, y, p.rows, p.cols, p.inner, kind);
  }
  return last_launch_status("softmax kernel");
}

}  // namespace

Status launch_softmax(const SoftmaxParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0 || p.inner == 0) return Status::ok();
  const SoftmaxKind kind = p.kind == SoftmaxKind::kSoftmax && p.log ? SoftmaxKind::kLogSoftmax : p.kind;
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "softmax", return run_softmax<T>(p, kind, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
