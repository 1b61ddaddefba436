#include "ir/float8.h"

#include <bit>
#include <cmath>

namespace kiln {
namespace {

// How a format spends its top codes: FN (only S.1111.111 is NaN), FNUZ (0x80
// is the one NaN, no -0), IEEE (all-ones exponent is Inf/NaN) or none (f4).
enum class Specials : uint8_t { kFN, kFNUZ, kIEEE, kNone };

struct MiniFloat {
  int exp_bits;
  int man_bits;
  int bias;
  Specials specials;
  uint8_t max_code;  // the largest finite magnitude's bits

  uint8_t sign_bit() const { return static_cast<uint8_t>(1u << (exp_bits + man_bits)); }
};

const MiniFloat* format_of(DType t) {
  static const MiniFloat e4m3fn{4, 3, 7, Specials::kFN, 0x7E};
  static const MiniFloat e4m3fnuz{4, 3, 8, Specials::kFNUZ, 0x7F};
  static const MiniFloat e5m2{5, 2, 15, Specials::kIEEE, 0x7B};
  static const MiniFloat e5m2fnuz{5, 2, 16, Specials::kFNUZ, 0x7F};
  static const MiniFloat e2m1{2, 1, 1, Specials::kNone, 0x7};
  switch (t) {
    case DType::kF8E4M3FN: return &e4m3fn;
    case DType::kF8E4M3FNUZ: return &e4m3fnuz;
    case DType::kF8E5M2: return &e5m2;
    case DType::kF8E5M2FNUZ: return &e5m2fnuz;
    case DType::kF4E2M1: return &e2m1;
    default: return nullptr;
  }
}

double decode(const MiniFloat& f, uint8_t bits) {
  const uint8_t sign = bits & f.sign_bit();
  const uint8_t mag = bits & static_cast<uint8_t>(f.sign_bit() - 1);
  const int exp_field = mag >> f.man_bits;
  const int man = mag & ((1 << f.man_bits) - 1);
  if (f.specials == Specials::kFNUZ && bits == 0x80) return std::nan("");
  if (f.specials == Specials::kFN && mag == 0x7F) return std::nan("");
  if (f.specials == Specials::kIEEE && exp_field == (1 << f.exp_bits) - 1)
    return man == 0 ? (sign ? -INFINITY : INFINITY) : std::nan("");
  double v = exp_field == 0 ? std::ldexp(man, 1 - f.bias - f.man_bits)
                            : std::ldexp((1 << f.man_bits) + man, exp_field - f.bias - f.man_bits);
  return sign ? -v : v;
}

uint8_t nan_code(const MiniFloat& f, bool negative) {
  switch (f.specials) {
    case Specials::kFN: return static_cast<uint8_t>((negative ? 0x80 : 0) | 0x7F);
    case Specials::kFNUZ: return 0x80;
    case Specials::kIEEE: return static_cast<uint8_t>((negative ? 0x80 : 0) | 0x7E);  // quiet NaN
    case Specials::kNone: return 0x8;  // what ml_dtypes' float4_e2m1fn gives for NaN
  }
  return 0;
}

// The code for a magnitude too large for the format (or infinite).
uint8_t overflow_code(const MiniFloat& f, uint8_t sign, bool saturate) {
  if (saturate || f.specials == Specials::kNone) return sign | f.max_code;
  if (f.specials == Specials::kIEEE) return sign | 0x7C;  // Inf
  return nan_code(f, sign != 0);
}

uint8_t encode(const MiniFloat& f, double x, bool saturate) {
  const bool negative = std::signbit(x);
  if (std::isnan(x)) return nan_code(f, negative);
  // FNUZ formats have no -0: a negative value that rounds to zero is +0.
  const uint8_t sign = negative ? f.sign_bit() : 0;
  const uint8_t zero = f.specials == Specials::kFNUZ ? 0 : sign;
  if (std::isinf(x)) return overflow_code(f, sign, saturate);
  const double a = std::fabs(x);
  if (a == 0) return zero;
  int k = 0;
  std::frexp(a, &k);
  const int e = k - 1;  // a = 1.m * 2^e
  const int emin = 1 - f.bias;
  const int quantum_exp = std::max(e, emin) - f.man_bits;
  // Exact scaling by a power of two, then round half to even.
  const auto n = static_cast<int64_t>(std::nearbyint(std::ldexp(a, -quantum_exp)));
  if (n == 0) return zero;
  // For subnormals the code is n itself; n == 2^man_bits lands on the smallest
  // normal, and a normal rounding up to 2^(man_bits+1) carries into the exponent.
  const int64_t code = e < emin ? n : (int64_t(e + f.bias) << f.man_bits) + (n - (int64_t(1) << f.man_bits));
  if (code > f.max_code) return overflow_code(f, sign, saturate);
  return static_cast<uint8_t>(sign | code);
}

uint8_t encode_e8m0(double x, bool saturate, E8M0Rounding rounding) {
  // Follows onnx.numpy_helper.to_float8e8m0: the float32 exponent, rounded on the mantissa bits.
  const uint32_t bits = std::bit_cast<uint32_t>(static_cast<float>(x));
  uint32_t exponent = (bits >> 23) & 0xFF;
  if (exponent == 0xFF) return 0xFF;
  bool round_up = false;
  if (rounding == E8M0Rounding::kNearest) {
    const bool g = bits & 0x400000, r = bits & 0x200000, s = bits & 0x1FFFFF, lsb = exponent > 0;
    round_up = g && (r || s || lsb);
  } else if (rounding == E8M0Rounding::kUp) {
    round_up = (bits & 0x7FFFFF) != 0;
  }
  if (round_up && saturate && exponent == 0xFE) round_up = false;
  if (round_up) ++exponent;
  return static_cast<uint8_t>(exponent);
}

}  // namespace

bool is_small_float(DType t) { return format_of(t) != nullptr || t == DType::kF8E8M0; }

double small_float_to_double(DType t, uint8_t bits) {
  if (t == DType::kF8E8M0) return bits == 0xFF ? std::nan("") : std::ldexp(1.0, int(bits) - 127);
  const MiniFloat* f = format_of(t);
  return f ? decode(*f, bits) : std::nan("");
}

uint8_t double_to_small_float(DType t, double x, bool saturate, E8M0Rounding rounding) {
  if (t == DType::kF8E8M0) return encode_e8m0(x, saturate, rounding);
  const MiniFloat* f = format_of(t);
  return f ? encode(*f, x, saturate) : 0;
}

}  // namespace kiln
