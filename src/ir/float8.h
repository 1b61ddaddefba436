// Scalar conversions between double and ONNX's small float formats: the four
// float8 kinds (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ), the exponent-only E8M0 and
// the 4-bit E2M1. Encoding rounds to nearest even (E8M0: per RoundMode) and
// follows the Cast spec's saturate tables; the special-value bit patterns
// (which NaN a float8 NaN becomes) match onnx's reference (ml_dtypes).
#pragma once

#include <cstdint>

#include "ir/dtype.h"

namespace kiln {

enum class E8M0Rounding : uint8_t { kUp, kDown, kNearest };

// Decodes one element of a small float dtype (f8*, f8e8m0, f4e2m1) to double.
double small_float_to_double(DType t, uint8_t bits);
// Encodes a double as a small float dtype. `saturate` maps out-of-range values
// (and infinities) to the largest finite value instead of NaN/Inf; f4e2m1
// always saturates (it has neither).
uint8_t double_to_small_float(DType t, double x, bool saturate, E8M0Rounding rounding = E8M0Rounding::kUp);

// Whether t is one of the dtypes above.
bool is_small_float(DType t);

}  // namespace kiln
