// Launchers of the registered elementwise ops (src/backends/cuda/ops/
// elementwise*.cpp), every dtype the CPU kernels take. Each op computes as its
// CPU kernel does: 16-bit floats in float, f64 in double, integers in their
// own type with two's-complement wrap-around. Where the CPU kernel reports an
// error at run time (integer division or Mod by zero) these kernels cannot,
// and write 0 instead. Binary and variadic ops broadcast like numpy up to
// rank 8. The launchers check dtypes and ranks (an error names what is not
// supported) and launch nothing for empty tensors.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class UnaryFn : uint8_t {
  // any float dtype (f32, f16, bf16, f64)
  kReciprocal,
  kFloor,
  kCeil,
  kSqrt,
  kExp,
  kLog,
  kTanh,
  kSigmoid,
  kSin,
  kCos,
  kTan,
  kAsin,
  kAcos,
  kAtan,
  kSinh,
  kCosh,
  kAsinh,
  kAcosh,
  kAtanh,
  kErf,
  kRound,  // halves to even
  kSoftsign,
  kSoftplus,
  kLeakyRelu,        // alpha
  kElu,              // alpha
  kSelu,             // alpha, gamma
  kCelu,             // alpha
  kHardSigmoid,      // alpha, beta
  kHardSwish,        //
  kMish,             //
  kGelu,             // erf form
  kGeluTanh,         // tanh approximation
  kThresholdedRelu,  // alpha
  kSwish,            // alpha
  // floats and integers (Neg, Relu: signed integers only)
  kAbs,
  kNeg,
  kSign,
  kRelu,
  kShrink,  // lambd, bias; any numeric dtype
  // integers only
  kBitwiseNot,
  // to bool: IsNaN, IsInf (floats), Not (bool)
  kIsNaN,
  kIsInf,  // detect_positive, detect_negative
  kNot,
};

struct UnaryFnParams {
  UnaryFn fn = UnaryFn::kRelu;
  DType dtype = DType::kF32;  // of x; y has it too, but bool for IsNaN/IsInf
  const void* x = nullptr;
  void* y = nullptr;  // may equal x
  int64_t n = 0;
  float alpha = 0.f, beta = 0.f, gamma = 0.f;  // the op's float attributes (Shrink: alpha = lambd, beta = bias)
  bool detect_positive = true, detect_negative = true;
};
Status launch_unary_fn(const UnaryFnParams& p, cudaStream_t stream);

// Clip with optional scalar bounds in device memory (null: unbounded), of any
// numeric dtype (read exactly when it is x's dtype, through double otherwise).
struct ClipParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t n = 0;
  const void* min = nullptr;
  DType min_dtype = DType::kF32;
  const void* max = nullptr;
  DType max_dtype = DType::kF32;
};
Status launch_clip(const ClipParams& p, cudaStream_t stream);

enum class BinaryFn : uint8_t {
  // numeric dtypes, output of the input dtype
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,   // the divisor's sign (fmod=0)
  kFmod,  // the dividend's sign (fmod=1)
  kMax,
  kMin,
  kMean2,  // (a + b) / 2: Mean of two inputs; floats only
  kPRelu,  // a < 0 ? b * a : a
  kPow,    // b (the exponent) may have another numeric dtype: b_dtype
  // floats only, equal shapes: a * sigmoid(alpha * a) * b, each step rounded to the dtype
  kSwiGLU,
  // to bool: numeric dtypes (Equal: bool too)
  kEqual,
  kLess,
  kGreater,
  kLessOrEqual,
  kGreaterOrEqual,
  // bool only
  kAnd,
  kOr,
  kXor,
  // integers only
  kBitwiseAnd,
  kBitwiseOr,
  kBitwiseXor,
  kShiftLeft,
  kShiftRight,
};

struct BinaryFnParams {
  BinaryFn fn = BinaryFn::kAdd;
  DType dtype = DType::kF32;    // of a (and of b, but for Pow)
  DType b_dtype = DType::kF32;  // Pow's exponent
  const void* a = nullptr;
  std::vector<int64_t> a_dims;
  const void* b = nullptr;
  std::vector<int64_t> b_dims;
  void* y = nullptr;
  std::vector<int64_t> y_dims;  // the broadcast of a_dims and b_dims
  float alpha = 1.f;            // SwiGLU
};
Status launch_binary_fn(const BinaryFnParams& p, cudaStream_t stream);

// Sum, Mean, Max, Min of any number of inputs (one dtype), folded left to
// right in the compute type and rounded once, as the CPU does. Folds of up to
// 8 inputs take one pass; longer ones continue from y, which is exact for
// every dtype but Sum and Mean of f16/bf16 (refused: they would round between
// passes).
enum class FoldFn : uint8_t { kSum, kMean, kMax, kMin };
struct FoldParams {
  FoldFn fn = FoldFn::kSum;
  DType dtype = DType::kF32;
  std::vector<const void*> inputs;
  std::vector<std::vector<int64_t>> dims;  // one per input
  void* y = nullptr;
  std::vector<int64_t> y_dims;
};
constexpr int kMaxFoldInputs = 8;
Status launch_fold(const FoldParams& p, cudaStream_t stream);

// Where: y = cond ? x : other, all three broadcast; x, other and y share a
// dtype of elem_size bytes (1, 2, 4 or 8); cond is bool.
struct WhereParams {
  int elem_size = 4;
  const void* cond = nullptr;
  std::vector<int64_t> cond_dims;
  const void* x = nullptr;
  std::vector<int64_t> x_dims;
  const void* other = nullptr;
  std::vector<int64_t> other_dims;
  void* y = nullptr;
  std::vector<int64_t> y_dims;
};
Status launch_where(const WhereParams& p, cudaStream_t stream);

// Bytes of n elements of any 1-byte dtype made 0 or 1 (BitCast to bool).
Status launch_to_bool_bytes(const void* x, void* y, int64_t n, cudaStream_t stream);

}  // namespace kiln::cuda
