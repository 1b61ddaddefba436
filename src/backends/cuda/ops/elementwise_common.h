// Dtype sets and `supports` checks shared by the elementwise op
// registrations (elementwise_unary.cpp, elementwise_binary.cpp,
// elementwise_cast.cpp).
#pragma once

#include <string>

#include "backends/cuda/cuda_kernel.h"
#include "ir/dtype.h"

namespace kiln::cuda {

using DTypeMask = uint64_t;
constexpr DTypeMask dtype_mask(DType t) { return DTypeMask(1) << static_cast<int>(t); }

constexpr DTypeMask kEwFloat =
    dtype_mask(DType::kF32) | dtype_mask(DType::kF16) | dtype_mask(DType::kBF16) | dtype_mask(DType::kF64);
constexpr DTypeMask kEwSignedInt =
    dtype_mask(DType::kI8) | dtype_mask(DType::kI16) | dtype_mask(DType::kI32) | dtype_mask(DType::kI64);
constexpr DTypeMask kEwUnsignedInt =
    dtype_mask(DType::kU8) | dtype_mask(DType::kU16) | dtype_mask(DType::kU32) | dtype_mask(DType::kU64);
constexpr DTypeMask kEwInt = kEwSignedInt | kEwUnsignedInt;
constexpr DTypeMask kEwNumeric = kEwFloat | kEwInt;
constexpr DTypeMask kEwSignedNumeric = kEwFloat | kEwSignedInt;
constexpr DTypeMask kEwBool = dtype_mask(DType::kBool);

inline DType node_input_dtype(const Node& node, size_t i) {
  const Value* v = node.input(i);
  return v ? v->type.dtype : DType::kUndefined;
}

inline std::string mask_names(DTypeMask m) {
  std::string s;
  for (int t = 0; t <= kMaxDType; ++t)
    if (m & dtype_mask(static_cast<DType>(t))) s += (s.empty() ? "" : ", ") + std::string(dtype_name(DType(t)));
  return s;
}

// Input i's declared dtype is in `allowed` (an absent optional input passes).
inline Status require_input_dtype(const Node& node, size_t i, DTypeMask allowed) {
  if (!node.input(i)) return Status::ok();
  const DType t = node_input_dtype(node, i);
  if (allowed & dtype_mask(t)) return Status::ok();
  return unsupported("{}: input {} has dtype {} (the CUDA kernel takes {})", node.op_type, i, dtype_name(t),
                     mask_names(allowed));
}

inline bool has_dtype(DTypeMask m, DType t) { return (m & dtype_mask(t)) != 0; }

}  // namespace kiln::cuda
