// Device helpers of the reduction family (reductions, arg-reductions,
// normalizations, softmax, losses): typed accumulators (float for 32- and
// 16-bit floats, double for f64, 64-bit integers for integer reductions),
// group reductions over any of them, and dtype dispatch including f64 and
// the integer types. Included by .cu files only.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {

// The type a float element is computed in: double for f64, float otherwise.
template <typename T>
using float_acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Element to accumulator (16-bit floats through float; others by conversion).
template <typename A, typename T>
__device__ __forceinline__ A to_acc(T v) {
  if constexpr (kIs16BitFloat<T>)
    return static_cast<A>(to_float(v));
  else
    return static_cast<A>(v);
}

// Accumulator to element (16-bit floats rounded to nearest even).
template <typename T, typename A>
__device__ __forceinline__ T from_acc(A v) {
  if constexpr (kIs16BitFloat<T>)
    return from_float<T>(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

enum class Combine { kSum, kProd, kMax, kMin, kMaxIgnoreNaN };

template <typename A>
__device__ __forceinline__ bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>)
    return v != v;
  else
    return false;
}

template <Combine C, typename A>
__device__ __forceinline__ A combine_acc(A a, A b) {
  if constexpr (C == Combine::kSum) return a + b;
  if constexpr (C == Combine::kProd) return a * b;
  // NaN-propagating: a NaN anywhere makes the result NaN (as the CPU kernel).
  if constexpr (C == Combine::kMax) return (is_nan(a) || a > b) ? a : b;
  if constexpr (C == Combine::kMin) return (is_nan(a) || a < b) ? a : b;
  if constexpr (C == Combine::kMaxIgnoreNaN) return is_nan(b) || a > b ? a : b;
}

// Warp shuffles of 64-bit integers go through (unsigned) long long.
template <typename A>
__device__ __forceinline__ A shfl_xor(A v, int offset) {
  if constexpr (std::is_integral_v<A> && std::is_signed_v<A>)
    return static_cast<A>(__shfl_xor_sync(0xffffffffu, static_cast<long long>(v), offset));
  else if constexpr (std::is_integral_v<A>)
    return static_cast<A>(__shfl_xor_sync(0xffffffffu, static_cast<unsigned long long>(v), offset));
  else
    return __shfl_xor_sync(0xffffffffu, v, offset);
}

template <Combine C, typename A>
__device__ __forceinline__ A warp_reduce_acc(A v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = combine_acc<C>(v, shfl_xor(v, offset));
  return v;
}

// Reduces over a group of `group` consecutive threads of the block (32, or a
// multiple of 32 up to the block); every thread of the group gets the result.
// `smem` holds one A per warp. Warp-sized groups take no barrier. With larger
// groups every thread of the block must call it.
template <Combine C, typename A>
__device__ __forceinline__ A group_reduce_acc(A v, int group, A* smem) {
  v = warp_reduce_acc<C>(v);
  if (group <= 32) return v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warps_per_group = group / 32, first_warp = warp / warps_per_group * warps_per_group;
  __syncthreads();  // smem may still be read by a previous reduction
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  A r = smem[first_warp];
  for (int w = 1; w < warps_per_group; ++w) r = combine_acc<C>(r, smem[first_warp + w]);
  return r;
}

// Loads element i of a float tensor whose dtype is known only at run time
// (normalization parameters may have another float type than X).
template <typename A>
__device__ __forceinline__ A load_float_as(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kF16: return static_cast<A>(__half2float(static_cast<const __half*>(p)[i]));
    case DType::kBF16: return static_cast<A>(__bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]));
    case DType::kF64: return static_cast<A>(static_cast<const double*>(p)[i]);
    default: return static_cast<A>(static_cast<const float*>(p)[i]);
  }
}

template <typename A>
__device__ __forceinline__ void store_float_as(void* p, DType t, int64_t i, A v) {
  switch (t) {
    case DType::kF16: static_cast<__half*>(p)[i] = __float2half_rn(static_cast<float>(v)); break;
    case DType::kBF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v)); break;
    case DType::kF64: static_cast<double*>(p)[i] = static_cast<double>(v); break;
    default: static_cast<float*>(p)[i] = static_cast<float>(v); break;
  }
}

inline bool is_float_dtype(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64;
}

// Elements per 16-byte load of T.
template <typename T>
constexpr int kVec = sizeof(T) >= 16 ? 1 : 16 / static_cast<int>(sizeof(T));

