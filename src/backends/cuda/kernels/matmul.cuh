// A plain tiled matrix product for what cuBLASLt does not take: integer types
// and f64 (MatMul, Gemm), 8-bit integer operands with zero points
// (MatMulInteger, QLinearMatMul), and K = 0. Batched with numpy broadcasting;
// accumulates in float (16-bit floats, f32), double (f64), or 64-bit integers,
// summing over k in order, as the CPU kernel does.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// What is done with each accumulated element.
enum class MatmulEpilogue {
  kStore,       // y = acc in y's dtype (wrapping for integers)
  kGemm,        // y = alpha * acc + beta * C (alpha, beta cast to the accumulator type)
  kRequantize,  // QLinearMatMul: y = sat(round(acc * a_scale * b_scale / y_scale) + y_zero)
};

// The plain-data part, passed to the kernel as is.
struct SimpleMatmulCore {
  DType a_type = DType::kF32, b_type = DType::kF32, y_type = DType::kF32;
  const void* a = nullptr;
  const void* b = nullptr;
  void* y = nullptr;  // [batch..., m, n], contiguous
  int64_t m = 0, n = 0, k = 0;
  // Element (i, p) of A is at a[a_row * i + a_col * p]; (p, j) of B at b[b_row * p + b_col * j].
  int64_t a_row = 0, a_col = 1, b_row = 0, b_col = 1;
  // Zero points subtracted from A's rows / B's columns (count 1 or m / n), of the operand's dtype.
  const void* a_zero = nullptr;
  int64_t a_zero_count = 0;
  const void* b_zero = nullptr;
  int64_t b_zero_count = 0;

  MatmulEpilogue epilogue = MatmulEpilogue::kStore;
  // kGemm (no batch): C element (i, j) at c[c_row * i + c_col * j], of y's dtype.
  float alpha = 1.f, beta = 0.f;
  const void* c = nullptr;
  int64_t c_row = 0, c_col = 0;
  // kRequantize: scales (f32, f16 or bf16; count 1 or m / n for a / b), y_zero of y's dtype.
  DType scale_type = DType::kF32;
  const void* a_scale = nullptr;
  int64_t a_scale_count = 1;
  const void* b_scale = nullptr;
  int64_t b_scale_count = 1;
  const void* y_scale = nullptr;
  const void* y_zero = nullptr;
};

struct SimpleMatmulParams : SimpleMatmulCore {
  // The broadcast batch (y's leading dims) and each operand's element stride
  // along each of them (0 where it broadcasts). Up to 8 dims.
  std::vector<int64_t> batch_dims, a_batch_strides, b_batch_strides;
};

// Supported: a_type == b_type == y_type in {f32, f16, bf16, f64, i32, i64,
// u32, u64} with kStore or kGemm; a_type, b_type in {i8, u8} with y_type i32
// (kStore) or y_type i8/u8 (kRequantize).
Status launch_simple_matmul(const SimpleMatmulParams& p, cudaStream_t stream);

// y[i] = x[broadcast index of i] for y of `y_dims`, x of `x_dims` (rank <= 8,
// right-aligned numpy broadcast), any element size 1, 2, 4 or 8.
Status launch_broadcast_copy(int elem_size, const void* x, const std::vector<int64_t>& x_dims, void* y,
                             const std::vector<int64_t>& y_dims, cudaStream_t stream);

}  // namespace kiln::cuda
