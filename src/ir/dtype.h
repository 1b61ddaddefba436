// Element types. The numbers are ONNX's TensorProto.DataType, so a dtype read
// from a model or written to a TensorProto needs no table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "kiln/dtype.h"

namespace kiln {

// Inverse of dtype_name; also accepts ONNX's names ("float", "int64", "float16").
std::optional<DType> dtype_from_name(std::string_view name);
// Whether the number is an ONNX dtype kiln knows.
bool dtype_is_known(int onnx_value);

// Bits of one element (2, 4 or 6 for the packed types, 0 for string and undefined).
int dtype_bits(DType t);
bool dtype_is_float(DType t);    // f16, bf16, f32, f64, fp8 and fp4 kinds
bool dtype_is_integer(DType t);  // signed and unsigned, 4 to 64 bits
bool dtype_is_signed(DType t);
bool dtype_is_packed(DType t);  // under 8 bits an element, packed LSB first

// Bytes needed to store `count` elements (packed types round up).
size_t dtype_storage_bytes(DType t, int64_t count);

}  // namespace kiln
