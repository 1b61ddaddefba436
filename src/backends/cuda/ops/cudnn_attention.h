// Attention through cuDNN's fused scaled dot-product attention (flash
// attention on Hopper), built with the cuDNN frontend's graph API
// (cudnn_frontend::graph::Graph::sdpa): Attention's tactic "cudnn". The
// frontend is header-only and optional: without it (KILN_HAVE_CUDNN_FRONTEND
// unset when this file's .cpp compiles) no plan is ever built and the tactic
// is never offered. Plans are cached process-wide by their full signature and
// device, as cuDNN convolution plans are (cudnn_conv.h): the plan built at plan
// time (to size the workspace) is the one a kernel's first run finds.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "support/status.h"

namespace kiln::cuda {

// One attention as cuDNN sees it: Q [B, Hq, Sq, D], K and V [B, Hkv, Skv, D],
// O [B, Hq, Sq, D], each with the strides of kiln's layout (4-D BHSD or the
// packed 3-D (B, S, H*D) form), and an optional additive bias (the float
// attn_mask) of dims [B or 1, Hq or 1, Sq or 1, Skv].
struct CudnnSdpaSpec {
  DType dtype = DType::kF16;  // Q, K, V, O: f16 or bf16 (computed in float)
  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, kv_len = 0, head = 0;
  std::array<int64_t, 4> q_strides{}, k_strides{}, v_strides{}, o_strides{};
  float scale = 1.f;
  bool causal = false;  // keys after the query's own position hidden (Sq == Skv)
  bool has_bias = false;
  DType bias_dtype = DType::kUndefined;
  std::array<int64_t, 4> bias_dims{}, bias_strides{};
  size_t workspace_limit = 0;

  std::string key() const;
};

// The spec of an Attention node for these input dtypes and dims (Q, K, V, and
// attn_mask's when given), or nullopt where the cuDNN tactic does not apply:
// it takes f16/bf16 with equal Q/K/V dtypes, D == Dv, D % 8 == 0, D <= 128, no
// KV cache (past or present), no softcap, no qk_matmul_output, no windows, no
// nonpad_kv_seqlen, causal only where Sq == Skv, and a float (f16, bf16, f32)
// attn_mask with all Skv keys. Pure host logic: no GPU is touched.
std::optional<CudnnSdpaSpec> cudnn_sdpa_spec(const Node& node, DType dtype, const std::vector<int64_t>& q,
                                             const std::vector<int64_t>& k, const std::vector<int64_t>& v,
                                             DType mask_dtype, const std::vector<int64_t>* mask,
                                             size_t workspace_limit);

// `spec` (of the 3-D form) for Q, K and V that are column ranges of one packed
// QKV tensor with `row` elements per token (kiln.PackedAttention): their
// strides become the packed rows'; O stays dense.
void use_packed_qkv_rows(CudnnSdpaSpec& spec, int64_t row);

// Whether this build compiled the cuDNN frontend in (the tactic can exist).
bool cudnn_sdpa_compiled();

class CudnnSdpaPlan;

// The plan for `spec` on the current device, built on first use with a
// process-wide handle of that device and cached (failures too). Null when the
// frontend is not compiled in, cuDNN does not support the spec, its workspace
// exceeds the spec's limit, or no device is usable.
std::shared_ptr<const CudnnSdpaPlan> cudnn_sdpa_plan(const CudnnSdpaSpec& spec);

size_t workspace_size(const CudnnSdpaPlan& plan);

// Runs the plan on `stream` through `handle` (any handle of the device). No
// allocation and no host synchronization: safe under CUDA graph capture.
// `bias` is given exactly when the spec has one.
Status execute_cudnn_sdpa(cudnnHandle_t handle, cudaStream_t stream, const CudnnSdpaPlan& plan, const void* q,
                          const void* k, const void* v, const void* bias, void* o, void* workspace);

}  // namespace kiln::cuda
