// Einsum's generic kernel (for equations that are not one batched matrix
// product) and Det.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

constexpr int kMaxEinsumOperands = 4;
constexpr int kMaxEinsumLabels = 12;

// Every output element sums, over the summed labels, the product of the
// operands' elements, as the CPU kernel does (floats accumulate in double).
// Strides are per operand per label; 0 where an operand lacks the label or
// broadcasts it, summed where a label repeats (a diagonal).
struct EinsumParams {
  DType dtype = DType::kF32;
  std::vector<const void*> inputs;
  void* y = nullptr;
  std::vector<int64_t> out_dims, sum_dims;
  std::vector<std::vector<int64_t>> out_strides, sum_strides;  // [operand][label]
};
Status launch_einsum(const EinsumParams& p, cudaStream_t stream);

// The determinant of each of `count` [n, n] matrices: LU with partial
// pivoting in double (one block per matrix, `workspace` holds count * n * n
// doubles), as the CPU kernel computes it.
struct DetParams {
  DType dtype = DType::kF32;  // f32, f16, bf16 or f64
  const void* x = nullptr;
  void* y = nullptr;
  int64_t count = 0, n = 0;
  double* workspace = nullptr;
};
Status launch_det(const DetParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