// Whether a row kernel may use 16-byte loads: every row starts 16-byte aligned.
template <typename T>
__device__ __forceinline__ bool rows_vectorizable(const void* p, int64_t cols) {
  return cols % kVec<T> == 0 && (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Calls f(value, col) for the columns of row `xr` that lane `lane` of a group
// of `group` threads owns, with 16-byte loads when `vec`.
template <typename T, typename F>
__device__ __forceinline__ void row_visit(const T* __restrict__ xr, int64_t cols, int lane, int group, bool vec, F f) {
  constexpr int V = kVec<T>;
  if (vec) {
    const auto* xv = reinterpret_cast<const Pack<T, V>*>(xr);
    for (int64_t c = lane; c < cols / V; c += group) {
      const Pack<T, V> pk = xv[c];
#pragma unroll
      for (int j = 0; j < V; ++j) f(pk.v[j], c * V + j);
    }
  } else {
    for (int64_t c = lane; c < cols; c += group) f(xr[c], c);
  }
}

// Writes yr[col] = f(xr[col], col) for the lane's columns (16-byte loads and
// stores when `vec`; yr must then be aligned like xr).
template <typename T, typename F>
__device__ __forceinline__ void row_map(const T* __restrict__ xr, T* __restrict__ yr, int64_t cols, int lane, int group,
                                        bool vec, F f) {
  constexpr int V = kVec<T>;
  if (vec) {
    const auto* xv = reinterpret_cast<const Pack<T, V>*>(xr);
    auto* yv = reinterpret_cast<Pack<T, V>*>(yr);
    for (int64_t c = lane; c < cols / V; c += group) {
      const Pack<T, V> pk = xv[c];
      Pack<T, V> out;
#pragma unroll
      for (int j = 0; j < V; ++j) out.v[j] = f(pk.v[j], c * V + j);
      yv[c] = out;
    }
  } else {
    for (int64_t c = lane; c < cols; c += group) yr[c] = f(xr[c], c);
  }
}

// Offsets of scratch pieces carved from one workspace, each 256-byte aligned.
inline size_t align_up(size_t n, size_t a = 256) { return (n + a - 1) / a * a; }

// Consecutive 256-byte-aligned pieces of one scratch buffer. With a null base
// it only adds up the bytes (the workspace query), with the same layout.
class ScratchCarver {
 public:
  explicit ScratchCarver(void* base) : base_(static_cast<char*>(base)) {}
  void* take(size_t bytes) {
    void* piece = base_ ? base_ + at_ : nullptr;
    at_ += align_up(bytes);
    return piece;
  }
  size_t total() const { return at_; }

 private:
  char* base_;
  size_t at_ = 0;
};

}  // namespace kiln::cuda

#define KILN_CUDA_CASE_TYPE(dtype_enum, type, ...) \
  case ::kiln::DType::dtype_enum: {                \
    using T = type;                                \
    __VA_ARGS__;                                   \
    break;                                         \
  }

// Runs the statement with T bound to the storage type of any float dtype,
// f64 included; other dtypes return `unsupported`.
#define KILN_CUDA_DISPATCH_FLOATS(dtype, what, ...)                                                  \
  switch (dtype) {                                                                                   \
    KILN_CUDA_CASE_TYPE(kF32, float, __VA_ARGS__)                                                    \
    KILN_CUDA_CASE_TYPE(kF16, __half, __VA_ARGS__)                                                   \
    KILN_CUDA_CASE_TYPE(kBF16, __nv_bfloat16, __VA_ARGS__)                                           \
    KILN_CUDA_CASE_TYPE(kF64, double, __VA_ARGS__)                                                   \
    default:                                                                                         \
      return ::kiln::unsupported("{}: dtype {} (the CUDA kernel takes f32, f16, bf16 or f64)", what, \
                                 ::kiln::dtype_name(dtype));                                         \
  }

// The same for the integer dtypes (bool excluded).
#define KILN_CUDA_DISPATCH_INTS(dtype, what, ...)                                                \
  switch (dtype) {                                                                               \
    KILN_CUDA_CASE_TYPE(kI8, int8_t, __VA_ARGS__)                                                \
    KILN_CUDA_CASE_TYPE(kI16, int16_t, __VA_ARGS__)                                              \
    KILN_CUDA_CASE_TYPE(kI32, int32_t, __VA_ARGS__)                                              \
    KILN_CUDA_CASE_TYPE(kI64, int64_t, __VA_ARGS__)                                              \
    KILN_CUDA_CASE_TYPE(kU8, uint8_t, __VA_ARGS__)                                               \
    KILN_CUDA_CASE_TYPE(kU16, uint16_t, __VA_ARGS__)                                             \
    KILN_CUDA_CASE_TYPE(kU32, uint32_t, __VA_ARGS__)                                             \
    KILN_CUDA_CASE_TYPE(kU64, uint64_t, __VA_ARGS__)                                             \
    default:                                                                                     \
      return ::kiln::unsupported("{}: dtype {} (the CUDA kernel takes the integer types)", what, \
                                 ::kiln::dtype_name(dtype));                                     \
  }
