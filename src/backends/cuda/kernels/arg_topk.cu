// ArgMax/ArgMin: a group of threads per row when the axis is the last one
// (row_launch.cuh), else a thread per (outer, inner) slice walking the axis
// (adjacent threads read adjacent addresses). Candidates are ordered by a
// strict total order (NaN first, then value, then index), so any reduction
// tree picks what the CPU kernel's left-to-right scan picks.
//
// TopK: every slice's elements become unsigned keys whose order is the
// values' (sign-flipped floats, -0 as +0; complemented for `largest`), a
// stable segmented radix sort (CUB) orders the indices, and the first k are
// written with their original elements.
#include <cub/device/device_segmented_sort.cuh>

#include "backends/cuda/kernels/arg_topk.cuh"
#include "backends/cuda/kernels/reduce_common.cuh"
#include "backends/cuda/kernels/row_launch.cuh"

namespace kiln::cuda {
namespace {

// The type an element is compared in.
template <typename T>
using cmp_t = std::conditional_t<std::is_same_v<T, double>, double,
                                 std::conditional_t<std::is_floating_point_v<T> || kIs16BitFloat<T>, float,
                                                    std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>>;

// Whether candidate (v1, k1) beats (v2, k2); k < 0 is no candidate.
template <typename K>
__device__ __forceinline__ bool arg_better(K v1, int64_t k1, K v2, int64_t k2, bool is_max, bool last) {
  if (k2 < 0) return k1 >= 0;
  if (k1 < 0) return false;
  const bool n1 = is_nan(v1), n2 = is_nan(v2);
  if (n1 != n2) return n1;
  if (!n1 && v1 != v2) return is_max ? v1 > v2 : v1 < v2;
  return last ? k1 > k2 : k1 < k2;
}

template <typename T>
__global__ void __launch_bounds__(1024) arg_rows_kernel(const T* __restrict__ x, int64_t* __restrict__ y, int64_t rows,
                                                        int64_t n, int group, bool is_max, bool last) {
  using K = cmp_t<T>;
  __shared__ K sv[32];
  __shared__ int64_t sk[32];
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group, warp = threadIdx.x / 32;
  const int64_t first = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (rows - first + step - 1) / step;  // the same for the whole block
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = first + threadIdx.x / group + it * step;
    const bool active = row < rows;
    K best{};
    int64_t best_k = -1;
    if (active)
      for (int64_t c = lane; c < n; c += group) {
        const K v = to_acc<K>(x[row * n + c]);
        if (arg_better(v, c, best, best_k, is_max, last)) best = v, best_k = c;
      }
    for (int off = 16; off > 0; off >>= 1) {
      const K ov = shfl_xor(best, off);
      const int64_t ok = shfl_xor(best_k, off);
      if (arg_better(ov, ok, best, best_k, is_max, last)) best = ov, best_k = ok;
    }
    if (group > 32) {
      __syncthreads();
      if (threadIdx.x % 32 == 0) sv[warp] = best, sk[warp] = best_k;
      __syncthreads();
      const int wpg = group / 32, w0 = warp / wpg * wpg;
      for (int w = w0; w < w0 + wpg; ++w)
        if (arg_better(sv[w], sk[w], best, best_k, is_max, last)) best = sv[w], best_k = sk[w];
    }
    if (active && lane == 0) y[row] = best_k;
  }
}

template <typename T>
__global__ void arg_strided_kernel(const T* __restrict__ x, int64_t* __restrict__ y, int64_t outer, int64_t n,
                                   int64_t inner, bool is_max, bool last) {
  using K = cmp_t<T>;
  const int64_t count = outer * inner, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < count; s += stride) {
    const int64_t o = s / inner;
    const T* p = x + o * n * inner + (s - o * inner);
    K best{};
    int64_t best_k = -1;
    for (int64_t k = 0; k < n; ++k) {
      const K v = to_acc<K>(p[k * inner]);
      if (arg_better(v, k, best, best_k, is_max, last)) best = v, best_k = k;
    }
    y[s] = best_k;
  }
}

