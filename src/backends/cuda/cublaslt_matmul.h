// MatMul / Gemm through cuBLASLt on row-major tensors: batched (strided, a
// stride of 0 broadcasts an operand), transposes, an optional bias vector and
// activation (Relu, tanh-approximated Gelu) fused as the epilogue, f32 (TF32
// on request) and f16/bf16 with float accumulation. The heuristic's top algorithms are returned as a list so an
// autotuner can time them; each keeps its opaque cublasLtMatmulAlgo_t, which
// is plain bytes and can be saved in an engine and reused.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// Owns a cuBLASLt handle. Move-only.
class CublasLt {
 public:
  CublasLt() = default;
  static Expected<CublasLt> create();
  ~CublasLt();
  CublasLt(CublasLt&& other) noexcept;
  CublasLt& operator=(CublasLt&& other) noexcept;
  CublasLt(const CublasLt&) = delete;
  CublasLt& operator=(const CublasLt&) = delete;
  cublasLtHandle_t get() const { return handle_; }

 private:
  cublasLtHandle_t handle_ = nullptr;
};

// What cuBLASLt's epilogue applies after the bias. Its GELU is the tanh
// approximation (PyTorch uses it only for gelu(approximate="tanh")); the exact
// erf form is not an epilogue.
enum class MatmulActivation { kNone, kRelu, kGeluTanh };

// D[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b] (+ bias[n] per row)),
// all row-major: op(A) is [m, k], op(B) is [k, n], C and D are [m, n].
struct MatmulShape {
  DType dtype = DType::kF32;  // of A, B, C, D and bias
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false;  // A is stored [k, m]
  bool trans_b = false;  // B is stored [n, k]
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;       // elements between batches; 0 broadcasts
  bool has_c = false;                                     // beta * C with C [m, n] (stride_c per batch)
  bool has_bias = false;                                  // bias [n] added to every row, fused as the epilogue
  MatmulActivation activation = MatmulActivation::kNone;  // applied last, in the epilogue
  bool allow_tf32 = false;
};

struct MatmulAlgo {
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;
  float waves = 0;  // the heuristic's estimate of SM waves
};

// Up to `max_algos` algorithms the heuristic ranks best first, needing at
// most `workspace_limit` bytes of workspace. Unsupported shapes are errors.
Expected<std::vector<MatmulAlgo>> matmul_algos(const CublasLt& lt, const MatmulShape& s, int max_algos,
                                               size_t workspace_limit);

struct MatmulArgs {
  const void* a = nullptr;
  const void* b = nullptr;
  const void* c = nullptr;     // when has_c
  const void* bias = nullptr;  // when has_bias
  void* d = nullptr;
  float alpha = 1.f, beta = 0.f;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

// Runs one algorithm (from matmul_algos; null lets cuBLASLt choose).
Status launch_matmul(const CublasLt& lt, const MatmulShape& s, const MatmulArgs& args, const MatmulAlgo* algo,
                     cudaStream_t stream);

}  // namespace kiln::cuda
