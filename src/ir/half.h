// 16-bit float element types for host code: storage is the raw bits, and
// arithmetic goes through float (conversions round to nearest even).
#pragma once

#include <cstdint>

#include "ir/tensor.h"

namespace kiln {

struct Half {
  uint16_t bits = 0;
  Half() = default;
  explicit Half(float f) : bits(f32_to_f16(f)) {}
  explicit Half(double d) : bits(f32_to_f16(static_cast<float>(d))) {}
  operator float() const { return f16_to_f32(bits); }  // NOLINT(google-explicit-constructor)
  static Half from_bits(uint16_t b) {
    Half h;
    h.bits = b;
    return h;
  }
};

struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f) : bits(f32_to_bf16(f)) {}
  explicit BFloat16(double d) : bits(f32_to_bf16(static_cast<float>(d))) {}
  operator float() const { return bf16_to_f32(bits); }  // NOLINT(google-explicit-constructor)
  static BFloat16 from_bits(uint16_t b) {
    BFloat16 h;
    h.bits = b;
    return h;
  }
};

static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2);

}  // namespace kiln
