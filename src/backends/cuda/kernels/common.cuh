// Device-side helpers shared by kiln's CUDA kernels: float conversions of the
// 16-bit types (computed in float, stored rounded to nearest even), warp and
// block reductions, and launch-size arithmetic. Included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "backends/cuda/cuda_status.h"
#include "kiln/dtype.h"

namespace kiln::cuda {

constexpr int kMaxRank = 8;

template <typename T>
__device__ __forceinline__ float to_float(T v) {
  return static_cast<float>(v);
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

// Whether T is one of the 16-bit floats (computed in float).
template <typename T>
constexpr bool kIs16BitFloat = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

// A value of any numeric T as a double (the 16-bit floats through float).
template <typename T>
__device__ __forceinline__ double to_double(T v) {
  if constexpr (kIs16BitFloat<T>)
    return static_cast<double>(to_float(v));
  else
    return static_cast<double>(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// 16 bytes of T, for 128-bit loads and stores.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

enum class ReduceKind { kSum, kMax, kMin };

// NaN-propagating max/min: a NaN anywhere in the row makes the result NaN.
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || a > b) ? a : b; }
__device__ __forceinline__ float nan_min(float a, float b) { return (a != a || a < b) ? a : b; }

template <ReduceKind K>
__device__ __forceinline__ float combine(float a, float b) {
  if constexpr (K == ReduceKind::kSum) return a + b;
  if constexpr (K == ReduceKind::kMax) return nan_max(a, b);
  return nan_min(a, b);
}

template <ReduceKind K>
__device__ __forceinline__ float warp_reduce(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = combine<K>(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces over a group of `group` threads (a multiple of 32, or 32 itself) that
// are consecutive in the block; every thread of the group gets the result.
// `smem` holds one float per warp of the block. Groups of 32 need no shared
// memory and no block barrier, so warp-per-row kernels stay barrier-free.
template <ReduceKind K>
__device__ __forceinline__ float group_reduce(float v, int group, float* smem) {
  v = warp_reduce<K>(v);
  if (group <= 32) return v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warps_per_group = group / 32, first_warp = warp / warps_per_group * warps_per_group;
  __syncthreads();  // smem may still be read by a previous reduction
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float r = smem[first_warp];
  for (int w = 1; w < warps_per_group; ++w) r = combine<K>(r, smem[first_warp + w]);
  return r;
}

// Blocks for a grid-stride loop over n items: enough to fill the GPU several
// times over, never more than the items need.
// Element i of a numeric tensor whose dtype is known only at run time, as a
// double (launchers admit only these dtypes; any other reads NaN).
__device__ __forceinline__ double load_as_double(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kF64: return static_cast<const double*>(p)[i];
    case DType::kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::kI8: return static_cast<const int8_t*>(p)[i];
    case DType::kI16: return static_cast<const int16_t*>(p)[i];
    case DType::kI32: return static_cast<const int32_t*>(p)[i];
    case DType::kI64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::kU8: return static_cast<const uint8_t*>(p)[i];
    case DType::kU16: return static_cast<const uint16_t*>(p)[i];
    case DType::kU32: return static_cast<const uint32_t*>(p)[i];
    case DType::kU64: return static_cast<double>(static_cast<const uint64_t*>(p)[i]);
    default: return NAN;
  }
}

inline unsigned grid_for(int64_t n, int block, int64_t max_blocks = 132 * 32) {
  int64_t blocks = (n + block - 1) / block;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
inline bool aligned_to(const void* p, size_t bytes) { return (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

inline int64_t product(const std::vector<int64_t>& d, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= d[i];
  return p;
}

}  // namespace kiln::cuda

// Runs the statement with T bound to the storage type of a float dtype
// (float, __half, __nv_bfloat16); other dtypes return `unsupported`.
#define KILN_CUDA_DISPATCH_FLOAT(dtype, what, ...)                                              \
  switch (dtype) {                                                                              \
    case ::kiln::DType::kF32: {                                                                 \
      using T = float;                                                                          \
      __VA_ARGS__;                                                                              \
      break;                                                                                    \
    }                                                                                           \
    case ::kiln::DType::kF16: {                                                                 \
      using T = __half;                                                                         \
      __VA_ARGS__;                                                                              \
      break;                                                                                    \
    }                                                                                           \
    case ::kiln::DType::kBF16: {                                                                \
      using T = __nv_bfloat16;                                                                  \
      __VA_ARGS__;                                                                              \
      break;                                                                                    \
    }                                                                                           \
    default:                                                                                    \
      return ::kiln::unsupported("{}: dtype {} (the CUDA kernel takes f32, f16 or bf16)", what, \
                                 ::kiln::dtype_name(dtype));                                    \
  }
