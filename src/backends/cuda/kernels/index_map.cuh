// Device-side pieces shared by the index-mapping kernels (Expand, Tile, Pad,
// DepthToSpace, GatherElements, OneHot, ...): most of those ops write each
// output element from one input element (or a constant), so each op is a
// small "map" functor giving the source offset of output element i, run by
// one grid-stride kernel instantiated per element width. Also: index loads
// (int32/int64, negative wrapping), the compute type of the numeric kernels
// and a dispatch over every numeric dtype. Included by .cu files only.
#pragma once

#include <cstring>
#include <type_traits>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/layout.cuh"

namespace kiln::cuda {

// A map's answer for output elements that take a constant instead of an input
// element: kFill takes ElemBits `fill`, kFillAlt takes `fill_alt` (OneHot's
// "on", EyeLike's 1).
constexpr int64_t kFill = -1;
constexpr int64_t kFillAlt = -2;

// A 16-byte element (complex128): moved as two words.
struct alignas(16) Bytes16 {
  uint64_t lo, hi;
};

template <typename E>
__device__ __forceinline__ E bits_as(const ElemBits& b) {
  static_assert(sizeof(E) <= sizeof(ElemBits), "element wider than its fill bits");
  E e;
  memcpy(&e, &b, sizeof(E));
  return e;
}

// Row-major coordinates of up to kMaxRank dims, as a kernel argument.
struct DimArray {
  int rank = 0;
  int64_t d[kMaxRank] = {};
};

template <typename E, typename Map>
__global__ void map_copy_kernel(const E* __restrict__ x, E* __restrict__ y, int64_t n, Map map, ElemBits fill,
                                ElemBits fill_alt) {
  const E f = bits_as<E>(fill), f_alt = bits_as<E>(fill_alt);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t s = map(i);
    y[i] = s >= 0 ? x[s] : (s == kFill ? f : f_alt);
  }
}

template <typename E, typename Map>
void launch_map_as(const void* x, void* y, int64_t n, const Map& map, ElemBits fill, ElemBits fill_alt,
                   cudaStream_t stream) {
  constexpr int kBlock = 256;
  map_copy_kernel<E, Map><<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<const E*>(x), static_cast<E*>(y), n,
                                                                      map, fill, fill_alt);
}

// y[i] = x[map(i)] (or a fill) for i < n, elements of `elem_size` bytes.
template <typename Map>
Status launch_map_copy(int elem_size, const void* x, void* y, int64_t n, const Map& map, const char* kernel,
                       ElemBits fill = {}, ElemBits fill_alt = {}, cudaStream_t stream = nullptr) {
  if (n <= 0) return Status::ok();
  switch (elem_size) {
    case 1: launch_map_as<uint8_t>(x, y, n, map, fill, fill_alt, stream); break;
    case 2: launch_map_as<uint16_t>(x, y, n, map, fill, fill_alt, stream); break;
    case 4: launch_map_as<uint32_t>(x, y, n, map, fill, fill_alt, stream); break;
    case 8: launch_map_as<uint64_t>(x, y, n, map, fill, fill_alt, stream); break;
    case 16: launch_map_as<Bytes16>(x, y, n, map, fill, fill_alt, stream); break;
    default: return unsupported("{}: element size {} bytes", kernel, elem_size);
  }
  return last_launch_status(kernel);
}

// Index j of an int32 or int64 index tensor.
__device__ __forceinline__ int64_t load_index(const void* p, bool idx64, int64_t j) {
  return idx64 ? static_cast<const int64_t*>(p)[j] : static_cast<int64_t>(static_cast<const int32_t*>(p)[j]);
}

// Negative indices count from the end; -1 when still outside [0, n).
__device__ __forceinline__ int64_t wrap_index(int64_t idx, int64_t n) {
  if (idx < 0) idx += n;
  return idx >= 0 && idx < n ? idx : -1;
}

// Arithmetic type of T as the CPU oracle uses it: float for the 16-bit
// floats, T otherwise (integers wrap in their own width).
template <typename T>
struct ComputeType {
  using type = T;
};
template <>
struct ComputeType<__half> {
  using type = float;
};
template <>
struct ComputeType<__nv_bfloat16> {
  using type = float;
};
template <typename T>
using compute_of = typename ComputeType<T>::type;

