// Einsum's generic kernel: a thread per output element walks the summed
// labels with an odometer (offsets updated by strides, no divisions in the
// inner loop). Det: a block per matrix, copied to double in the workspace;
// per column the pivot is found by one thread (first largest magnitude, as
// the CPU kernel picks it), then the row factors and the elimination run
// across the block.
#include <type_traits>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/linalg.cuh"

namespace kiln::cuda {
namespace {

struct EinsumGeometry {
  int operands, out_rank, sum_rank;
  const void* inputs[kMaxEinsumOperands];
  int64_t out_dims[kMaxEinsumLabels], sum_dims[kMaxEinsumLabels];
  int64_t out_strides[kMaxEinsumOperands][kMaxEinsumLabels], sum_strides[kMaxEinsumOperands][kMaxEinsumLabels];
};

template <typename T>
using einsum_acc = std::conditional_t<std::is_integral_v<T>, T, double>;

template <typename T>
__device__ __forceinline__ einsum_acc<T> widen(T v) {
  if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>)
    return static_cast<double>(to_float(v));
  else
    return static_cast<einsum_acc<T>>(v);
}

template <typename T>
__device__ __forceinline__ T narrow(einsum_acc<T> v) {
  if constexpr (std::is_same_v<T, __half>)
    return __double2half(v);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __double2bfloat16(v);
  else
    return static_cast<T>(v);
}

template <typename T>
__global__ void einsum_kernel(EinsumGeometry g, T* __restrict__ y, int64_t n, int64_t sum_count) {
  using Acc = einsum_acc<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < n; o += stride) {
    int64_t off[kMaxEinsumOperands] = {};
    int64_t rest = o;
    for (int d = g.out_rank - 1; d >= 0; --d) {
      const int64_t idx = rest % g.out_dims[d];
      rest /= g.out_dims[d];
      for (int i = 0; i < g.operands; ++i) off[i] += idx * g.out_strides[i][d];
    }
    int64_t count[kMaxEinsumLabels] = {};
    Acc acc = 0;
    for (int64_t s = 0; s < sum_count; ++s) {
      Acc prod = 1;
      for (int i = 0; i < g.operands; ++i) prod *= widen(static_cast<const T*>(g.inputs[i])[off[i]]);
      acc += prod;
      for (int d = g.sum_rank - 1; d >= 0; --d) {
        for (int i = 0; i < g.operands; ++i) off[i] += g.sum_strides[i][d];
        if (++count[d] < g.sum_dims[d]) break;
        for (int i = 0; i < g.operands; ++i) off[i] -= g.sum_strides[i][d] * g.sum_dims[d];
        count[d] = 0;
      }
    }
    y[o] = narrow<T>(acc);
  }
}

template <typename T>
Status run_einsum(const EinsumGeometry& g, void* y, int64_t n, int64_t sum_count, cudaStream_t stream) {
  constexpr int kBlock = 128;
  einsum_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(g, static_cast<T*>(y), n, sum_count);
  return last_launch_status("einsum_kernel");
}

template <typename T>
__global__ void det_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t count, int64_t n, double* work) {
  __shared__ double det;
  __shared__ int64_t pivot;
  extern __shared__ double factors[];  // one per row
  for (int64_t mat = blockIdx.x; mat < count; mat += gridDim.x) {
    double* a = work + mat * n * n;
    for (int64_t i = threadIdx.x; i < n * n; i += blockDim.x) a[i] = to_double(x[mat * n * n + i]);
    if (threadIdx.x == 0) det = 1, pivot = 0;
    __syncthreads();
    for (int64_t c = 0; c < n; ++c) {
      if (threadIdx.x == 0) {
        int64_t p = c;
        for (int64_t r = c + 1; r < n; ++r)
          if (fabs(a[r * n + c]) > fabs(a[p * n + c])) p = r;
        pivot = a[p * n + c] == 0 ? -1 : p;
        if (pivot >= 0) det = pivot != c ? -det : det;
      }
      __syncthreads();
      const int64_t p = pivot;
      if (p < 0) break;  // uniform: every thread read the same pivot
      if (p != c)
        for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
          const double t = a[c * n + k];
          a[c * n + k] = a[p * n + k];
          a[p * n + k] = t;
        }
      __syncthreads();
      if (threadIdx.x == 0) det *= a[c * n + c];
      for (int64_t r = c + 1 + threadIdx.x; r < n; r += blockDim.x) factors[r] = a[r * n + c] / a[c * n + c];
      __syncthreads();
      const int64_t width = n - c;
      for (int64_t e = threadIdx.x; e < (n - c - 1) * width; e += blockDim.x) {
        const int64_t r = c + 1 + e / width, k = c + e % width;
        a[r * n + k] -= factors[r] * a[c * n + k];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const double d = pivot < 0 ? 0.0 : det;
      if constexpr (std::is_same_v<T, double>)
        y[mat] = d;
      else if constexpr (std::is_same_v<T, float>)
        y[mat] = static_cast<float>(d);
      else if constexpr (std::is_same_v<T, __half>)
        y[mat] = __double2half(d);
      else
        y[mat] = __double2bfloat16(d);
    }
    __syncthreads();  // det and pivot are reused by the next matrix
  }
}

