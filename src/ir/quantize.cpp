#include "ir/quantize.h"

#include <cmath>
#include <limits>

#include "ir/element_cast.h"
#include "ir/float8.h"

namespace kiln {

bool is_narrow_float(DType t) { return is_small_float(t); }

float narrow_float_to_f32(uint8_t bits, DType t) {
  return static_cast<float>(small_float_to_double(t, t == DType::kF4E2M1 ? bits & 0xf : bits));
}

uint8_t f32_to_narrow_float(float f, DType t, bool saturate) {
  // Quantizing to e8m0 picks the nearest power of two (Cast's default rounds up).
  return double_to_small_float(t, f, saturate, E8M0Rounding::kNearest);
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
  Scalar s = read_scalar(t.dtype(), t.raw(), i);
  return s.kind == Scalar::Kind::kUnsigned ? static_cast<int64_t>(s.u) : s.i;
}

void set_integer_element(Tensor& t, int64_t i, int64_t v) {
  write_scalar(t.dtype(), t.mutable_raw(), i, Scalar::of_signed(v));
}

double numeric_element(const Tensor& t, int64_t i) { return read_scalar(t.dtype(), t.raw(), i).as_double(); }

}  // namespace kiln
