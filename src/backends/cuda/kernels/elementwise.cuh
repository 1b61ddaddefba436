// Elementwise unary and binary kernels for f32, f16 and bf16 (16-bit types
// are computed in float). Binary ops broadcast like numpy up to rank 8.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class UnaryOp {
  kRelu,
  kSigmoid,
  kTanh,
  kGelu,
  kGeluTanh,
  kExp,
  kLog,
  kSqrt,
  kNeg,
  kAbs,
  kErf,
  kReciprocal,
  kSilu,
  kLeakyRelu,
  kFloor,
  kCeil,
  kSin,
  kCos,
};

struct UnaryParams {
  UnaryOp op = UnaryOp::kRelu;
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;  // may equal x
  int64_t n = 0;
  float alpha = 0.01f;  // LeakyRelu's slope
};
Status launch_unary(const UnaryParams& p, cudaStream_t stream);

enum class BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kMax, kMin };

struct BinaryParams {
  BinaryOp op = BinaryOp::kAdd;
  DType dtype = DType::kF32;
  const void* a = nullptr;
  const void* b = nullptr;
  void* y = nullptr;  // shape: broadcast of a_dims and b_dims
  std::vector<int64_t> a_dims;
  std::vector<int64_t> b_dims;
};
Status launch_binary(const BinaryParams& p, cudaStream_t stream);

// numpy broadcast of two shapes, or an error naming both.
Expected<std::vector<int64_t>> broadcast_dims(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

}  // namespace kiln::cuda