template <typename T>
__device__ __forceinline__ compute_of<T> load_c(T v) {
  if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>)
    return to_float(v);
  else
    return v;
}
template <typename T>
__device__ __forceinline__ T store_c(compute_of<T> v) {
  if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>)
    return from_float<T>(v);
  else
    return static_cast<T>(v);
}

}  // namespace kiln::cuda

#define KILN_CUDA_NUMERIC_CASE(code, type, ...) \
  case ::kiln::DType::code: {                   \
    using T = type;                             \
    __VA_ARGS__;                                \
    break;                                      \
  }

#define KILN_CUDA_NUMERIC_CASES(...)                        \
  KILN_CUDA_NUMERIC_CASE(kF32, float, __VA_ARGS__)          \
  KILN_CUDA_NUMERIC_CASE(kF64, double, __VA_ARGS__)         \
  KILN_CUDA_NUMERIC_CASE(kF16, __half, __VA_ARGS__)         \
  KILN_CUDA_NUMERIC_CASE(kBF16, __nv_bfloat16, __VA_ARGS__) \
  KILN_CUDA_NUMERIC_CASE(kI8, int8_t, __VA_ARGS__)          \
  KILN_CUDA_NUMERIC_CASE(kI16, int16_t, __VA_ARGS__)        \
  KILN_CUDA_NUMERIC_CASE(kI32, int32_t, __VA_ARGS__)        \
  KILN_CUDA_NUMERIC_CASE(kI64, int64_t, __VA_ARGS__)        \
  KILN_CUDA_NUMERIC_CASE(kU8, uint8_t, __VA_ARGS__)         \
  KILN_CUDA_NUMERIC_CASE(kU16, uint16_t, __VA_ARGS__)       \
  KILN_CUDA_NUMERIC_CASE(kU32, uint32_t, __VA_ARGS__)       \
  KILN_CUDA_NUMERIC_CASE(kU64, uint64_t, __VA_ARGS__)

// Runs the statement with T bound to the storage type of every numeric dtype
// (floats, signed and unsigned integers); other dtypes return `unsupported`.
#define KILN_CUDA_DISPATCH_NUMERIC(dtype, what, ...)                                          \
  switch (dtype) {                                                                            \
    KILN_CUDA_NUMERIC_CASES(__VA_ARGS__)                                                      \
    default:                                                                                  \
      return ::kiln::unsupported("{}: dtype {} (the CUDA kernel takes numeric dtypes)", what, \
                                 ::kiln::dtype_name(dtype));                                  \
  }

// The same with bool too (T = bool).
#define KILN_CUDA_DISPATCH_NUMERIC_OR_BOOL(dtype, what, ...)                                           \
  switch (dtype) {                                                                                     \
    KILN_CUDA_NUMERIC_CASES(__VA_ARGS__)                                                               \
    KILN_CUDA_NUMERIC_CASE(kBool, bool, __VA_ARGS__)                                                   \
    default:                                                                                           \
      return ::kiln::unsupported("{}: dtype {} (the CUDA kernel takes numeric dtypes and bool)", what, \
                                 ::kiln::dtype_name(dtype));                                           \
  }

// Runs the statement with E bound to an unsigned type of `elem_size` bytes
// (Bytes16 for 16); other sizes return `unsupported`.
#define KILN_CUDA_DISPATCH_WIDTH(elem_size, what, ...)                                 \
  switch (elem_size) {                                                                 \
    case 1: {                                                                          \
      using E = uint8_t;                                                               \
      __VA_ARGS__;                                                                     \
      break;                                                                           \
    }                                                                                  \
    case 2: {                                                                          \
      using E = uint16_t;                                                              \
      __VA_ARGS__;                                                                     \
      break;                                                                           \
    }                                                                                  \
    case 4: {                                                                          \
      using E = uint32_t;                                                              \
      __VA_ARGS__;                                                                     \
      break;                                                                           \
    }                                                                                  \
    case 8: {                                                                          \
      using E = uint64_t;                                                              \
      __VA_ARGS__;                                                                     \
      break;                                                                           \
    }                                                                                  \
    case 16: {                                                                         \
      using E = ::kiln::cuda::Bytes16;                                                 \
      __VA_ARGS__;                                                                     \
      break;                                                                           \
    }                                                                                  \
    default: return ::kiln::unsupported("{}: element size {} bytes", what, elem_size); \
  }
