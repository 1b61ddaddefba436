// Float tensors as plain arrays of a compute type, for the sequence-model
// kernels (attention, recurrent): they read every float dtype into float (or
// double), compute there, and write back once. `round_to` reproduces the
// rounding an ONNX function body does where it materializes a 16-bit tensor,
// so the kernels match the reference at 16-bit precision.
#pragma once

#include <type_traits>
#include <vector>

#include "backends/cpu/dtype_dispatch.h"
#include "ir/tensor.h"

namespace kiln {

// Whether T is one of the float element types (visit_dtype instantiates a body
// for every type; float-only bodies skip the others with `if constexpr`).
template <typename T>
constexpr bool kIsFloatElement = std::is_floating_point_v<T> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// Every element of a float tensor (f16, bf16, f32, f64) as Acc.
template <typename Acc>
Expected<std::vector<Acc>> read_floats(const Tensor& t) {
  std::vector<Acc> out(static_cast<size_t>(t.numel()));
  Status st = visit_dtype(t.dtype(), kFloatTypes, [&]<typename T>() {
    const T* p = t.data<T>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<Acc>(static_cast<compute_t<T>>(p[i]));
    return Status::ok();
  });
  if (!st.is_ok()) return st;
  return out;
}

// Writes `values` into a float tensor of the same element count, rounding to its dtype.
template <typename Acc>
Status write_floats(Tensor& t, const std::vector<Acc>& values) {
  if (static_cast<size_t>(t.numel()) != values.size())
    return internal_error("write_floats: {} values for {} elements", values.size(), t.numel());
  return visit_dtype(t.dtype(), kFloatTypes, [&]<typename T>() {
    T* p = t.mutable_data<T>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = T(static_cast<compute_t<T>>(values[i]));
    return Status::ok();
  });
}

// x rounded to the precision of dtype t (f16, bf16, f32; f64 and others keep x).
template <typename Acc>
Acc round_to(DType t, Acc x) {
  switch (t) {
    case DType::kF16: return static_cast<Acc>(f16_to_f32(f32_to_f16(static_cast<float>(x))));
    case DType::kBF16: return static_cast<Acc>(bf16_to_f32(f32_to_bf16(static_cast<float>(x))));
    case DType::kF32: return static_cast<Acc>(static_cast<float>(x));
    default: return x;
  }
}

}  // namespace kiln
