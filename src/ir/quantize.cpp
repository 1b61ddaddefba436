#include "ir/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln {
namespace {

struct FloatFormat {
  int mant_bits;
  int bias;
  float max_finite;
  bool has_inf;        // e5m2: IEEE-like inf and NaN
  bool unsigned_zero;  // *fnuz: 0x80 is NaN, there is no -0
  uint8_t nan_bits;
};

FloatFormat format_of(DType t) {
  switch (t) {
    case DType::kF8E4M3FN: return {3, 7, 448.0f, false, false, 0x7f};
    case DType::kF8E4M3FNUZ: return {3, 8, 240.0f, false, true, 0x80};
    case DType::kF8E5M2: return {2, 15, 57344.0f, true, false, 0x7f};
    case DType::kF8E5M2FNUZ: return {2, 16, 57344.0f, false, true, 0x80};
    case DType::kF4E2M1: return {1, 1, 6.0f, false, false, 0x0};
    default: return {0, 0, 0, false, false, 0};
  }
}

int exp_bits(DType t) {
  switch (t) {
    case DType::kF8E4M3FN:
    case DType::kF8E4M3FNUZ: return 4;
    case DType::kF8E5M2:
    case DType::kF8E5M2FNUZ: return 5;
    case DType::kF4E2M1: return 2;
    default: return 0;
  }
}

}  // namespace

bool is_narrow_float(DType t) { return t == DType::kF8E8M0 || exp_bits(t) != 0; }

float narrow_float_to_f32(uint8_t bits, DType t) {
  if (t == DType::kF8E8M0) {
    if (bits == 0xff) return std::numeric_limits<float>::quiet_NaN();
    return std::ldexp(1.0f, static_cast<int>(bits) - 127);
  }
  FloatFormat f = format_of(t);
  int e_bits = exp_bits(t), m_bits = f.mant_bits;
  int total = 1 + e_bits + m_bits;
  bits &= static_cast<uint8_t>((1u << total) - 1);
  bool neg = (bits >> (total - 1)) & 1u;
  int e = (bits >> m_bits) & ((1 << e_bits) - 1);
  int m = bits & ((1 << m_bits) - 1);
  if (f.unsigned_zero && bits == 0x80) return std::numeric_limits<float>::quiet_NaN();
  if (t == DType::kF8E4M3FN && (bits & 0x7f) == 0x7f) return std::numeric_limits<float>::quiet_NaN();
  if (f.has_inf && e == (1 << e_bits) - 1)
    return m == 0 ? (neg ? -INFINITY : INFINITY) : std::numeric_limits<float>::quiet_NaN();
  float v = e == 0 ? std::ldexp(static_cast<float>(m), 1 - f.bias - m_bits)
                   : std::ldexp(static_cast<float>(m + (1 << m_bits)), e - f.bias - m_bits);
  return neg ? -v : v;
}

uint8_t f32_to_narrow_float(float x, DType t, bool saturate) {
  if (t == DType::kF8E8M0) {
    if (std::isnan(x) || x <= 0 || std::isinf(x)) return 0xff;
    int e = 0;
    double m = std::frexp(static_cast<double>(x), &e);  // x = m * 2^e, m in [0.5, 1)
    int exp = e - 1 + (m > 0.75 ? 1 : 0);               // nearest power of two (ties toward the larger)
    return static_cast<uint8_t>(std::clamp(exp + 127, 0, 254));
  }
  FloatFormat f = format_of(t);
  int e_bits = exp_bits(t), m_bits = f.mant_bits;
  int total = 1 + e_bits + m_bits;
  uint8_t sign = std::signbit(x) ? static_cast<uint8_t>(1u << (total - 1)) : 0;
  if (t == DType::kF4E2M1) saturate = true;
  if (std::isnan(x))
    return t == DType::kF4E2M1 ? static_cast<uint8_t>(0x7)
                               : static_cast<uint8_t>(f.nan_bits | (f.unsigned_zero ? 0 : sign));
  double a = std::fabs(static_cast<double>(x));
  int emin = 1 - f.bias;
  double r = 0;
  if (a > 0 && !std::isinf(a)) {
    int e = 0;
    std::frexp(a, &e);
    int ev = std::max(e - 1, emin);
    double quantum = std::ldexp(1.0, ev - m_bits);
    r = std::nearbyint(a / quantum) * quantum;  // the default rounding mode is to nearest even
  } else if (std::isinf(a)) {
    r = a;
  }
  if (r > f.max_finite) {
    if (saturate)
      r = f.max_finite;
    else if (f.has_inf)
      return static_cast<uint8_t>(sign | 0x7c);
    else
      return static_cast<uint8_t>(f.nan_bits | (f.unsigned_zero ? 0 : sign));
  }
  if (r == 0) return f.unsigned_zero ? 0 : sign;
  int e = 0;
  std::frexp(r, &e);
  int ev = e - 1;
  uint32_t field, mant;
  if (ev < emin) {
    field = 0;
    mant = static_cast<uint32_t>(std::ldexp(r, m_bits - emin));
  } else {
    field = static_cast<uint32_t>(ev + f.bias);
    mant = static_cast<uint32_t>(std::ldexp(r, m_bits - ev)) - (1u << m_bits);
  }
  return static_cast<uint8_t>(sign | (field << m_bits) | mant);
}