template <typename T>
Status run_arg(const ArgReduceParams& p, cudaStream_t stream) {
  const auto* x = static_cast<const T*>(p.x);
  if (p.inner == 1) {
    const RowLaunch l = row_launch(p.outer, p.n);
    arg_rows_kernel<T><<<l.grid, l.block, 0, stream>>>(x, p.y, p.outer, p.n, l.group, p.is_max, p.select_last_index);
  } else {
    constexpr int kBlock = 256;
    arg_strided_kernel<T><<<grid_for(p.outer * p.inner, kBlock), kBlock, 0, stream>>>(x, p.y, p.outer, p.n, p.inner,
                                                                                      p.is_max, p.select_last_index);
  }
  return last_launch_status("arg reduce kernel");
}

// ---- TopK ----

template <typename T>
using sort_key_t = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;

template <typename T>
__device__ __forceinline__ sort_key_t<T> sort_key(T v, bool largest) {
  using K = sort_key_t<T>;
  constexpr int kBits = 8 * sizeof(T);
  constexpr K kSign = K(1) << (kBits - 1);
  K key;
  if constexpr (kIs16BitFloat<T> || std::is_floating_point_v<T>) {
    K bits;
    if constexpr (std::is_same_v<T, float>)
      bits = __float_as_uint(v);
    else if constexpr (std::is_same_v<T, double>)
      bits = static_cast<K>(__double_as_longlong(v));
    else if constexpr (std::is_same_v<T, __half>)
      bits = __half_as_ushort(v);
    else
      bits = __bfloat16_as_ushort(v);
    if (bits == kSign) bits = 0;  // -0 sorts with +0
    constexpr K kMask = kBits == 8 * sizeof(K) ? ~K(0) : (K(1) << kBits) - 1;
    key = (bits & kSign) ? (~bits & kMask) : (bits | kSign);
  } else if constexpr (std::is_signed_v<T>) {
    key = static_cast<K>(static_cast<std::make_unsigned_t<T>>(v)) ^ kSign;
  } else {
    key = static_cast<K>(v);
  }
  return largest ? ~key : key;  // ascending sort then puts the largest first
}

template <typename T>
__global__ void topk_prepare_kernel(const T* __restrict__ x, sort_key_t<T>* __restrict__ keys,
                                    int32_t* __restrict__ idx, int64_t* __restrict__ offsets, int64_t slices, int64_t n,
                                    int64_t inner, bool largest) {
  const int64_t total = slices * n, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t s = e / n, j = e - s * n, o = s / inner, i = s - o * inner;
    keys[e] = sort_key(x[(o * n + j) * inner + i], largest);
    idx[e] = static_cast<int32_t>(j);
  }
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s <= slices; s += stride) offsets[s] = s * n;
}

template <typename T>
__global__ void topk_write_kernel(const T* __restrict__ x, const int32_t* __restrict__ sorted, T* __restrict__ values,
                                  int64_t* __restrict__ indices, int64_t slices, int64_t n, int64_t inner, int64_t k) {
  const int64_t total = slices * k, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t s = e / k, j = e - s * k, o = s / inner, i = s - o * inner;
    const int64_t src = sorted[s * n + j];
    const int64_t at = (o * k + j) * inner + i;
    if (values) values[at] = x[(o * n + src) * inner + i];
    if (indices) indices[at] = src;
  }
}

struct TopKScratch {
  void *keys_in, *keys_out, *idx_in, *idx_out, *offsets, *temp;
  size_t temp_bytes, total;
};

