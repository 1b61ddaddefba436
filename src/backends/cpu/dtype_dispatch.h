// Runs a templated kernel body for the C++ type of a dtype:
//
//   return visit_dtype(t.dtype(), kFloatTypes, [&]<typename T>() { ... return Status::ok(); });
//
// The type sets say which dtypes an op allows; any other dtype is reported as
// unsupported, naming the op's node and the dtype.
#pragma once

#include <cstdint>

#include "ir/dtype.h"
#include "ir/half.h"
#include "support/status.h"

namespace kiln {

// Bit sets of dtypes (bit i = DType value i).
using DTypeSet = uint64_t;
constexpr DTypeSet dtype_bit(DType t) { return DTypeSet(1) << static_cast<int>(t); }
constexpr DTypeSet kFloatTypes =
    dtype_bit(DType::kF32) | dtype_bit(DType::kF64) | dtype_bit(DType::kF16) | dtype_bit(DType::kBF16);
constexpr DTypeSet kSignedIntTypes =
    dtype_bit(DType::kI8) | dtype_bit(DType::kI16) | dtype_bit(DType::kI32) | dtype_bit(DType::kI64);
constexpr DTypeSet kUnsignedIntTypes =
    dtype_bit(DType::kU8) | dtype_bit(DType::kU16) | dtype_bit(DType::kU32) | dtype_bit(DType::kU64);
constexpr DTypeSet kIntTypes = kSignedIntTypes | kUnsignedIntTypes;
constexpr DTypeSet kNumericTypes = kFloatTypes | kIntTypes;
constexpr DTypeSet kAllPlainTypes = kNumericTypes | dtype_bit(DType::kBool);  // one element a byte or more, not strings

template <typename Fn>
Status visit_dtype(DType t, DTypeSet allowed, Fn&& fn) {
  if (!(allowed & dtype_bit(t))) return unsupported("dtype {} is not supported here", dtype_name(t));
  switch (t) {
    case DType::kF32: return fn.template operator()<float>();
    case DType::kF64: return fn.template operator()<double>();
    case DType::kF16: return fn.template operator()<Half>();
    case DType::kBF16: return fn.template operator()<BFloat16>();
    case DType::kI8: return fn.template operator()<int8_t>();
    case DType::kI16: return fn.template operator()<int16_t>();
    case DType::kI32: return fn.template operator()<int32_t>();
    case DType::kI64: return fn.template operator()<int64_t>();
    case DType::kU8: return fn.template operator()<uint8_t>();
    case DType::kU16: return fn.template operator()<uint16_t>();
    case DType::kU32: return fn.template operator()<uint32_t>();
    case DType::kU64: return fn.template operator()<uint64_t>();
    case DType::kBool: return fn.template operator()<bool>();
    default: return unsupported("dtype {} is not supported here", dtype_name(t));
  }
}

// The type arithmetic on T is done in: float for the 16-bit floats, T otherwise.
template <typename T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<Half> {
  using type = float;
};
template <>
struct compute_type<BFloat16> {
  using type = float;
};
template <typename T>
using compute_t = typename compute_type<T>::type;

}  // namespace kiln
