#include "ir/dtype.h"

#include <array>
#include <string>

namespace kiln {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  std::string_view onnx_name;
  int bits;
};

constexpr std::array<DTypeInfo, kMaxDType + 1> kInfo{{
    {DType::kUndefined, "undefined", "undefined", 0},
    {DType::kF32, "f32", "float", 32},
    {DType::kU8, "u8", "uint8", 8},
    {DType::kI8, "i8", "int8", 8},
    {DType::kU16, "u16", "uint16", 16},
    {DType::kI16, "i16", "int16", 16},
    {DType::kI32, "i32", "int32", 32},
    {DType::kI64, "i64", "int64", 64},
    {DType::kString, "string", "string", 0},
    {DType::kBool, "bool", "bool", 8},
    {DType::kF16, "f16", "float16", 16},
    {DType::kF64, "f64", "double", 64},
    {DType::kU32, "u32", "uint32", 32},
    {DType::kU64, "u64", "uint64", 64},
    {DType::kC64, "c64", "complex64", 64},
    {DType::kC128, "c128", "complex128", 128},
    {DType::kBF16, "bf16", "bfloat16", 16},
    {DType::kF8E4M3FN, "f8e4m3fn", "float8e4m3fn", 8},
    {DType::kF8E4M3FNUZ, "f8e4m3fnuz", "float8e4m3fnuz", 8},
    {DType::kF8E5M2, "f8e5m2", "float8e5m2", 8},
    {DType::kF8E5M2FNUZ, "f8e5m2fnuz", "float8e5m2fnuz", 8},
    {DType::kU4, "u4", "uint4", 4},
    {DType::kI4, "i4", "int4", 4},
    {DType::kF4E2M1, "f4e2m1", "float4e2m1", 4},
    {DType::kF8E8M0, "f8e8m0", "float8e8m0", 8},
    {DType::kU2, "u2", "uint2", 2},
    {DType::kI2, "i2", "int2", 2},
    {DType::kF6E2M3, "f6e2m3", "float6e2m3", 6},
    {DType::kF6E3M2, "f6e3m2", "float6e3m2", 6},
}};

const DTypeInfo& info(DType t) {
  auto i = static_cast<size_t>(t);
  return i < kInfo.size() ? kInfo[i] : kInfo[0];
}

}  // namespace

std::string_view dtype_name(DType t) { return info(t).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kInfo)
    if (i.type != DType::kUndefined && (i.name == name || i.onnx_name == name)) return i.type;
  if (name == "float32") return DType::kF32;
  if (name == "float64") return DType::kF64;
  if (name == "half") return DType::kF16;
  return std::nullopt;
}

bool dtype_is_known(int v) { return v > 0 && v <= kMaxDType; }

int dtype_bits(DType t) { return info(t).bits; }

bool dtype_is_float(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kF64:
    case DType::kBF16:
    case DType::kF8E4M3FN:
    case DType::kF8E4M3FNUZ:
    case DType::kF8E5M2:
    case DType::kF8E5M2FNUZ:
    case DType::kF4E2M1:
    case DType::kF8E8M0:
    case DType::kF6E2M3:
    case DType::kF6E3M2: return true;
    default: return false;
  }
}

bool dtype_is_signed(DType t) {
  switch (t) {
    case DType::kI8:
    case DType::kI16:
    case DType::kI32:
    case DType::kI64:
    case DType::kI4:
    case DType::kI2: return true;
    default: return false;
  }
}

bool dtype_is_integer(DType t) {
  switch (t) {
    case DType::kU8:
    case DType::kU16:
    case DType::kU32:
    case DType::kU64:
    case DType::kU4:
    case DType::kU2: return true;
    default: return dtype_is_signed(t);
  }
}

bool dtype_is_packed(DType t) { return dtype_bits(t) > 0 && dtype_bits(t) < 8; }

size_t dtype_storage_bytes(DType t, int64_t count) {
  if (count <= 0) return 0;
  auto n = static_cast<size_t>(count);
  return (n * static_cast<size_t>(dtype_bits(t)) + 7) / 8;
}

}  // namespace kiln
