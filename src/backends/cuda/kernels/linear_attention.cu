// LinearAttention: per token, the block decays the state, applies the delta
// rule (each thread one value column: a sequential sum over d_k, as the CPU
// sums), adds k v^T, and reads the state with each query head of the group.
// Barriers separate the steps; the state never leaves shared memory.
#include <type_traits>

#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ float load(const void* p, int64_t i) {
  if constexpr (std::is_same_v<T, double>)
    return static_cast<float>(static_cast<const double*>(p)[i]);
  else
    return to_float(static_cast<const T*>(p)[i]);
}

template <typename T>
__device__ __forceinline__ void put(void* p, int64_t i, float v) {
  if constexpr (std::is_same_v<T, double>)
    static_cast<double*>(p)[i] = v;
  else
    static_cast<T*>(p)[i] = from_float<T>(v);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) linear_attention_kernel(LinearAttentionParams p) {
  extern __shared__ float smem[];
  const int64_t dk = p.d_k, dv = p.d_v, cells = dk * dv, group = p.q_heads / p.kv_heads;
  float* s = smem;         // (d_k, d_v)
  float* k_t = s + cells;  // d_k
  float* v_t = k_t + dk;   // d_v
  float* q_t = v_t + dv;   // d_k
  for (int64_t bk = blockIdx.x; bk < p.batch * p.kv_heads; bk += gridDim.x) {
    const int64_t b = bk / p.kv_heads, kh = bk % p.kv_heads;
    __syncthreads();  // the previous pair's reads of s are done
    for (int64_t e = threadIdx.x; e < cells; e += kThreads)
      s[e] = p.past_state ? load<T>(p.past_state, bk * cells + e) : 0.f;
    for (int64_t t = 0; t < p.len; ++t) {
      const int64_t tok = b * p.len + t;
      for (int64_t d = threadIdx.x; d < dk; d += kThreads) k_t[d] = load<T>(p.k, (tok * p.kv_heads + kh) * dk + d);
      for (int64_t m = threadIdx.x; m < dv; m += kThreads) v_t[m] = load<T>(p.v, (tok * p.kv_heads + kh) * dv + m);
      __syncthreads();
      if (p.gated) {
        for (int64_t e = threadIdx.x; e < cells; e += kThreads) {
          const int64_t d = e / dv;
          const int64_t gi = p.decay_width == p.kv_heads ? tok * p.kv_heads + kh : (tok * p.kv_heads + kh) * dk + d;
          s[e] *= expf(load<T>(p.decay, gi));
        }
        __syncthreads();
      }
      if (p.delta) {
        const float beta = load<T>(p.beta, tok * p.beta_width + (p.beta_width == 1 ? 0 : kh));
        for (int64_t m = threadIdx.x; m < dv; m += kThreads) {
          float retrieved = 0;
          for (int64_t d = 0; d < dk; ++d) retrieved += s[d * dv + m] * k_t[d];
          v_t[m] = beta * (v_t[m] - retrieved);
        }
        __syncthreads();
      }
      for (int64_t e = threadIdx.x; e < cells; e += kThreads) s[e] += k_t[e / dv] * v_t[e % dv];
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        __syncthreads();  // s is updated; q_t is free
        for (int64_t d = threadIdx.x; d < dk; d += kThreads) q_t[d] = load<T>(p.q, (tok * p.q_heads + h) * dk + d);
        __syncthreads();
        for (int64_t m = threadIdx.x; m < dv; m += kThreads) {
          float acc = 0;
          for (int64_t d = 0; d < dk; ++d) acc += q_t[d] * s[d * dv + m];
          put<T>(p.y, (tok * p.q_heads + h) * dv + m, p.scale * acc);
        }
      }
      __syncthreads();  // k_t, v_t and q_t are reloaded next token
    }
    if (p.present_state)
      for (int64_t e = threadIdx.x; e < cells; e += kThreads) put<T>(p.present_state, bk * cells + e, s[e]);
  }
}

template <typename T>
Status run_linear_attention(const LinearAttentionParams& p, cudaStream_t stream) {
  const size_t smem = sizeof(float) * static_cast<size_t>(p.d_k * p.d_v + 2 * p.d_k + p.d_v);
  if (smem > 200 * 1024)
    return unsupported("LinearAttention: a {}x{} state (the CUDA kernel keeps up to 200 KiB in shared memory)", p.d_k,
                       p.d_v);
  auto kernel = linear_attention_kernel<T>;
  KILN_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const int64_t blocks = p.batch * p.kv_heads;
  kernel<<<static_cast<unsigned>(blocks < 0x7fffffff ? blocks : 0x7fffffff), kThreads, smem, stream>>>(p);
  return last_launch_status("linear_attention_kernel");
}

}  // namespace

Status launch_linear_attention(const LinearAttentionParams& p, cudaStream_t stream) {
  if (p.batch * p.kv_heads == 0) return Status::ok();
  if (p.q_heads % p.kv_heads != 0)
    return invalid_argument("LinearAttention: {} query heads for {} key/value heads", p.q_heads, p.kv_heads);
  switch (p.dtype) {
    case DType::kF32: return run_linear_attention<float>(p, stream);
    case DType::kF16: return run_linear_attention<__half>(p, stream);
    case DType::kBF16: return run_linear_attention<__nv_bfloat16>(p, stream);
    case DType::kF64: return run_linear_attention<double>(p, stream);
    default:
      return unsupported("LinearAttention: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(p.dtype));
  }
}

}  // namespace kiln::cuda
