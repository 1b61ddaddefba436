// Counter-based draws: uniform(k) = the top 53 bits of mix(seed ^ mix(offset
// + k)) scaled to [0, 1); a normal takes two uniforms (Box-Muller, as the CPU
// kernel). The launch counter for unseeded ops is a __device__ variable
// advanced by a one-thread kernel queued after the draw (stream-ordered, and
// captured into CUDA graphs with it).
#include "backends/cuda/kernels/index_map.cuh"
#include "backends/cuda/kernels/random.cuh"

namespace kiln::cuda {
namespace {

__device__ unsigned long long g_random_launches = 0;

// The SplitMix64 output function: a bijective 64-bit mix.
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct Draws {
  uint64_t key;
  // Uniform in [0, 1) with 53 random bits: draw k of this key.
  __device__ double uniform(uint64_t k) const { return static_cast<double>(mix64(key ^ mix64(k)) >> 11) * 0x1.0p-53; }
  __device__ double normal(uint64_t k) const {
    const double u1 = 1.0 - uniform(2 * k), u2 = uniform(2 * k + 1);
    return sqrt(-2.0 * log(u1)) * cospi(2.0 * u2);
  }
};

__device__ __forceinline__ Draws draws_for(uint64_t seed, bool fresh) {
  uint64_t key = mix64(seed + 0x9e3779b97f4a7c15ull);
  if (fresh) key = mix64(key ^ static_cast<uint64_t>(g_random_launches));
  return {key};
}

__global__ void advance_launches_kernel() { g_random_launches = g_random_launches + 1; }

template <typename T>
__device__ __forceinline__ void store_double(T* y, int64_t i, double v) {
  if constexpr (kIs16BitFloat<T>)
    y[i] = from_float<T>(static_cast<float>(v));
  else
    y[i] = static_cast<T>(v);
}

template <typename T>
__global__ void random_kernel(RandomParams p) {
  const Draws d = draws_for(p.seed, p.fresh_each_launch);
  T* y = static_cast<T*>(p.y);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride) {
    double v;
    switch (p.kind) {
      case RandomKind::kUniform: v = p.a + (p.b - p.a) * d.uniform(i); break;
      case RandomKind::kNormal: v = p.a + p.b * d.normal(i); break;
      default: v = d.uniform(i) < load_as_double(p.p, p.p_dtype, i) ? 1.0 : 0.0; break;
    }
    store_double(y, i, v);
  }
}

// One thread per (row, sample): the row's softmax CDF walked to the draw.
template <typename T>
__global__ void multinomial_kernel(MultinomialParams p) {
  const Draws d = draws_for(p.seed, p.fresh_each_launch);
  const T* x = static_cast<const T*>(p.x);
  const int64_t total = p.batch * p.samples, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const T* row = x + (i / p.samples) * p.classes;
    double top = -INFINITY, sum = 0;
    for (int64_t c = 0; c < p.classes; ++c) top = fmax(top, static_cast<double>(load_c(row[c])));
    for (int64_t c = 0; c < p.classes; ++c) sum += exp(static_cast<double>(load_c(row[c])) - top);
    const double u = d.uniform(i) * sum;
    int64_t c = 0;
    double cdf = exp(static_cast<double>(load_c(row[0])) - top);
    while (c + 1 < p.classes && cdf <= u) cdf += exp(static_cast<double>(load_c(row[++c])) - top);
    if (p.y_i64)
      static_cast<int64_t*>(p.y)[i] = c;
    else
      static_cast<int32_t*>(p.y)[i] = static_cast<int32_t>(c);
  }
}

Status advance(bool fresh, cudaStream_t stream) {
  if (!fresh) return Status::ok();
  advance_launches_kernel<<<1, 1, 0, stream>>>();
  return last_launch_status("advance_launches_kernel");
}

}  // namespace

Status launch_random(const RandomParams& p, cudaStream_t stream) {
  if (p.n <= 0) return Status::ok();
  if (p.kind == RandomKind::kBernoulli && p.p_dtype != DType::kF32 && p.p_dtype != DType::kF64 &&
      p.p_dtype != DType::kF16 && p.p_dtype != DType::kBF16)
    return unsupported("Bernoulli: input dtype {} (the CUDA kernel takes a float type)", dtype_name(p.p_dtype));
  constexpr int kBlock = 256;
  KILN_CUDA_DISPATCH_NUMERIC_OR_BOOL(p.dtype, "random", {
    random_kernel<T><<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(p);
    KILN_RETURN_IF_ERROR(last_launch_status("random_kernel"));
  });
  return advance(p.fresh_each_launch, stream);
}

Status launch_multinomial(const MultinomialParams& p, cudaStream_t stream) {
  const int64_t total = p.batch * p.samples;
  if (total <= 0) return Status::ok();
  if (p.classes < 1) return invalid_argument("Multinomial: input must be [batch, classes >= 1]");
  constexpr int kBlock = 128;
  const unsigned grid = grid_for(total, kBlock);
  switch (p.dtype) {
    case DType::kF32: multinomial_kernel<float><<<grid, kBlock, 0, stream>>>(p); break;
    case DType::kF64: multinomial_kernel<double><<<grid, kBlock, 0, stream>>>(p); break;
    case DType::kF16: multinomial_kernel<__half><<<grid, kBlock, 0, stream>>>(p); break;
    case DType::kBF16: multinomial_kernel<__nv_bfloat16><<<grid, kBlock, 0, stream>>>(p); break;
    default: return unsupported("Multinomial: dtype {} (the CUDA kernel takes float types)", dtype_name(p.dtype));
  }
  KILN_RETURN_IF_ERROR(last_launch_status("multinomial_kernel"));
  return advance(p.fresh_each_launch, stream);
}

}  // namespace kiln::cuda
