// kiln::DType: the element type of a tensor. The numbers are ONNX's
// TensorProto.DataType, so a dtype read from a model or written to a
// TensorProto needs no table.
//
// This header is public and self-contained (standard library only).
#pragma once

#include <cstdint>
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

// The whole-byte integer types (8 to 64 bits, signed or not).
constexpr bool is_byte_integer(DType t) {
  return t == DType::kI8 || t == DType::kI16 || t == DType::kI32 || t == DType::kI64 || t == DType::kU8 ||
         t == DType::kU16 || t == DType::kU32 || t == DType::kU64;
}

// f32, f16, bf16 and f64: the float types kernels compute in (16-bit ones in f32).
constexpr bool is_compute_float(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64;
}

// Short name used in dumps and messages: f32, f16, bf16, i64, bool, f8e4m3fn, ...
std::string_view dtype_name(DType t);

}  // namespace kiln
