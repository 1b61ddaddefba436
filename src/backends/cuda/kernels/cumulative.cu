// CumSum/CumProd (one thread per slice, in order) and Range (one thread per
// element, rounding each operation as the CPU does).
#include "backends/cuda/kernels/cumulative.cuh"
#include "backends/cuda/kernels/index_map.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

template <typename T, bool kProduct>
__global__ void cumulative_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t slices, int64_t n, int64_t inner,
                                  bool exclusive, bool reverse) {
  using C = compute_of<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < slices; s += stride) {
    const int64_t base = s / inner * n * inner + s % inner;
    C acc = kProduct ? C(1) : C(0);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t at = base + (reverse ? n - 1 - j : j) * inner;
      const C v = load_c(x[at]);
      const C next = kProduct ? static_cast<C>(acc * v) : static_cast<C>(acc + v);
      if (!exclusive) acc = next;
      y[at] = store_c<T>(acc);
      if (exclusive) acc = next;
    }
  }
}

template <typename T, typename C>
__global__ void range_kernel(T* __restrict__ y, int64_t n, C start, C delta) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const C ci = static_cast<C>(i);
    C r;
    if constexpr (std::is_same_v<C, float>)
      r = __fadd_rn(start, __fmul_rn(ci, delta));
    else if constexpr (std::is_same_v<C, double>)
      r = __dadd_rn(start, __dmul_rn(ci, delta));
    else
      r = static_cast<C>(start + ci * delta);
    y[i] = store_c<T>(r);
  }
}

template <typename T>
Status launch_cumulative_as(const CumulativeParams& p, int64_t slices, int64_t n, int64_t inner, cudaStream_t stream) {
  const auto x = static_cast<const T*>(p.x);
  const auto y = static_cast<T*>(p.y);
  const unsigned grid = grid_for(slices, kBlock);
  if (p.product)
    cumulative_kernel<T, true><<<grid, kBlock, 0, stream>>>(x, y, slices, n, inner, p.exclusive, p.reverse);
  else
    cumulative_kernel<T, false><<<grid, kBlock, 0, stream>>>(x, y, slices, n, inner, p.exclusive, p.reverse);
  return last_launch_status("cumulative_kernel");
}

template <typename T>
Status launch_range_as(const RangeParams& p, cudaStream_t stream) {
  using C = compute_of<T>;
  C start, delta;
  if constexpr (std::is_floating_point_v<C>) {
    start = static_cast<C>(p.f_start), delta = static_cast<C>(p.f_delta);
  } else {
    start = static_cast<C>(p.i_start), delta = static_cast<C>(p.i_delta);
  }
  range_kernel<T, C><<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(static_cast<T*>(p.y), p.n, start, delta);
  return last_launch_status("range_kernel");
}

}  // namespace

Status launch_cumulative(const CumulativeParams& p, cudaStream_t stream) {
  const int64_t rank = static_cast<int64_t>(p.dims.size());
  if (p.axis < 0 || p.axis >= rank) return invalid_argument("cumulative: axis {} for rank {}", p.axis, rank);
  const auto axis = static_cast<size_t>(p.axis);
  const int64_t n = p.dims[axis], inner = product(p.dims, axis + 1, p.dims.size());
  const int64_t slices = product(p.dims, 0, axis) * inner;
  if (slices * n == 0) return Status::ok();
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "CumSum/CumProd", return launch_cumulative_as<T>(p, slices, n, inner, stream));
  return Status::ok();
}

Status launch_range(const RangeParams& p, cudaStream_t stream) {
  if (p.n <= 0) return Status::ok();
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "Range", return launch_range_as<T>(p, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
