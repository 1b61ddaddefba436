// Cast: one kernel per source type; the destination is a runtime switch
// (uniform across the grid), so 14 instantiations (twice: byte-wide and
// packed destinations) cover every pair.
// Conversions match the CPU oracle (ir/element_cast.cpp), which takes every
// element through a wide scalar: double for floats, int64 / uint64 for
// integers. So integers reach f16 and bf16 through double and float (two
// roundings, as on the CPU) but f32 directly; float to integer truncates
// toward zero through int64 (uint64 at and above 2^63, saturating past 2^64;
// INT64_MIN below -2^63; NaN -> 0) and then wraps to the width; integer to
// integer wraps; to bool is "!= 0" (NaN is true).
// Small floats (f8 kinds, e8m0, f4e2m1) decode to double and encode from
// double (small_float.cuh); 4- and 2-bit integers read as int64 / uint64 and
// store the low bits. A packed destination is written a byte (two or four
// elements) per thread, so no two threads write one byte; a source that is
// packed or a small float is read through a runtime switch.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/data_movement.cuh"
#include "backends/cuda/kernels/elementwise_core.cuh"
#include "backends/cuda/kernels/small_float.cuh"

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
  else if constexpr (std::is_same_v<S, __half>) {
    // The hardware's f16 -> f32 conversion gives NaNs one sign; the CPU keeps
    // a NaN's sign, which the f8 formats encode.
    const unsigned short b = __half_as_ushort(v);
    if ((b & 0x7C00) == 0x7C00 && (b & 0x3FF))
      return {Wide::kFloat, __longlong_as_double((b & 0x8000) ? 0xFFF8000000000000LL : 0x7FF8000000000000LL), 0, 0};
    return {Wide::kFloat, static_cast<double>(widen(v)), 0, 0};
  } else
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

// The source type of cast_kernel when the dtype is read through a runtime
// switch (packed integers and small floats).
struct AnySource {};

__device__ __forceinline__ Wide read_any(DType t, const void* x, int64_t i) {
  switch (t) {
    case DType::kU4: return {Wide::kUnsigned, 0, 0, packed_code(x, 4, i)};
    case DType::kU2: return {Wide::kUnsigned, 0, 0, packed_code(x, 2, i)};
    case DType::kI4: return {Wide::kSigned, 0, int64_t((int32_t(packed_code(x, 4, i)) ^ 0x8) - 0x8), 0};
    case DType::kI2: return {Wide::kSigned, 0, int64_t((int32_t(packed_code(x, 2, i)) ^ 0x2) - 0x2), 0};
    case DType::kF4E2M1: return {Wide::kFloat, small_float_decode(t, uint8_t(packed_code(x, 4, i))), 0, 0};
    default: return {Wide::kFloat, small_float_decode(t, static_cast<const uint8_t*>(x)[i]), 0, 0};
  }
}

template <typename S>
__device__ __forceinline__ Wide read(const void* x, DType from, int64_t i) {
  if constexpr (std::is_same_v<S, AnySource>)
    return read_any(from, x, i);
  else
    return widen_scalar(static_cast<const S*>(x)[i]);
}

// How the destination stores a value: its dtype and the small float options.
struct Dest {
  DType to;
  bool saturate;
  E8M0Round round;
};

// The code of a packed destination's element (its low `bits` bits matter).
__device__ __forceinline__ uint32_t packed_value(const Wide& w, const Dest& d) {
  if (d.to == DType::kF4E2M1) return small_float_encode(d.to, as_double(w), d.saturate, d.round);
  return static_cast<uint32_t>(int_bits(w));
}

template <typename D>
__device__ __forceinline__ void put(void* y, int64_t i, D v) {
  static_cast<D*>(y)[i] = v;
}

__device__ __forceinline__ void store(const Wide& w, const Dest& d, void* y, int64_t i) {
  switch (d.to) {
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
    default:  // the byte-wide small floats
      return put(y, i, small_float_encode(d.to, as_double(w), d.saturate, d.round));
  }
}

template <typename S>
__global__ void cast_kernel(const void* __restrict__ x, DType from, void* __restrict__ y, Dest d, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    store(read<S>(x, from, i), d, y, i);
}

// A packed destination with `bits`-bit elements: one thread per output byte.
template <typename S>
__global__ void cast_packed_kernel(const void* __restrict__ x, DType from, uint8_t* __restrict__ y, Dest d, int bits,
                                   int64_t n) {
  const int per_byte = 8 / bits;
  const int64_t bytes = (n + per_byte - 1) / per_byte;
  const uint32_t mask = (1u << bits) - 1;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < bytes; b += stride) {
    uint32_t byte = 0;
    for (int e = 0; e < per_byte && b * per_byte + e < n; ++e)
      byte |= (packed_value(read<S>(x, from, b * per_byte + e), d) & mask) << (e * bits);
    y[b] = static_cast<uint8_t>(byte);
  }
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

// Bytes n elements of t take (packed dtypes: rounded up to whole bytes).
size_t storage_bytes(DType t, int64_t n) {
  const int bits = packed_element_bits(t);
  if (bits) return (static_cast<size_t>(n) * static_cast<size_t>(bits) + 7) / 8;
  return static_cast<size_t>(n) * element_bytes(t);
}

template <typename S>
Status run_cast(const CastParams& p, cudaStream_t stream) {
  constexpr int kBlock = 256;
  const Dest d{p.to, p.saturate, p.e8m0_round};
  if (const int bits = packed_element_bits(p.to)) {
    const int64_t bytes = (p.n + 8 / bits - 1) / (8 / bits);
    cast_packed_kernel<S>
        <<<grid_for(bytes, kBlock), kBlock, 0, stream>>>(p.x, p.from, static_cast<uint8_t*>(p.y), d, bits, p.n);
    return last_launch_status("cast_packed_kernel");
  }
  cast_kernel<S><<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(p.x, p.from, p.y, d, p.n);
  return last_launch_status("cast_kernel");
}

}  // namespace

bool cast_supported(DType t) {
  return is_compute_float(t) || is_byte_integer(t) || t == DType::kBool || is_small_float_dtype(t) ||
         packed_element_bits(t) != 0;
}

Status launch_cast(const CastParams& p, cudaStream_t stream) {
  if (!cast_supported(p.from) || !cast_supported(p.to))
    return unsupported("cast: {} to {} (the CUDA kernel casts among the numeric and bool dtypes)", dtype_name(p.from),
                       dtype_name(p.to));
  if (p.n == 0) return Status::ok();
  if (p.from == p.to) {
    if (p.x == p.y) return Status::ok();
    KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(p.y, p.x, storage_bytes(p.from, p.n), cudaMemcpyDeviceToDevice, stream));
    return Status::ok();
  }
  switch (p.from) {
    KILN_EW_FLOAT_CASES(return run_cast<T>(p, stream))
    KILN_EW_INT_CASES(return run_cast<T>(p, stream))
    case DType::kBool: return run_cast<bool>(p, stream);
    default: return run_cast<AnySource>(p, stream);
  }
}

}  // namespace kiln::cuda