template <typename K>
Expected<TopKScratch> topk_scratch(const TopKParams& p, void* base) {
  const int64_t slices = p.outer * p.inner, items = slices * p.n;
  size_t temp_bytes = 0;
  KILN_CUDA_RETURN_IF_ERROR((cub::DeviceSegmentedSort::StableSortPairs<K, int32_t>(
      nullptr, temp_bytes, static_cast<const K*>(nullptr), static_cast<K*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), items, slices,
      static_cast<int64_t*>(nullptr), static_cast<int64_t*>(nullptr))));
  ScratchCarver carve(base);
  TopKScratch s;
  s.keys_in = carve.take(size_t(items) * sizeof(K));
  s.keys_out = carve.take(size_t(items) * sizeof(K));
  s.idx_in = carve.take(size_t(items) * 4);
  s.idx_out = carve.take(size_t(items) * 4);
  s.offsets = carve.take(size_t(slices + 1) * 8);
  s.temp = carve.take(temp_bytes);
  s.temp_bytes = temp_bytes;
  s.total = carve.total();
  return s;
}

template <typename T>
Status run_topk(const TopKParams& p, cudaStream_t stream) {
  using K = sort_key_t<T>;
  KILN_ASSIGN_OR_RETURN(TopKScratch s, topk_scratch<K>(p, p.workspace));
  if (!p.workspace || p.workspace_bytes < s.total)
    return invalid_argument("TopK: workspace of {} bytes, {} needed", p.workspace_bytes, s.total);
  const int64_t slices = p.outer * p.inner;
  const auto* x = static_cast<const T*>(p.x);
  auto* keys_in = static_cast<K*>(s.keys_in);
  auto* idx_in = static_cast<int32_t*>(s.idx_in);
  auto* idx_out = static_cast<int32_t*>(s.idx_out);
  auto* offsets = static_cast<int64_t*>(s.offsets);
  constexpr int kBlock = 256;
  topk_prepare_kernel<T><<<grid_for(slices * p.n, kBlock), kBlock, 0, stream>>>(x, keys_in, idx_in, offsets, slices,
                                                                                p.n, p.inner, p.largest);
  KILN_RETURN_IF_ERROR(last_launch_status("topk_prepare_kernel"));
  size_t temp_bytes = s.temp_bytes;
  KILN_CUDA_RETURN_IF_ERROR(
      cub::DeviceSegmentedSort::StableSortPairs(s.temp, temp_bytes, keys_in, static_cast<K*>(s.keys_out), idx_in,
                                                idx_out, slices * p.n, slices, offsets, offsets + 1, stream));
  topk_write_kernel<T><<<grid_for(slices * p.k, kBlock), kBlock, 0, stream>>>(x, idx_out, static_cast<T*>(p.values),
                                                                              p.indices, slices, p.n, p.inner, p.k);
  return last_launch_status("topk_write_kernel");
}

// Any dtype the kernels take: the float types and the integers.
#define KILN_CUDA_DISPATCH_NUMERIC(dtype, what, ...)     \
  if (is_float_dtype(dtype)) {                           \
    KILN_CUDA_DISPATCH_FLOATS(dtype, what, __VA_ARGS__); \
  } else {                                               \
    KILN_CUDA_DISPATCH_INTS(dtype, what, __VA_ARGS__);   \
  }

}  // namespace

Status launch_arg_reduce(const ArgReduceParams& p, cudaStream_t stream) {
  if (p.outer * p.inner == 0) return Status::ok();
  if (p.n == 0) return invalid_argument("ArgMax/ArgMin: the reduced axis is empty");
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "ArgMax/ArgMin", return run_arg<T>(p, stream));
  return Status::ok();
}

size_t topk_workspace_bytes(const TopKParams& p) {
  size_t bytes = 0;
  auto size_for = [&](auto key) {
    auto s = topk_scratch<decltype(key)>(p, nullptr);
    bytes = s.is_ok() ? s->total : 0;
  };
  if (p.outer * p.inner * p.n == 0) return 0;
  if (p.dtype == DType::kF64 || p.dtype == DType::kI64 || p.dtype == DType::kU64)
    size_for(uint64_t{});
  else
    size_for(uint32_t{});
  return bytes;
}

Status launch_topk(const TopKParams& p, cudaStream_t stream) {
  if (p.outer * p.inner * p.k == 0) return Status::ok();
  if (p.n > INT32_MAX) return unsupported("TopK: an axis of {} elements (the CUDA kernel takes < 2^31)", p.n);
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "TopK", return run_topk<T>(p, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
