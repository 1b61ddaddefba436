// A grid-stride loop over the group's elements; each thread reads R and T
// itself (two cached loads) and applies the step in double, as the CPU does.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/training.cuh"

namespace kiln::cuda {
namespace {

// Omitted outputs (null) are skipped.
template <typename T>
__device__ __forceinline__ void store_d(void* p, int64_t i, double v) {
  if (!p) return;
  if constexpr (kIs16BitFloat<T>)
    static_cast<T*>(p)[i] = from_float<T>(static_cast<float>(v));
  else
    static_cast<T*>(p)[i] = static_cast<T>(v);
}

template <typename T>
__global__ void optimizer_kernel(OptimizerParams p) {
  const double r_in = load_as_double(p.r, p.r_dtype, 0), t = load_as_double(p.t, p.t_dtype, 0);
  const T* x = static_cast<const T*>(p.x);
  const T* g = static_cast<const T*>(p.g);
  const T* s1 = static_cast<const T*>(p.s1);
  const T* s2 = static_cast<const T*>(p.s2);
  // The learning rate of this step (the same for every element).
  double r = r_in;
  if (p.kind == OptimizerKind::kAdagrad) r = r_in / (1 + t * p.decay_factor);
  if (p.kind == OptimizerKind::kAdam && t > 0)
    r = r_in * sqrt(1 - pow(p.beta, t)) / (1 - pow(p.alpha, t));  // bias correction from the second step on
  const double momentum_b = t > 0 ? p.beta : 1;                   // the gradient's coefficient is 1 on the first step
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride) {
    const double xi = to_double(x[i]), gi = p.norm_coefficient * xi + to_double(g[i]), a = to_double(s1[i]);
    switch (p.kind) {
      case OptimizerKind::kAdagrad: {
        const double h = a + gi * gi;
        store_d<T>(p.x_out, i, xi - r * gi / (sqrt(h) + p.epsilon));
        store_d<T>(p.s1_out, i, h);
        break;
      }
      case OptimizerKind::kMomentum:
      case OptimizerKind::kNesterov: {
        const double v = p.alpha * a + momentum_b * gi;
        store_d<T>(p.x_out, i, p.kind == OptimizerKind::kMomentum ? xi - r * v : xi - r * (gi + p.alpha * v));
        store_d<T>(p.s1_out, i, v);
        break;
      }
      case OptimizerKind::kAdam: {
        const double v = p.alpha * a + (1 - p.alpha) * gi;
        const double h = p.beta * to_double(s2[i]) + (1 - p.beta) * gi * gi;
        store_d<T>(p.x_out, i, (1 - p.norm_coefficient_post) * (xi - r * v / (sqrt(h) + p.epsilon)));
        store_d<T>(p.s1_out, i, v);
        store_d<T>(p.s2_out, i, h);
        break;
      }
    }
  }
}

}  // namespace

Status launch_optimizer(const OptimizerParams& p, cudaStream_t stream) {
  if (p.n <= 0) return Status::ok();
  constexpr int kBlock = 256;
  const unsigned grid = grid_for(p.n, kBlock);
  switch (p.dtype) {
    case DType::kF32: optimizer_kernel<float><<<grid, kBlock, 0, stream>>>(p); break;
    case DType::kF64: optimizer_kernel<double><<<grid, kBlock, 0, stream>>>(p); break;
    case DType::kF16: optimizer_kernel<__half><<<grid, kBlock, 0, stream>>>(p); break;
    case DType::kBF16: optimizer_kernel<__nv_bfloat16><<<grid, kBlock, 0, stream>>>(p); break;
    default: return unsupported("optimizer: dtype {} (the CUDA kernel takes float types)", dtype_name(p.dtype));
  }
  return last_launch_status("optimizer_kernel");
}

}  // namespace kiln::cuda
