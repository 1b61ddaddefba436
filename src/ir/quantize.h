// What the quantization kernels need of element conversions, on top of
// float8.h and element_cast.h: narrow floats (the 8-bit kinds, e8m0 and the
// 4-bit e2m1), integer ranges, and element access to packed integers.
#pragma once

#include <cstdint>

#include "ir/dtype.h"
#include "ir/tensor.h"

namespace kiln {

// Whether `t` is one of the narrow float formats below.
bool is_narrow_float(DType t);
// The value of one element's bits (the low 4 bits for f4e2m1).
float narrow_float_to_f32(uint8_t bits, DType t);
// Bits of `f` rounded to nearest even. Out-of-range values clamp to the
// largest finite value when `saturate`, else become inf (e5m2) or NaN.
// f4e2m1 always saturates; e8m0 rounds to the nearest power of two.
uint8_t f32_to_narrow_float(float f, DType t, bool saturate);

// Round half to even, as ONNX's quantizers do.
int64_t round_half_even(float f);
int64_t round_half_even(double f);

// The smallest and largest value of an integer dtype (packed types included).
int64_t integer_min(DType t);
int64_t integer_max(DType t);

// Element `i` of an integer tensor widened to int64 (any width, packed too).
int64_t integer_element(const Tensor& t, int64_t i);
// Stores `v` (already in range) as element `i` of an integer tensor.
void set_integer_element(Tensor& t, int64_t i, int64_t v);

// Element `i` of any numeric tensor (floats of every width, integers) as double.
double numeric_element(const Tensor& t, int64_t i);

}  // namespace kiln
