#include "inference.h"

#include <algorithm>
#include <array>
#include <cstring>
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

void append_serialized_string(const std::string& s, std::vector<uint8_t>& out) {
  auto n = static_cast<uint32_t>(s.size());
  uint8_t len[4] = {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n >> 16),
                    static_cast<uint8_t>(n >> 24)};
  out.insert(out.end(), len, len + 4);
  out.insert(out.end(), s.begin(), s.end());
}

void serialize_strings(const std::string* s, size_t count, std::vector<uint8_t>& out) {
  size_t total = 4 * count;
  for (size_t i = 0; i < count; ++i) total += s[i].size();
  out.reserve(out.size() + total);
  for (size_t i = 0; i < count; ++i) append_serialized_string(s[i], out);
}

bool deserialize_strings(const uint8_t* data, size_t size, uint64_t count, std::vector<std::string>* out,
                         std::string& error) {
  // Bounded: `count` comes from the request.
  if (out) out->reserve(static_cast<size_t>(std::min<uint64_t>(count, size / 4)));
  size_t at = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (size - at < 4) {
      error = "BYTES data ends at element " + std::to_string(i) + " of " + std::to_string(count) +
              " (each element is a 4-byte length, then the bytes)";
      return false;
    }
    uint32_t n = static_cast<uint32_t>(data[at]) | static_cast<uint32_t>(data[at + 1]) << 8 |
                 static_cast<uint32_t>(data[at + 2]) << 16 | static_cast<uint32_t>(data[at + 3]) << 24;
    at += 4;
    if (n > size - at) {
      error = "BYTES element " + std::to_string(i) + " has length " + std::to_string(n) + " but only " +
              std::to_string(size - at) + " bytes follow";
      return false;
    }
    if (out) out->emplace_back(reinterpret_cast<const char*>(data + at), n);
    at += n;
  }
  if (at != size) {
    error = std::to_string(size - at) + " bytes follow the " + std::to_string(count) + " BYTES elements of the shape";
    return false;
  }
  return true;
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
