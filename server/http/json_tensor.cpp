#include "http/json_tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "inference.h"

namespace kiln::server {
namespace {

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t man = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u : 0));
  int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    man |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t h = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (man >> 13);
  uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;  // may carry into the exponent: correct
  return static_cast<uint16_t>(sign | h);
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31)
    v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    v = std::ldexp(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits |= sign;
  std::memcpy(&v, &bits, 4);
  return v;
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if (std::isnan(f)) return 0x7fc0;
  x += 0x7fffu + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

float bf16_to_float(uint16_t b) {
  uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

template <typename T>
bool put_int(const nlohmann::json& v, std::vector<uint8_t>& out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    put<T>(out, static_cast<T>(u));
    return true;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      if (i < 0) return false;
    } else {
      if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) return false;
    }
    if (static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max()) && i >= 0) return false;
    put<T>(out, static_cast<T>(i));
    return true;
  }
  return false;
}

bool put_element(const nlohmann::json& v, DType t, std::vector<uint8_t>& out) {
  switch (t) {
    case DType::kString:
      if (!v.is_string()) return false;
      append_serialized_string(v.get_ref<const std::string&>(), out);
      return true;
    case DType::kBool:
      if (!v.is_boolean()) return false;
      put<uint8_t>(out, v.get<bool>() ? 1 : 0);
      return true;
    case DType::kU8: return put_int<uint8_t>(v, out);
    case DType::kU16: return put_int<uint16_t>(v, out);
    case DType::kU32: return put_int<uint32_t>(v, out);
    case DType::kU64: return put_int<uint64_t>(v, out);
    case DType::kI8: return put_int<int8_t>(v, out);
    case DType::kI16: return put_int<int16_t>(v, out);
    case DType::kI32: return put_int<int32_t>(v, out);
    case DType::kI64: return put_int<int64_t>(v, out);
    default: break;
  }
  if (!v.is_number()) return false;
  double d = v.get<double>();
  switch (t) {
    case DType::kF32: put<float>(out, static_cast<float>(d)); return true;
    case DType::kF64: put<double>(out, d); return true;
    case DType::kF16: put<uint16_t>(out, float_to_half(static_cast<float>(d))); return true;
    case DType::kBF16: put<uint16_t>(out, float_to_bf16(static_cast<float>(d))); return true;
    default: return false;
  }
}

// Walks nested arrays depth-first without recursion limits being a risk:
// nlohmann's parser already bounds nesting by the input size.
std::string flatten(const nlohmann::json& data, DType t, int64_t& seen, int64_t count, std::vector<uint8_t>& out,
                    int depth) {
  if (depth > 64) return "'data' is nested more than 64 deep";
  if (!data.is_array()) {
    if (seen >= count) return "'data' has more than the " + std::to_string(count) + " elements of the shape";
    if (!put_element(data, t, out))
      return "'data' element " + std::to_string(seen) + " (" + json_brief(data) + ") is not a valid " +
             triton_dtype_name(t);
    ++seen;
    return "";
  }
  for (const auto& e : data) {
    std::string err = flatten(e, t, seen, count, out, depth + 1);
    if (!err.empty()) return err;
  }
  return "";
}

template <typename T>
nlohmann::json to_json(const std::vector<uint8_t>& b) {
  nlohmann::json a = nlohmann::json::array();
  for (size_t i = 0; i + sizeof(T) <= b.size(); i += sizeof(T)) {
    T v;
    std::memcpy(&v, b.data() + i, sizeof(T));
    if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(v)) {
        a.push_back(nullptr);  // JSON has no NaN or infinity; Triton writes them the same way
        continue;
      }
    }
    a.push_back(v);
  }
  return a;
}

}  // namespace

std::string json_brief(const nlohmann::json& v) {
  if (v.is_structured()) return std::string("a JSON ") + v.type_name();
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).substr(0, 40);
}

std::string json_to_tensor_bytes(const nlohmann::json& data, DType dtype, int64_t count, std::vector<uint8_t>& out) {
  bool strings = dtype == DType::kString;
  if (dtype_bytes(dtype) == 0 && !strings)
    return std::string("datatype ") + triton_dtype_name(dtype) + " is not supported";
  // Bounded: `count` comes from the request and may be a lie.
  out.reserve(static_cast<size_t>(std::min<int64_t>(count, 1 << 20)) * (strings ? 4 : dtype_bytes(dtype)));
  int64_t seen = 0;
  std::string err = flatten(data, dtype, seen, count, out, 0);
  if (!err.empty()) return err;
  if (seen != count)
    return "'data' has " + std::to_string(seen) + " elements but the shape has " + std::to_string(count);
  return "";
}

nlohmann::json tensor_bytes_to_json(const std::vector<uint8_t>& b, DType t) {
  switch (t) {
    case DType::kBool: {
      nlohmann::json a = nlohmann::json::array();
      for (uint8_t v : b) a.push_back(v != 0);
      return a;
    }
    case DType::kU8: return to_json<uint8_t>(b);
    case DType::kU16: return to_json<uint16_t>(b);
    case DType::kU32: return to_json<uint32_t>(b);
    case DType::kU64: return to_json<uint64_t>(b);
    case DType::kI8: return to_json<int8_t>(b);
    case DType::kI16: return to_json<int16_t>(b);
    case DType::kI32: return to_json<int32_t>(b);
    case DType::kI64: return to_json<int64_t>(b);
    case DType::kF32: return to_json<float>(b);
    case DType::kF64: return to_json<double>(b);
    case DType::kString: {
      // Serialized elements (read until the data ends: the scheduler made
      // them); invalid UTF-8 is replaced when the body is dumped.
      std::vector<std::string> strings;
      std::string error;
      deserialize_strings(b.data(), b.size(), UINT64_MAX, &strings, error);
      return strings;
    }
    case DType::kF16:
    case DType::kBF16: {
      std::vector<uint8_t> f;
      for (size_t i = 0; i + 2 <= b.size(); i += 2) {
        uint16_t h;
        std::memcpy(&h, b.data() + i, 2);
        put<float>(f, t == DType::kF16 ? half_to_float(h) : bf16_to_float(h));
      }
      return to_json<float>(f);
    }
    default: return nlohmann::json::array();
  }
}

}  // namespace kiln::server
