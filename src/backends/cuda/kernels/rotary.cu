// RotaryEmbedding: a thread per output element. Channel d of a head below
// rotary_embedding_dim belongs to pair k (d / 2 interleaved, d mod half
// otherwise) and is the pair's first or second member; products and sums are
// rounded to the dtype as the CPU oracle rounds them.
#include <type_traits>

#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {
namespace {

template <typename T>
using compute_of = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
__device__ __forceinline__ compute_of<T> widen(T v) {
  if constexpr (std::is_same_v<T, double>)
    return v;
  else
    return to_float(v);
}

template <typename T>
__device__ __forceinline__ T narrow(compute_of<T> v) {
  if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>)
    return v;
  else
    return from_float<T>(v);
}

template <typename T>
__device__ __forceinline__ compute_of<T> rounded(compute_of<T> v) {
  return widen(narrow<T>(v));
}

template <typename T>
__global__ void rotary_kernel(RotaryParams p, int64_t n) {
  using C = compute_of<T>;
  const T* x = static_cast<const T*>(p.x);
  const T* cos = static_cast<const T*>(p.cos);
  const T* sin = static_cast<const T*>(p.sin);
  T* y = static_cast<T*>(p.y);
  const int64_t half = p.rot / 2, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t d = e % p.head, rest = e / p.head;
    if (d >= p.rot) {
      y[e] = x[e];
      continue;
    }
    // (b, s) of the element: its token's row in the caches.
    const int64_t s = p.packed ? (rest / p.heads) % p.len : rest % p.len;
    const int64_t b = rest / (p.heads * p.len);
    const int64_t token = b * p.len + s;
    const int64_t row = p.position_ids ? p.position_ids[token] : token;
    if (row < 0 || row >= p.cache_rows) {
      y[e] = narrow<T>(C(NAN));
      continue;
    }
    const int64_t k = p.interleaved ? d / 2 : (d < half ? d : d - half);
    const bool first = p.interleaved ? d % 2 == 0 : d < half;
    const int64_t base = e - d;
    const int64_t i1 = p.interleaved ? 2 * k : k, i2 = p.interleaved ? 2 * k + 1 : k + half;
    const C c = widen(cos[row * half + k]), sn = widen(sin[row * half + k]);
    const C x1 = widen(x[base + i1]), x2 = widen(x[base + i2]);
    y[e] = first ? narrow<T>(rounded<T>(rounded<T>(c * x1) - rounded<T>(sn * x2)))
                 : narrow<T>(rounded<T>(rounded<T>(sn * x1) + rounded<T>(c * x2)));
  }
}

}  // namespace

Status launch_rotary_embedding(const RotaryParams& p, cudaStream_t stream) {
  const int64_t n = p.batch * p.heads * p.len * p.head;
  if (n == 0) return Status::ok();
  if (p.rot <= 0 || p.rot % 2 != 0 || p.rot > p.head)
    return invalid_argument("RotaryEmbedding: rotated size {} for head size {}", p.rot, p.head);
  constexpr int kBlock = 256;
  const unsigned grid = grid_for(n, kBlock);
  switch (p.dtype) {
    case DType::kF32: rotary_kernel<float><<<grid, kBlock, 0, stream>>>(p, n); break;
    case DType::kF16: rotary_kernel<__half><<<grid, kBlock, 0, stream>>>(p, n); break;
    case DType::kBF16: rotary_kernel<__nv_bfloat16><<<grid, kBlock, 0, stream>>>(p, n); break;
    case DType::kF64: rotary_kernel<double><<<grid, kBlock, 0, stream>>>(p, n); break;
    default:
      return unsupported("RotaryEmbedding: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(p.dtype));
  }
  return last_launch_status("rotary_kernel");
}

}  // namespace kiln::cuda
