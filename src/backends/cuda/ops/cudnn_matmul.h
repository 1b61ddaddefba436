// kiln.FusedMatMul through cuDNN's graph API: one matmul with its bias add
// and activation as pointwise ops on virtual float intermediates, which cuDNN
// runs as one runtime-fused kernel (on Hopper), so Y is written once: a
// tactic the tuner times against cuBLASLt's for the exact (erf) Gelu of
// f16/bf16 layers. It is CUDNN_POINTWISE_GELU_FWD, which measured as the tanh
// form on an H200, as cuBLASLt's GELU epilogue is (within 4.7e-4 of the erf,
// under the outputs' own rounding from 0.5 up; GELU_APPROX_TANH_FWD is
// GeluTanh). The layer's
// tactics "cudnn:<i>" name the i-th usable engine config (heuristics mode A,
// then the fallback list, within the workspace limit), as convolutions' do.
// Built with the cuDNN frontend, which is header-only and optional: without it
// (KILN_HAVE_CUDNN_FRONTEND unset when the .cpp compiles) no plan is ever
// built and no cudnn tactic is offered. Plans are cached process-wide by their
// full signature and device (CudnnPlanCache): the plan built when the
// workspace is sized is the one the kernel's run finds.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/cuda/kernels/bias_activation.cuh"
#include "support/status.h"

namespace kiln::cuda {

// Y[batch, m, n] = act(A[batch, m, k] @ B[k, n] (+ bias[n])), row-major and
// contiguous; B is one matrix for every batch unless `b_batched` (then
// B[batch, k, n]). A B shared by a contiguous A is folded into the rows
// (batch 1, m = batch * m), the form cuDNN's engines take best.
struct CudnnMatmulSpec {
  DType dtype = DType::kF16;  // A, B, bias, Y: f16 or bf16 (computed in float)
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool b_batched = false;
  bool has_bias = false;
  BiasActivation activation = BiasActivation::kNone;  // kGelu: GELU_FWD (see above), kGeluTanh the tanh one
  size_t workspace_limit = 0;
  int engine_index = 0;  // the n-th usable engine config, in the heuristics' order (a tactic)

  std::string key() const;
};

// The spec of A (dims `a`) @ B (dims `b`, numpy batching and 1-D promotion
// as MatMul's) for `dtype`, or nullopt where this route does not apply: it
// takes f16/bf16, K > 0 and no empty output, and a batch where B is one
// matrix for all (A contiguous over it) or A and B both have every batch.
// Pure host logic: no GPU is touched.
std::optional<CudnnMatmulSpec> cudnn_matmul_spec(DType dtype, const std::vector<int64_t>& a,
                                                 const std::vector<int64_t>& b, bool has_bias,
                                                 BiasActivation activation, size_t workspace_limit);

// The engine index a tactic names: i for "cudnn:<i>" (decimal digits only),
// nullopt for any other name ("", "cublaslt:0", "cudnn:", "cudnn:-1", ...).
std::optional<int> cudnn_matmul_tactic_index(const std::string& tactic);

// The tactic name of engine index i: "cudnn:<i>".
std::string cudnn_matmul_tactic(int index);

// Whether this build compiled the cuDNN frontend in (the tactics can exist).
bool cudnn_matmul_compiled();

class CudnnMatmulPlan;

// The plan for `spec` on the current device, built on first use with a
// process-wide handle of that device and cached (failures too). Null when the
// frontend is not compiled in, cuDNN has no usable engine config numbered
// spec.engine_index, or no device is usable.
std::shared_ptr<const CudnnMatmulPlan> cudnn_matmul_plan(const CudnnMatmulSpec& spec);

// How many usable engine configs cuDNN offers for `spec` (at most `limit`);
// each is built (and cached) on the way.
int cudnn_matmul_engine_count(CudnnMatmulSpec spec, int limit);

size_t workspace_size(const CudnnMatmulPlan& plan);

// Runs the plan on `stream` through `handle` (any handle of the device).
// Every pointer must be 16-byte aligned; `bias` is given exactly when the
// spec has one. No allocation and no host synchronization: safe under CUDA
// graph capture.
Status execute_cudnn_matmul(cudnnHandle_t handle, cudaStream_t stream, const CudnnMatmulPlan& plan, const void* a,
                            const void* b, const void* bias, void* y, void* workspace);

}  // namespace kiln::cuda
