// Cast: one kernel per source type; the destination is a runtime switch
// (uniform across the grid), so 6 instantiations cover all 36 pairs.
// Conversions match the CPU oracle (ir/element_cast.h): floats round to
// nearest even; float -> integer truncates toward zero through int64 (NaN ->
// 0, int32 wraps like the CPU); integer -> integer wraps.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/data_movement.cuh"

namespace kiln::cuda {
namespace {

// A source value widened to what every destination can be made from without
// loss beyond the destination's own rounding.
struct Wide {
  bool is_int;
  int64_t i;
  float f;
};

template <typename S>
__device__ __forceinline__ Wide widen(S v) {
  if constexpr (std::is_same_v<S, int32_t> || std::is_same_v<S, int64_t>)
    return {true, int64_t(v), 0.f};
  else if constexpr (std::is_same_v<S, bool>)
    return {true, v ? 1 : 0, 0.f};
  else
    return {false, 0, to_float(v)};
}

// Truncation toward zero through int64, NaN -> 0 (the CPU's rule; the
// hardware conversion alone would give INT64_MIN for NaN).
__device__ __forceinline__ int64_t float_to_i64(float f) { return f != f ? 0 : __float2ll_rz(f); }

template <typename S>
__global__ void cast_kernel(const S* __restrict__ x, void* __restrict__ y, DType to, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const Wide w = widen(x[i]);
    switch (to) {
      case DType::kF32: static_cast<float*>(y)[i] = w.is_int ? static_cast<float>(w.i) : w.f; break;
      case DType::kF16: static_cast<__half*>(y)[i] = w.is_int ? __ll2half_rn(w.i) : __float2half_rn(w.f); break;
      case DType::kBF16:
        static_cast<__nv_bfloat16*>(y)[i] = w.is_int ? __ll2bfloat16_rn(w.i) : __float2bfloat16_rn(w.f);
        break;
      case DType::kI32:
        static_cast<int32_t*>(y)[i] = w.is_int ? static_cast<int32_t>(w.i) : static_cast<int32_t>(float_to_i64(w.f));
        break;
      case DType::kI64: static_cast<int64_t*>(y)[i] = w.is_int ? w.i : float_to_i64(w.f); break;
      case DType::kBool: static_cast<bool*>(y)[i] = w.is_int ? w.i != 0 : w.f != 0.f; break;
      default: break;
    }
  }
}

bool castable(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kI32 || t == DType::kI64 ||
         t == DType::kBool;
}

}  // namespace

Status launch_cast(const CastParams& p, cudaStream_t stream) {
  if (!castable(p.from) || !castable(p.to))
    return unsupported("cast: {} to {} (the CUDA kernel casts among f32, f16, bf16, i32, i64, bool)",
                       dtype_name(p.from), dtype_name(p.to));
  if (p.n == 0) return Status::ok();
  constexpr int kBlock = 256;
  const unsigned grid = grid_for(p.n, kBlock);
  switch (p.from) {
    case DType::kF32:
      cast_kernel<float><<<grid, kBlock, 0, stream>>>(static_cast<const float*>(p.x), p.y, p.to, p.n);
      break;
    case DType::kF16:
      cast_kernel<__half><<<grid, kBlock, 0, stream>>>(static_cast<const __half*>(p.x), p.y, p.to, p.n);
      break;
    case DType::kBF16:
      cast_kernel<__nv_bfloat16><<<grid, kBlock, 0, stream>>>(static_cast<const __nv_bfloat16*>(p.x), p.y, p.to, p.n);
      break;
    case DType::kI32:
      cast_kernel<int32_t><<<grid, kBlock, 0, stream>>>(static_cast<const int32_t*>(p.x), p.y, p.to, p.n);
      break;
    case DType::kI64:
      cast_kernel<int64_t><<<grid, kBlock, 0, stream>>>(static_cast<const int64_t*>(p.x), p.y, p.to, p.n);
      break;
    case DType::kBool:
      cast_kernel<bool><<<grid, kBlock, 0, stream>>>(static_cast<const bool*>(p.x), p.y, p.to, p.n);
      break;
    default: break;
  }
  return last_launch_status("cast_kernel");
}

}  // namespace kiln::cuda
