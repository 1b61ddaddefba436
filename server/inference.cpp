#include "inference.h"

#include <array>
#include <utility>

namespace kiln::server {
namespace {

constexpr std::array<std::pair<DType, const char*>, 14> kNames = {{
    {DType::kBool, "BOOL"},
    {DType::kU8, "UINT8"},
    {DType::kU16, "UINT16"},
    {DType::kU32, "UINT32"},
    {DType::kU64, "UINT64"},
    {DType::kI8, "INT8"},
    {DType::kI16, "INT16"},
    {DType::kI32, "INT32"},
    {DType::kI64, "INT64"},
    {DType::kF16, "FP16"},
    {DType::kF32, "FP32"},
    {DType::kF64, "FP64"},
    {DType::kBF16, "BF16"},
    {DType::kString, "BYTES"},
}};

}  // namespace

const char* triton_dtype_name(DType t) {
  for (const auto& [d, n] : kNames)
    if (d == t) return n;
  return "INVALID";
}

DType dtype_from_triton_name(const std::string& name) {
  for (const auto& [d, n] : kNames)
    if (name == n) return d;
  return DType::kUndefined;
}

size_t dtype_bytes(DType t) {
  switch (t) {
    case DType::kBool:
    case DType::kU8:
    case DType::kI8: return 1;
    case DType::kU16:
    case DType::kI16:
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kU32:
    case DType::kI32:
    case DType::kF32: return 4;
    case DType::kU64:
    case DType::kI64:
    case DType::kF64: return 8;
    default: return 0;
  }
}

}  // namespace kiln::server
