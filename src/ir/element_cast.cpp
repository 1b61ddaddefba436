#include "ir/element_cast.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "ir/half.h"

namespace kiln {
namespace {

// Packed element i of a 2- or 4-bit dtype, as its raw bits.
uint32_t packed_bits(const void* data, int64_t i, int bits) {
  const auto* p = static_cast<const uint8_t*>(data);
  int64_t bit = i * bits;
  return (p[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
}

void set_packed_bits(void* data, int64_t i, int bits, uint32_t v) {
  auto* p = static_cast<uint8_t*>(data);
  int64_t bit = i * bits;
  auto mask = static_cast<uint8_t>(((1u << bits) - 1) << (bit % 8));
  p[bit / 8] = static_cast<uint8_t>((p[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
}

// Float to integer: truncate toward zero through int64 (uint64 for large
// positive values), so out-of-range values wrap instead of being undefined.
uint64_t float_to_int_bits(double f) {
  if (std::isnan(f)) return 0;
  if (f >= 9223372036854775808.0)
    return f < 18446744073709551616.0 ? static_cast<uint64_t>(f) : std::numeric_limits<uint64_t>::max();
  if (f < -9223372036854775808.0) return static_cast<uint64_t>(std::numeric_limits<int64_t>::min());
  return static_cast<uint64_t>(static_cast<int64_t>(f));
}

uint64_t scalar_int_bits(const Scalar& v) {
  switch (v.kind) {
    case Scalar::Kind::kFloat: return float_to_int_bits(v.f);
    case Scalar::Kind::kSigned: return static_cast<uint64_t>(v.i);
    case Scalar::Kind::kUnsigned: return v.u;
  }
  return 0;
}

bool scalar_nonzero(const Scalar& v) {
  switch (v.kind) {
    case Scalar::Kind::kFloat: return v.f != 0;  // NaN is true, as in numpy
    case Scalar::Kind::kSigned: return v.i != 0;
    case Scalar::Kind::kUnsigned: return v.u != 0;
  }
  return false;
}

template <typename T>
void store(void* data, int64_t i, T v) {
  static_cast<T*>(data)[i] = v;
}

Scalar parse_number(const std::string& s) {
  const char* begin = s.c_str();
  char* end = nullptr;
  // Integer literals parse exactly (a double would lose int64 precision).
  long long iv = std::strtoll(begin, &end, 10);
  if (end != begin && *end == '\0') return Scalar::of_signed(iv);
  double d = std::strtod(begin, &end);
  return Scalar::of_float(end == begin ? std::nan("") : d);
}

template <typename F>
std::string float_to_string(F x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
  char buf[64];
  F a = std::fabs(x);
  // numpy prints positionally in [1e-4, 1e16), in scientific notation outside.
  bool positional = a == 0 || (a >= F(1e-4) && a < F(1e16));
  auto r =
      std::to_chars(buf, buf + sizeof(buf), x, positional ? std::chars_format::fixed : std::chars_format::scientific);
  std::string s(buf, r.ptr);
  if (positional && s.find('.') == std::string::npos) s += ".0";
  return s;
}

}  // namespace

double Scalar::as_double() const {
  switch (kind) {
    case Kind::kFloat: return f;
    case Kind::kSigned: return static_cast<double>(i);
    case Kind::kUnsigned: return static_cast<double>(u);
  }
  return 0;
}

Scalar read_scalar(DType t, const void* data, int64_t i) {
  switch (t) {
    case DType::kF32: return Scalar::of_float(static_cast<const float*>(data)[i]);
    case DType::kF64: return Scalar::of_float(static_cast<const double*>(data)[i]);
    case DType::kF16: return Scalar::of_float(f16_to_f32(static_cast<const uint16_t*>(data)[i]));
    case DType::kBF16: return Scalar::of_float(bf16_to_f32(static_cast<const uint16_t*>(data)[i]));
    case DType::kI8: return Scalar::of_signed(static_cast<const int8_t*>(data)[i]);
    case DType::kI16: return Scalar::of_signed(static_cast<const int16_t*>(data)[i]);
    case DType::kI32: return Scalar::of_signed(static_cast<const int32_t*>(data)[i]);
    case DType::kI64: return Scalar::of_signed(static_cast<const int64_t*>(data)[i]);
    case DType::kU8: return Scalar::of_unsigned(static_cast<const uint8_t*>(data)[i]);
    case DType::kU16: return Scalar::of_unsigned(static_cast<const uint16_t*>(data)[i]);
    case DType::kU32: return Scalar::of_unsigned(static_cast<const uint32_t*>(data)[i]);
    case DType::kU64: return Scalar::of_unsigned(static_cast<const uint64_t*>(data)[i]);
    case DType::kBool: return Scalar::of_unsigned(static_cast<const uint8_t*>(data)[i] ? 1 : 0);
    case DType::kU4: return Scalar::of_unsigned(packed_bits(data, i, 4));
    case DType::kU2: return Scalar::of_unsigned(packed_bits(data, i, 2));
    case DType::kI4: return Scalar::of_signed((static_cast<int32_t>(packed_bits(data, i, 4)) ^ 0x8) - 0x8);
    case DType::kI2: return Scalar::of_signed((static_cast<int32_t>(packed_bits(data, i, 2)) ^ 0x2) - 0x2);
    case DType::kF4E2M1:
      return Scalar::of_float(small_float_to_double(t, static_cast<uint8_t>(packed_bits(data, i, 4))));
    default:
      if (is_small_float(t)) return Scalar::of_float(small_float_to_double(t, static_cast<const uint8_t*>(data)[i]));
      return Scalar::of_float(std::nan(""));
  }
}

void write_scalar(DType t, void* data, int64_t i, const Scalar& v, const CastOptions& options) {
  switch (t) {
    case DType::kF32:
      // Integers convert straight to float (one rounding, not two through double).
      if (v.kind == Scalar::Kind::kSigned) return store(data, i, static_cast<float>(v.i));
      if (v.kind == Scalar::Kind::kUnsigned) return store(data, i, static_cast<float>(v.u));
      return store(data, i, static_cast<float>(v.f));
    case DType::kF64: return store(data, i, v.as_double());
    case DType::kF16: return store(data, i, f32_to_f16(static_cast<float>(v.as_double())));
    case DType::kBF16: return store(data, i, f32_to_bf16(static_cast<float>(v.as_double())));
    case DType::kI8: return store(data, i, static_cast<int8_t>(scalar_int_bits(v)));
    case DType::kI16: return store(data, i, static_cast<int16_t>(scalar_int_bits(v)));
    case DType::kI32: return store(data, i, static_cast<int32_t>(scalar_int_bits(v)));
    case DType::kI64: return store(data, i, static_cast<int64_t>(scalar_int_bits(v)));
    case DType::kU8: return store(data, i, static_cast<uint8_t>(scalar_int_bits(v)));
    case DType::kU16: return store(data, i, static_cast<uint16_t>(scalar_int_bits(v)));
    case DType::kU32: return store(data, i, static_cast<uint32_t>(scalar_int_bits(v)));
    case DType::kU64: return store(data, i, scalar_int_bits(v));
    case DType::kBool: return store(data, i, static_cast<uint8_t>(scalar_nonzero(v) ? 1 : 0));
    case DType::kU4:
    case DType::kI4: return set_packed_bits(data, i, 4, static_cast<uint32_t>(scalar_int_bits(v) & 0xF));
    case DType::kU2:
    case DType::kI2: return set_packed_bits(data, i, 2, static_cast<uint32_t>(scalar_int_bits(v) & 0x3));
    case DType::kF4E2M1:
      return set_packed_bits(data, i, 4, double_to_small_float(t, v.as_double(), options.saturate, options.rounding));
    default:
      if (is_small_float(t))
        store(data, i, double_to_small_float(t, v.as_double(), options.saturate, options.rounding));
      return;
  }
}

std::string scalar_to_string(DType from, const Scalar& v) {
  switch (v.kind) {
    case Scalar::Kind::kSigned: return std::to_string(v.i);
    case Scalar::Kind::kUnsigned: return from == DType::kBool ? (v.u ? "True" : "False") : std::to_string(v.u);
    case Scalar::Kind::kFloat:
      return from == DType::kF64 ? float_to_string(v.f) : float_to_string(static_cast<float>(v.f));
  }
  return {};
}

static bool castable(DType t) {
  return t == DType::kString || is_small_float(t) ||
         (dtype_is_known(static_cast<int>(t)) && t != DType::kUndefined && t != DType::kC64 && t != DType::kC128 &&
          t != DType::kF6E2M3 && t != DType::kF6E3M2);
}

Expected<Tensor> cast_tensor(const Tensor& in, DType to, const CastOptions& options) {
  if (!castable(in.dtype()) || !castable(to))
    return unsupported("Cast from {} to {} is not supported", dtype_name(in.dtype()), dtype_name(to));
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(to, in.dims()));
  const int64_t n = in.numel();
  if (in.dtype() == DType::kString && to == DType::kString) {
    out.strings() = in.strings();
  } else if (in.dtype() == DType::kString) {
    void* dst = out.mutable_raw();
    for (int64_t i = 0; i < n; ++i) write_scalar(to, dst, i, parse_number(in.strings()[i]), options);
  } else if (to == DType::kString) {
    for (int64_t i = 0; i < n; ++i)
      out.strings()[i] = scalar_to_string(in.dtype(), read_scalar(in.dtype(), in.raw(), i));
  } else if (in.dtype() == to) {
    if (n) std::memcpy(out.mutable_raw(), in.raw(), in.nbytes());
  } else {
    void* dst = out.mutable_raw();
    for (int64_t i = 0; i < n; ++i) write_scalar(to, dst, i, read_scalar(in.dtype(), in.raw(), i), options);
  }
  return out;
}

}  // namespace kiln
