// Attention (ONNX opset 23+) and RotaryEmbedding.
//
// Attention's Y comes from one fused kernel (flash-style: a block per
// (batch, head, 16-query tile), 32-key tiles of K and V in shared memory,
// online softmax in float, or double for f64), or for head sizes over 256
// from an unfused path (scores into scratch, softmax, product with V). The
// optional outputs are
// separate kernels: present_key/present_value (past and new keys in one
// (B, Hkv, total, D) array) and qk_matmul_output (every score recomputed,
// then a row softmax for mode 3). Scores follow the CPU oracle: Q and K each
// times sqrt(scale) rounded to the dtype, the dot product rounded, softcap,
// then the bias (mask, causal/window/padding limits as -inf); a query row with
// no visible key gives zeros.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct AttentionParams {
  DType dtype = DType::kF32;  // of Q, K, V, the caches and every output
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* past_k = nullptr;  // (B, Hkv, past_len, D); null without a cache
  const void* past_v = nullptr;
  void* y = nullptr;
  void* present_k = nullptr;  // optional outputs
  void* present_v = nullptr;
  void* qk = nullptr;  // (B, Hq, q_len, total_len)
  int qk_mode = 0;

  // attn_mask as additive values (bool: 0 where true, -inf where false),
  // broadcast to (B, Hq, q_len, mask_len): element offset
  // b * mask_strides[0] + h * mask_strides[1] + i * mask_strides[2] + j.
  const void* mask = nullptr;
  DType mask_type = DType::kBool;
  int64_t mask_strides[3] = {0, 0, 0};
  int64_t mask_len = 0;
  const int64_t* nonpad = nullptr;  // (B) valid keys per batch entry, device

  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, kv_len = 0, past_len = 0;
  int64_t head = 0, v_head = 0;  // D and Dv
  bool packed = false;           // 3-D Q/K/V/Y: (B, S, H * D)
  // Packed only: elements between consecutive tokens of Q, of K, of V (0:
  // dense, H * D). kiln.PackedAttention reads Q, K and V as column ranges of
  // one [B, S, (Hq + 2 Hkv) * D] tensor; Y stays dense.
  int64_t q_row = 0, k_row = 0, v_row = 0;
  double scale = 1.0, softcap = 0.0;
  bool causal = false;
  int64_t left_window = -1, right_window = -1;

  // Scratch for head sizes past kMaxAttentionHead (attention_scratch_bytes).
  void* scratch = nullptr;

  int64_t total_len() const { return past_len + kv_len; }
  __host__ __device__ int64_t q_stride() const { return q_row ? q_row : q_heads * head; }
  __host__ __device__ int64_t k_stride() const { return k_row ? k_row : kv_heads * head; }
  __host__ __device__ int64_t v_stride() const { return v_row ? v_row : kv_heads * v_head; }
};

// Largest head size (D and Dv) the fused kernel takes; larger heads take an
// unfused path (scores, softmax, product with V) through scratch memory.
constexpr int64_t kMaxAttentionHead = 256;

// The scratch the unfused path needs (0 when the fused kernel runs).
inline size_t attention_scratch_bytes(DType t, int64_t batch, int64_t q_heads, int64_t q_len, int64_t total_len,
                                      int64_t head, int64_t v_head) {
  if (head <= kMaxAttentionHead && v_head <= kMaxAttentionHead) return 0;
  return static_cast<size_t>(batch * q_heads * q_len * total_len) * (t == DType::kF64 ? 8 : 4);
}

Status launch_attention(const AttentionParams& p, cudaStream_t stream);

// The tensor-core kernel (tactic "tc", attention_tc.cu): Y only, for f16/bf16
// with D = Dv in {32, 64, 128} and no KV cache, softcap or optional outputs.
bool attention_tc_takes(const AttentionParams& p);
Status launch_attention_tc(const AttentionParams& p, cudaStream_t stream);

// The mma.sync kernel (tactic "mma", attention_mma.cu): what "tc" takes, with
// the scores, probabilities and output in registers.
Status launch_attention_mma(const AttentionParams& p, cudaStream_t stream);

// The FlashAttention-2-style kernel (tactic "flash", attention_flash.cu): what
// "mma" takes, with cp.async double-buffered key tiles, ldmatrix fragments,
// float scores (not the oracle's roundings) and a base-2 online softmax; runs
// "mma" where a row is not 16-byte aligned.
Status launch_attention_flash(const AttentionParams& p, cudaStream_t stream);

// LinearAttention's recurrence (the CPU kernel's order of operations, in
// float): a block per (batch, kv head) keeps the (d_k, d_v) state in shared
// memory and walks the tokens. All tensors share `dtype`.
struct LinearAttentionParams {
  DType dtype = DType::kF32;
  const void* q = nullptr;           // (B, L, Hq * d_k)
  const void* k = nullptr;           // (B, L, Hkv * d_k)
  const void* v = nullptr;           // (B, L, Hkv * d_v)
  const void* decay = nullptr;       // (B, L, decay_width) when gated
  const void* beta = nullptr;        // (B, L, beta_width) with the delta rule
  const void* past_state = nullptr;  // (B, Hkv, d_k, d_v) or null: zeros
  void* y = nullptr;                 // (B, L, Hq * d_v)
  void* present_state = nullptr;     // optional
  int64_t batch = 0, len = 0, q_heads = 0, kv_heads = 0, d_k = 0, d_v = 0;
  int64_t decay_width = 0, beta_width = 0;  // Hkv or Hkv * d_k; Hkv or 1
  bool gated = false, delta = false;
  float scale = 1.f;
};
Status launch_linear_attention(const LinearAttentionParams& p, cudaStream_t stream);

struct RotaryParams {
  DType dtype = DType::kF32;  // of X, the caches and Y
  const void* x = nullptr;
  const void* cos = nullptr;  // rows of rot / 2
  const void* sin = nullptr;
  const int64_t* position_ids = nullptr;  // (B, S) on the device, or null: the caches are (B, S, rot / 2)
  int64_t cache_rows = 0;                 // rows of the caches; an id outside them yields NaN (the CPU kernel fails)
  void* y = nullptr;
  int64_t batch = 0, heads = 0, len = 0, head = 0, rot = 0;
  bool packed = false;  // (B, S, H * D) rather than (B, H, S, D)
  bool interleaved = false;
};
Status launch_rotary_embedding(const RotaryParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
