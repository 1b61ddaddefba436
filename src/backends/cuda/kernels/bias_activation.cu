#include "backends/cuda/kernels/bias_activation.cuh"
#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {
namespace {

// The formulas of the CPU's Relu and Gelu kernels, in float.
__device__ __forceinline__ float activate(BiasActivation act, float x) {
  switch (act) {
    case BiasActivation::kRelu: return x < 0.f ? 0.f : x;
    case BiasActivation::kGelu: return 0.5f * x * (1.f + erff(x / sqrtf(2.f)));
    case BiasActivation::kGeluTanh: {
      const float k = sqrtf(2.f / static_cast<float>(M_PI));
      return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    case BiasActivation::kNone: break;
  }
  return x;
}

template <typename T>
__global__ void bias_activation_kernel(T* y, const T* bias, int64_t count, int64_t n, BiasActivation act) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = to_float(y[i]);
    if (bias) v += to_float(bias[i % n]);
    y[i] = from_float<T>(activate(act, v));
  }
}

}  // namespace

Status launch_bias_activation(const BiasActivationParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.n < 0) return invalid_argument("bias_activation: rows={} n={}", p.rows, p.n);
  const int64_t count = p.rows * p.n;
  if (count == 0 || (!p.bias && p.activation == BiasActivation::kNone)) return Status::ok();
  constexpr int kBlock = 256;
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "bias_activation",
                           bias_activation_kernel<T><<<grid_for(count, kBlock), kBlock, 0, stream>>>(
                               static_cast<T*>(p.y), static_cast<const T*>(p.bias), count, p.n, p.activation));
  KILN_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::ok();
}

}  // namespace kiln::cuda
