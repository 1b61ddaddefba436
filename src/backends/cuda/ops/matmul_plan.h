// Shared by the CUDA MatMul-like ops (MatMul, Gemm, MatMulInteger,
// QLinearMatMul, Einsum): numpy batching of two operands, and running a
// product through cuBLASLt with the algorithm chosen on the plan's first run.
#pragma once

#include <any>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cuda/cublaslt_matmul.h"
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/kernels/matmul.cuh"

namespace kiln::cuda {

// cuBLASLt's scratch space for every op that calls it (its top algorithms fit).
constexpr size_t kCublasLtWorkspace = 32 << 20;

// cuBLASLt's scratch under an engine's workspace limit: its heuristic is asked
// for algorithms that fit (CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES).
inline size_t cublaslt_workspace_bytes(size_t workspace_limit) {
  return workspace_limit < kCublasLtWorkspace ? workspace_limit : kCublasLtWorkspace;
}

// A [..., m, k] @ [..., k, n] with 1-D operands promoted as numpy does.
struct BatchedProduct {
  int64_t m = 0, n = 0, k = 0;
  std::vector<int64_t> batch;                 // the broadcast batch dims
  std::vector<int64_t> a_strides, b_strides;  // element strides along them; 0 where broadcast
  int64_t batch_count() const;
};

Expected<BatchedProduct> plan_product(std::vector<int64_t> a_dims, std::vector<int64_t> b_dims, std::string_view op);

// The plain kernel's parameters for the product (row-major operands, kStore).
SimpleMatmulParams simple_params(const BatchedProduct& bp, DType a_type, DType b_type, DType y_type, const void* a,
                                 const void* b, void* y);

// Whether cuBLASLt takes the dtype (f32, f16, bf16).
bool cublaslt_dtype(DType t);

// Runs the batched product (row-major, contiguous y) through cuBLASLt,
// splitting the batch into an outer loop where one strided batch cannot
// express the broadcast. With `c` (laid out as y, of y's dtype), y = A B + c.
// Needs cublaslt_workspace_bytes(ctx.workspace_limit()) of ctx.workspace()
// from `workspace_offset` on.
Status run_cublaslt_product(KernelContext& ctx, const BatchedProduct& bp, DType t, const void* a, const void* b,
                            void* y, size_t workspace_offset = 0, const void* c = nullptr);

// The product as one strided-batched cuBLASLt call, when one expresses it.
std::optional<MatmulShape> single_call_shape(const BatchedProduct& bp, DType t, bool tf32);

// Tactics of a cuBLASLt call: "cublaslt:<i>", the i-th algorithm of the
// heuristic's list for the shape (at most `limit`) among those that need at
// most `workspace_bytes`.
std::vector<std::string> cublaslt_tactics(const MatmulShape& s, size_t limit, size_t workspace_bytes);

// One cuBLASLt call with the algorithm kept in ctx.state() (chosen on the
// plan's first run, for this op's single shape: ctx.tactic()'s, or the
// heuristic's first; `cache` false lets cuBLASLt choose each time).
Status run_cublaslt(KernelContext& ctx, const MatmulShape& s, MatmulArgs args, bool cache = true,
                    size_t workspace_offset = 0);

// As run_cublaslt with the cached algorithm, but returns false, having run
// nothing, when cuBLASLt has no algorithm for `s` or refuses it as
// unsupported (an epilogue it cannot fuse here): the caller takes another path.
// The algorithm is kept in `*state` where given (a kernel that keeps other
// state of its own in ctx.state() passes a slot of it), else in ctx.state().
Expected<bool> try_run_cublaslt(KernelContext& ctx, const MatmulShape& s, MatmulArgs args, size_t workspace_offset = 0,
                                std::any* state = nullptr);

}  // namespace kiln::cuda