template <typename T>
Status run_det(const DetParams& p, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(p.n) * sizeof(double);
  if (smem > 48 * 1024) return unsupported("Det: matrices of {} rows (the CUDA kernel takes up to 6144)", p.n);
  const unsigned grid = static_cast<unsigned>(p.count < 65535 ? p.count : 65535);
  det_kernel<T>
      <<<grid, 128, smem, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y), p.count, p.n, p.workspace);
  return last_launch_status("det_kernel");
}

}  // namespace

Status launch_einsum(const EinsumParams& p, cudaStream_t stream) {
  const size_t ops = p.inputs.size();
  if (ops == 0 || ops > static_cast<size_t>(kMaxEinsumOperands) || p.out_dims.size() > kMaxEinsumLabels ||
      p.sum_dims.size() > kMaxEinsumLabels)
    return unsupported("Einsum: {} operands, {} output and {} summed labels (the CUDA kernel takes up to {} and {})",
                       ops, p.out_dims.size(), p.sum_dims.size(), kMaxEinsumOperands, kMaxEinsumLabels);
  EinsumGeometry g{};
  g.operands = static_cast<int>(ops);
  g.out_rank = static_cast<int>(p.out_dims.size());
  g.sum_rank = static_cast<int>(p.sum_dims.size());
  for (size_t i = 0; i < ops; ++i) {
    g.inputs[i] = p.inputs[i];
    for (size_t d = 0; d < p.out_dims.size(); ++d) g.out_strides[i][d] = p.out_strides[i][d];
    for (size_t d = 0; d < p.sum_dims.size(); ++d) g.sum_strides[i][d] = p.sum_strides[i][d];
  }
  for (size_t d = 0; d < p.out_dims.size(); ++d) g.out_dims[d] = p.out_dims[d];
  for (size_t d = 0; d < p.sum_dims.size(); ++d) g.sum_dims[d] = p.sum_dims[d];
  const int64_t n = product(p.out_dims, 0, p.out_dims.size());
  const int64_t sum_count = product(p.sum_dims, 0, p.sum_dims.size());
  if (n == 0) return Status::ok();
  switch (p.dtype) {
    case DType::kF32: return run_einsum<float>(g, p.y, n, sum_count, stream);
    case DType::kF16: return run_einsum<__half>(g, p.y, n, sum_count, stream);
    case DType::kBF16: return run_einsum<__nv_bfloat16>(g, p.y, n, sum_count, stream);
    case DType::kF64: return run_einsum<double>(g, p.y, n, sum_count, stream);
    case DType::kI8: return run_einsum<int8_t>(g, p.y, n, sum_count, stream);
    case DType::kU8: return run_einsum<uint8_t>(g, p.y, n, sum_count, stream);
    case DType::kI16: return run_einsum<int16_t>(g, p.y, n, sum_count, stream);
    case DType::kU16: return run_einsum<uint16_t>(g, p.y, n, sum_count, stream);
    case DType::kI32: return run_einsum<int32_t>(g, p.y, n, sum_count, stream);
    case DType::kU32: return run_einsum<uint32_t>(g, p.y, n, sum_count, stream);
    case DType::kI64: return run_einsum<int64_t>(g, p.y, n, sum_count, stream);
    case DType::kU64: return run_einsum<uint64_t>(g, p.y, n, sum_count, stream);
    default: return unsupported("Einsum: dtype {}", dtype_name(p.dtype));
  }
}

Status launch_det(const DetParams& p, cudaStream_t stream) {
  if (p.count == 0) return Status::ok();
  switch (p.dtype) {
    case DType::kF32: return run_det<float>(p, stream);
    case DType::kF16: return run_det<__half>(p, stream);
    case DType::kBF16: return run_det<__nv_bfloat16>(p, stream);
    case DType::kF64: return run_det<double>(p, stream);
    default: return unsupported("Det: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(p.dtype));
  }
}

}  // namespace kiln::cuda