int64_t round_half_even(double f) { return static_cast<int64_t>(std::nearbyint(f)); }
int64_t round_half_even(float f) { return static_cast<int64_t>(std::nearbyint(f)); }

int64_t integer_min(DType t) {
  if (!dtype_is_signed(t)) return 0;
  int bits = dtype_bits(t);
  return bits >= 64 ? std::numeric_limits<int64_t>::min() : -(int64_t(1) << (bits - 1));
}

int64_t integer_max(DType t) {
  int bits = dtype_bits(t);
  if (bits >= 64) return std::numeric_limits<int64_t>::max();
  return dtype_is_signed(t) ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1;
}

int64_t integer_element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kI8: return t.data<int8_t>()[i];
    case DType::kU8: return t.data<uint8_t>()[i];
    case DType::kI16: return t.data<int16_t>()[i];
    case DType::kU16: return t.data<uint16_t>()[i];
    case DType::kI32: return t.data<int32_t>()[i];
    case DType::kU32: return t.data<uint32_t>()[i];
    case DType::kI64: return t.data<int64_t>()[i];
    case DType::kU64: return static_cast<int64_t>(t.data<uint64_t>()[i]);
    case DType::kI4:
    case DType::kU4:
    case DType::kI2:
    case DType::kU2: {
      int bits = dtype_bits(t.dtype()), per = 8 / bits;
      uint8_t byte = t.data<uint8_t>()[i / per];
      int64_t v = (byte >> ((i % per) * bits)) & ((1 << bits) - 1);
      if (dtype_is_signed(t.dtype()) && v >= (int64_t(1) << (bits - 1))) v -= int64_t(1) << bits;
      return v;
    }
    default: return 0;
  }
}

void set_integer_element(Tensor& t, int64_t i, int64_t v) {
  switch (t.dtype()) {
    case DType::kI8: t.mutable_data<int8_t>()[i] = static_cast<int8_t>(v); break;
    case DType::kU8: t.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
    case DType::kI16: t.mutable_data<int16_t>()[i] = static_cast<int16_t>(v); break;
    case DType::kU16: t.mutable_data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
    case DType::kI32: t.mutable_data<int32_t>()[i] = static_cast<int32_t>(v); break;
    case DType::kU32: t.mutable_data<uint32_t>()[i] = static_cast<uint32_t>(v); break;
    case DType::kI64: t.mutable_data<int64_t>()[i] = v; break;
    case DType::kU64: t.mutable_data<uint64_t>()[i] = static_cast<uint64_t>(v); break;
    case DType::kI4:
    case DType::kU4:
    case DType::kI2:
    case DType::kU2: {
      int bits = dtype_bits(t.dtype()), per = 8 / bits, shift = static_cast<int>(i % per) * bits;
      uint8_t& byte = t.mutable_data<uint8_t>()[i / per];
      uint8_t mask = static_cast<uint8_t>(((1 << bits) - 1) << shift);
      byte = static_cast<uint8_t>((byte & ~mask) | ((static_cast<uint64_t>(v) << shift) & mask));
      break;
    }
    default: break;
  }
}

double numeric_element(const Tensor& t, int64_t i) {
  DType d = t.dtype();
  if (d == DType::kF4E2M1)
    return narrow_float_to_f32(static_cast<uint8_t>(t.data<uint8_t>()[i / 2] >> ((i % 2) * 4)), d);
  if (is_narrow_float(d)) return narrow_float_to_f32(t.data<uint8_t>()[i], d);
  if (dtype_is_integer(d)) return static_cast<double>(integer_element(t, i));
  return t.element_as_double(i);
}

}  // namespace kiln
