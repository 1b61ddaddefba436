// Cast: one kernel per source type; the destination is a runtime switch
// (uniform across the grid), so 13 instantiations cover all 169 pairs.
// Conversions match the CPU oracle (ir/element_cast.cpp), which takes every
// element through a wide scalar: double for floats, int64 / uint64 for
// integers. So integers reach f16 and bf16 through double and float (two
// roundings, as on the CPU) but f32 directly; float to integer truncates
// toward zero through int64 (uint64 at and above 2^63, saturating past 2^64;
// INT64_MIN below -2^63; NaN -> 0) and then wraps to the width; integer to
// integer wraps; to bool is "!= 0" (NaN is true).
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/data_movement.cuh"
#include "backends/cuda/kernels/elementwise_core.cuh"

namespace kiln::cuda {
namespace {

struct Wide {
  enum Kind : uint8_t { kFloat, kSigned, kUnsigned } kind;
  double f;
  int64_t i;
  uint64_t u;
};

template <typename S>
__device__ __forceinline__ Wide widen_scalar(S v) {
  if constexpr (std::is_same_v<S, bool>)
    return {Wide::kUnsigned, 0, 0, v ? 1u : 0u};
  else if constexpr (std::is_integral_v<S> && std::is_signed_v<S>)
    return {Wide::kSigned, 0, int64_t(v), 0};
  else if constexpr (std::is_integral_v<S>)
    return {Wide::kUnsigned, 0, 0, uint64_t(v)};
  else
    return {Wide::kFloat, static_cast<double>(widen(v)), 0, 0};
}

__device__ __forceinline__ double as_double(const Wide& w) {
  return w.kind == Wide::kFloat ? w.f : w.kind == Wide::kSigned ? static_cast<double>(w.i) : static_cast<double>(w.u);
}

__device__ __forceinline__ uint64_t float_to_int_bits(double f) {
  if (f != f) return 0;
  if (f >= 9223372036854775808.0) return f < 18446744073709551616.0 ? static_cast<uint64_t>(f) : ~uint64_t(0);
  if (f < -9223372036854775808.0) return uint64_t(1) << 63;
  return static_cast<uint64_t>(static_cast<int64_t>(f));
}

__device__ __forceinline__ uint64_t int_bits(const Wide& w) {
  return w.kind == Wide::kFloat ? float_to_int_bits(w.f) : w.kind == Wide::kSigned ? uint64_t(w.i) : w.u;
}

__device__ __forceinline__ bool nonzero(const Wide& w) {
  return w.kind == Wide::kFloat ? w.f != 0 : w.kind == Wide::kSigned ? w.i != 0 : w.u != 0;
}

template <typename D>
__device__ __forceinline__ void put(void* y, int64_t i, D v) {
  static_cast<D*>(y)[i] = v;
}

__device__ __forceinline__ void store(const Wide& w, DType to, void* y, int64_t i) {
  switch (to) {
    case DType::kF32: {
      const float f = w.kind == Wide::kSigned     ? static_cast<float>(w.i)
                      : w.kind == Wide::kUnsigned ? static_cast<float>(w.u)
                                                  : static_cast<float>(w.f);
      return put(y, i, f);
    }
    case DType::kF64: return put(y, i, as_double(w));
    case DType::kF16: return put(y, i, __float2half_rn(static_cast<float>(as_double(w))));
    case DType::kBF16: return put(y, i, __float2bfloat16_rn(static_cast<float>(as_double(w))));
    case DType::kI8: return put(y, i, static_cast<int8_t>(int_bits(w)));
    case DType::kI16: return put(y, i, static_cast<int16_t>(int_bits(w)));
    case DType::kI32: return put(y, i, static_cast<int32_t>(int_bits(w)));
    case DType::kI64: return put(y, i, static_cast<int64_t>(int_bits(w)));
    case DType::kU8: return put(y, i, static_cast<uint8_t>(int_bits(w)));
    case DType::kU16: return put(y, i, static_cast<uint16_t>(int_bits(w)));
    case DType::kU32: return put(y, i, static_cast<uint32_t>(int_bits(w)));
    case DType::kU64: return put(y, i, int_bits(w));
    case DType::kBool: return put(y, i, static_cast<uint8_t>(nonzero(w) ? 1 : 0));
    default: return;
  }
}

template <typename S>
__global__ void cast_kernel(const S* __restrict__ x, void* __restrict__ y, DType to, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    store(widen_scalar(x[i]), to, y, i);
}

size_t element_bytes(DType t) {
  switch (t) {
    case DType::kF64:
    case DType::kI64:
    case DType::kU64: return 8;
    case DType::kF32:
    case DType::kI32:
    case DType::kU32: return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16:
    case DType::kU16: return 2;
    default: return 1;
  }
}

template <typename S>
Status run_cast(const CastParams& p, cudaStream_t stream) {
  constexpr int kBlock = 256;
  cast_kernel<S><<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(static_cast<const S*>(p.x), p.y, p.to, p.n);
  return last_launch_status("cast_kernel");
}

}  // namespace

bool cast_supported(DType t) { return is_compute_float(t) || is_byte_integer(t) || t == DType::kBool; }

Status launch_cast(const CastParams& p, cudaStream_t stream) {
  if (!cast_supported(p.from) || !cast_supported(p.to))
    return unsupported("cast: {} to {} (the CUDA kernel casts among the float, integer and bool dtypes)",
                       dtype_name(p.from), dtype_name(p.to));
  if (p.n == 0) return Status::ok();
  if (p.from == p.to) {
    if (p.x == p.y) return Status::ok();
    KILN_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(p.y, p.x, static_cast<size_t>(p.n) * element_bytes(p.from), cudaMemcpyDeviceToDevice, stream));
    return Status::ok();
  }
  switch (p.from) {
    KILN_EW_FLOAT_CASES(return run_cast<T>(p, stream))
    KILN_EW_INT_CASES(return run_cast<T>(p, stream))
    case DType::kBool: return run_cast<bool>(p, stream);
    default: return Status::ok();
  }
}

}  // namespace kiln::cuda
