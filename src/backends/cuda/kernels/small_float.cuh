// The device's one definition of ONNX's small element formats, as the CPU's
// ir/float8.cpp and ir/element_cast.cpp define them: the four float8 kinds
// (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ) and the 4-bit E2M1 (decode, and encode
// with round to nearest even and the Cast spec's `saturate` rule), the
// exponent-only E8M0 (with its round modes), and the packed 4- and 2-bit
// element codes (two or four elements a byte, the first in the low bits).
// Used by Cast (cast.cu) and Quantize/DequantizeLinear (quantize.cu).
// Included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/data_movement.cuh"  // E8M0Round
#include "kiln/dtype.h"

namespace kiln::cuda {

namespace small_float {

// How a format spends its top codes: FN (only S.1111.111 is NaN), FNUZ (0x80
// is the one NaN, no -0), IEEE (all-ones exponent is Inf/NaN) or none (f4).
enum class Specials : uint8_t { kFN, kFNUZ, kIEEE, kNone };

// The quiet NaN of the CPU's std::nan(""), 0x7FF8... (CUDA's nan() may set other payload bits).
__device__ inline double quiet_nan() { return __longlong_as_double(0x7FF8000000000000LL); }

struct MiniFloat {
  int exp_bits, man_bits, bias;
  Specials specials;
  uint8_t max_code;  // the largest finite magnitude's bits
};

__device__ inline MiniFloat format_of(DType t) {
  switch (t) {
    case DType::kF8E4M3FN: return {4, 3, 7, Specials::kFN, 0x7E};
    case DType::kF8E4M3FNUZ: return {4, 3, 8, Specials::kFNUZ, 0x7F};
    case DType::kF8E5M2: return {5, 2, 15, Specials::kIEEE, 0x7B};
    case DType::kF8E5M2FNUZ: return {5, 2, 16, Specials::kFNUZ, 0x7F};
    default: return {2, 1, 1, Specials::kNone, 0x7};  // f4e2m1
  }
}

__device__ inline double decode(const MiniFloat& f, uint8_t bits) {
  const uint8_t sign_bit = uint8_t(1u << (f.exp_bits + f.man_bits));
  const uint8_t mag = bits & uint8_t(sign_bit - 1);
  const int exp_field = mag >> f.man_bits, man = mag & ((1 << f.man_bits) - 1);
  if (f.specials == Specials::kFNUZ && bits == 0x80) return quiet_nan();
  if (f.specials == Specials::kFN && mag == 0x7F) return quiet_nan();
  if (f.specials == Specials::kIEEE && exp_field == (1 << f.exp_bits) - 1)
    return man == 0 ? ((bits & sign_bit) ? -INFINITY : INFINITY) : quiet_nan();
  const double v = exp_field == 0 ? ldexp(double(man), 1 - f.bias - f.man_bits)
                                  : ldexp(double((1 << f.man_bits) + man), exp_field - f.bias - f.man_bits);
  return (bits & sign_bit) ? -v : v;
}

__device__ inline uint8_t nan_code(const MiniFloat& f, bool negative) {
  switch (f.specials) {
    case Specials::kFN: return uint8_t((negative ? 0x80 : 0) | 0x7F);
    case Specials::kFNUZ: return 0x80;
    case Specials::kIEEE: return uint8_t((negative ? 0x80 : 0) | 0x7E);  // quiet NaN
    default: return 0x8;                                                 // what ml_dtypes' float4_e2m1fn gives for NaN
  }
}

// The code for a magnitude too large for the format (or infinite).
__device__ inline uint8_t overflow_code(const MiniFloat& f, uint8_t sign, bool saturate) {
  if (saturate || f.specials == Specials::kNone) return sign | f.max_code;
  if (f.specials == Specials::kIEEE) return sign | 0x7C;  // Inf
  return nan_code(f, sign != 0);
}

// Round to nearest even into the format.
__device__ inline uint8_t encode(const MiniFloat& f, double x, bool saturate) {
  const bool negative = signbit(x);
  if (isnan(x)) return nan_code(f, negative);
  // FNUZ formats have no -0: a negative value that rounds to zero is +0.
  const uint8_t sign = negative ? uint8_t(1u << (f.exp_bits + f.man_bits)) : 0;
  const uint8_t zero = f.specials == Specials::kFNUZ ? 0 : sign;
  if (isinf(x)) return overflow_code(f, sign, saturate);
  const double a = fabs(x);
  if (a == 0) return zero;
  int k = 0;
  frexp(a, &k);
  const int e = k - 1, emin = 1 - f.bias;  // a = 1.m * 2^e
  const int quantum_exp = (e > emin ? e : emin) - f.man_bits;
  // Exact scaling by a power of two, then round half to even.
  const auto n = static_cast<int64_t>(rint(ldexp(a, -quantum_exp)));
  if (n == 0) return zero;
  // Subnormals' code is n itself; a rounding up carries into the exponent.
  const int64_t code = e < emin ? n : (int64_t(e + f.bias) << f.man_bits) + (n - (int64_t(1) << f.man_bits));
  if (code > f.max_code) return overflow_code(f, sign, saturate);
  return static_cast<uint8_t>(sign | code);
}

// onnx.numpy_helper.to_float8e8m0: the float32 exponent, rounded on the mantissa bits.
__device__ inline uint8_t encode_e8m0(double x, bool saturate, E8M0Round rounding) {
  const uint32_t bits = __float_as_uint(static_cast<float>(x));
  uint32_t exponent = (bits >> 23) & 0xFF;
  if (exponent == 0xFF) return 0xFF;
  bool round_up = false;
  if (rounding == E8M0Round::kNearest) {
    const bool g = bits & 0x400000, r = bits & 0x200000, s = bits & 0x1FFFFF, lsb = exponent > 0;
    round_up = g && (r || s || lsb);
  } else if (rounding == E8M0Round::kUp) {
    round_up = (bits & 0x7FFFFF) != 0;
  }
  if (round_up && saturate && exponent == 0xFE) round_up = false;
  if (round_up) ++exponent;
  return static_cast<uint8_t>(exponent);
}

}  // namespace small_float

// f8 kinds, f8e8m0 and f4e2m1.
__host__ __device__ inline bool is_small_float_dtype(DType t) {
  return t == DType::kF8E4M3FN || t == DType::kF8E4M3FNUZ || t == DType::kF8E5M2 || t == DType::kF8E5M2FNUZ ||
         t == DType::kF4E2M1 || t == DType::kF8E8M0;
}

// One element of a small float dtype (its code, unpacked for f4e2m1) as double.
__device__ inline double small_float_decode(DType t, uint8_t bits) {
  if (t == DType::kF8E8M0) return bits == 0xFF ? small_float::quiet_nan() : ldexp(1.0, int(bits) - 127);
  return small_float::decode(small_float::format_of(t), bits);
}

// A double as a small float dtype's code. `saturate` maps out-of-range values
// (and infinities) to the largest finite value; f4e2m1 always saturates.
__device__ inline uint8_t small_float_encode(DType t, double x, bool saturate, E8M0Round rounding = E8M0Round::kUp) {
  if (t == DType::kF8E8M0) return small_float::encode_e8m0(x, saturate, rounding);
  return small_float::encode(small_float::format_of(t), x, saturate);
}

// Bits an element takes in a packed tensor (4 or 2), or 0 for whole-byte dtypes.
__host__ __device__ inline int packed_element_bits(DType t) {
  switch (t) {
    case DType::kI4:
    case DType::kU4:
    case DType::kF4E2M1: return 4;
    case DType::kI2:
    case DType::kU2: return 2;
    default: return 0;
  }
}

// The raw code of element i of a packed tensor with `bits`-bit elements.
__device__ inline uint32_t packed_code(const void* p, int bits, int64_t i) {
  const int per_byte = 8 / bits;
  const uint8_t byte = static_cast<const uint8_t*>(p)[i / per_byte];
  return (byte >> ((i % per_byte) * bits)) & ((1u << bits) - 1);
}

}  // namespace kiln::cuda
