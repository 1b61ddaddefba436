// Element types. The numbers are ONNX's TensorProto.DataType, so a dtype read
// from a model or written to a TensorProto needs no table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln {

enum class DType : uint8_t {
  kUndefined = 0,
  kF32 = 1,
  kU8 = 2,
  kI8 = 3,
  kU16 = 4,
  kI16 = 5,
  kI32 = 6,
  kI64 = 7,
  kString = 8,
  kBool = 9,
  kF16 = 10,
  kF64 = 11,
  kU32 = 12,
  kU64 = 13,
  kC64 = 14,
  kC128 = 15,
  kBF16 = 16,
  kF8E4M3FN = 17,
  kF8E4M3FNUZ = 18,
  kF8E5M2 = 19,
  kF8E5M2FNUZ = 20,
  kU4 = 21,
  kI4 = 22,
  kF4E2M1 = 23,
  kF8E8M0 = 24,
  kU2 = 25,
  kI2 = 26,
  kF6E2M3 = 27,
  kF6E3M2 = 28,
};

constexpr int kMaxDType = 28;

// Short name used in dumps and messages: f32, f16, bf16, i64, bool, f8e4m3fn, ...
std::string_view dtype_name(DType t);
// Inverse of dtype_name; also accepts ONNX's names ("float", "int64", "float16").
std::optional<DType> dtype_from_name(std::string_view name);
// Whether the number is an ONNX dtype kiln knows.
bool dtype_is_known(int onnx_value);

// Bits of one element (2, 4 or 6 for the packed types, 0 for string and undefined).
int dtype_bits(DType t);
bool dtype_is_float(DType t);    // f16, bf16, f32, f64, fp8 and fp4 kinds
bool dtype_is_integer(DType t);  // signed and unsigned, 4 to 64 bits
bool dtype_is_signed(DType t);
bool dtype_is_packed(DType t);   // under 8 bits an element, packed LSB first

// Bytes needed to store `count` elements (packed types round up).
size_t dtype_storage_bytes(DType t, int64_t count);

}  // namespace kiln
