// Element-wise conversion between any two ONNX dtypes, the core of Cast and
// CastLike; quantization kernels can reuse read_scalar / write_scalar.
//
// Every element goes through a wide Scalar (double for floats, int64/uint64
// for integers), so integer-to-integer conversions are exact and wrap like
// two's complement, float-to-integer truncates toward zero (out-of-range
// values wrap through int64, NaN becomes 0), and packed 2- and 4-bit types
// are read and written LSB first.
#pragma once

#include <cstdint>
#include <string>

#include "ir/float8.h"
#include "ir/tensor.h"

namespace kiln {

struct Scalar {
  enum class Kind : uint8_t { kFloat, kSigned, kUnsigned };
  Kind kind = Kind::kFloat;
  double f = 0;
  int64_t i = 0;
  uint64_t u = 0;

  static Scalar of_float(double v) { return {Kind::kFloat, v, 0, 0}; }
  static Scalar of_signed(int64_t v) { return {Kind::kSigned, 0, v, 0}; }
  static Scalar of_unsigned(uint64_t v) { return {Kind::kUnsigned, 0, 0, v}; }
  double as_double() const;
};

struct CastOptions {
  bool saturate = true;  // float8 targets: clamp out-of-range values (see float8.h)
  E8M0Rounding rounding = E8M0Rounding::kUp;
};

// Element i of a numeric, bool, small-float or packed-integer tensor.
Scalar read_scalar(DType t, const void* data, int64_t i);
// Stores v as element i of a tensor of dtype t (data from mutable_raw()).
void write_scalar(DType t, void* data, int64_t i, const Scalar& v, const CastOptions& options = {});

// A new tensor of dtype `to` holding `in` converted element by element;
// strings convert to and from numbers as numpy does ("0.5", "INF", "NaN").
Expected<Tensor> cast_tensor(const Tensor& in, DType to, const CastOptions& options = {});

// How Cast writes a number as a string (numpy's str() of the scalar).
std::string scalar_to_string(DType from, const Scalar& v);

}  // namespace kiln
