// Device helpers shared by the attention kernels (attention.cu's SIMT flash
// kernel and the tensor-core ones: attention_tc.cu, attention_mma.cu):
// element loads and the CPU oracle's roundings, the
// layouts, which keys a query sees with what bias, and the mma.sync fragments.
#pragma once

#include <type_traits>

#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/mma_sm80.cuh"

namespace kiln::cuda::attn {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T, typename Acc>
__device__ __forceinline__ Acc load(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, double>)
    return p[i];
  else
    return to_float(p[i]);
}

// x rounded to T, where the CPU oracle materializes a tensor of the op's dtype.
template <typename T, typename Acc>
__device__ __forceinline__ Acc round_to(Acc x) {
  if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>)
    return to_float(from_float<T>(x));
  else
    return x;
}

template <typename T, typename Acc>
__device__ __forceinline__ T store(Acc x) {
  if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>)
    return static_cast<T>(x);
  else
    return from_float<T>(x);
}

__device__ __forceinline__ float acc_exp(float x) { return expf(x); }
__device__ __forceinline__ double acc_exp(double x) { return exp(x); }
__device__ __forceinline__ float acc_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double acc_tanh(double x) { return tanh(x); }

// Offset of (b, h, s, d) in a (B, H, S, D) tensor, or packed (B, S, H * D)
// with `row` elements between consecutive tokens (H * D when dense).
__device__ __forceinline__ int64_t layout_at(bool packed, int64_t b, int64_t h, int64_t s, int64_t d, int64_t heads,
                                             int64_t len, int64_t size, int64_t row) {
  return packed ? (b * len + s) * row + h * size + d : ((b * heads + h) * len + s) * size + d;
}

// Whether the tensor-core kernels may stage Q, K and V with 16-byte loads:
// every pointer 16-byte aligned, and in the packed layout every row stride a
// multiple of 16 bytes (the column offsets of K and V in a packed QKV are
// then multiples of D, so of 16 bytes, since D is 32, 64 or 128).
inline bool vector_loads(const AttentionParams& p) {
  const int64_t elem = 2;  // f16, bf16
  const bool rows = !p.packed || ((p.q_stride() * elem) % 16 == 0 && (p.k_stride() * elem) % 16 == 0 &&
                                  (p.v_stride() * elem) % 16 == 0);
  return rows && aligned16(p.q) && aligned16(p.k) && aligned16(p.v);
}

// Key (or value) j of kv head kh: from the past cache, then the new ones.
template <typename T, typename Acc>
__device__ __forceinline__ Acc cached(const AttentionParams& p, const void* past, const void* cur, int64_t size,
                                      int64_t row, int64_t b, int64_t kh, int64_t j, int64_t d) {
  if (j < p.past_len)
    return load<T, Acc>(static_cast<const T*>(past), ((b * p.kv_heads + kh) * p.past_len + j) * size + d);
  return load<T, Acc>(static_cast<const T*>(cur),
                      layout_at(p.packed, b, kh, j - p.past_len, d, p.kv_heads, p.kv_len, size, row));
}

// Keys before the query block: where the causal and window frontiers start.
__device__ __forceinline__ int64_t query_offset(const AttentionParams& p, int64_t b) {
  return p.nonpad ? p.nonpad[b] - p.q_len : p.past_len;
}

// Keys [0, n) may be visible; later ones are padding or past the mask.
__device__ __forceinline__ int64_t visible_keys(const AttentionParams& p, int64_t b) {
  int64_t n = (p.past_len + p.kv_len);
  if (p.nonpad && p.nonpad[b] < n) n = p.nonpad[b];
  if (p.mask && p.mask_len < n) n = p.mask_len;
  return n;
}

// The additive bias of score (b, h, i, j): the mask value, or -inf.
template <typename T, typename Acc>
__device__ Acc score_bias(const AttentionParams& p, int64_t b, int64_t h, int64_t i, int64_t j, int64_t pos,
                          int64_t visible) {
  const Acc neg_inf = -INFINITY;
  if (j >= visible || (p.causal && j > pos) || (p.left_window >= 0 && pos - j > p.left_window) ||
      (p.right_window >= 0 && j - pos > p.right_window))
    return neg_inf;
  if (!p.mask) return Acc(0);
  const int64_t off = b * p.mask_strides[0] + h * p.mask_strides[1] + i * p.mask_strides[2] + j;
  switch (p.mask_type) {
    case DType::kBool: return static_cast<const bool*>(p.mask)[off] ? Acc(0) : neg_inf;
    case DType::kF16: return round_to<T, Acc>(to_float(static_cast<const __half*>(p.mask)[off]));
    case DType::kBF16: return round_to<T, Acc>(to_float(static_cast<const __nv_bfloat16*>(p.mask)[off]));
    case DType::kF64: return round_to<T, Acc>(static_cast<Acc>(static_cast<const double*>(p.mask)[off]));
    default: return round_to<T, Acc>(static_cast<Acc>(static_cast<const float*>(p.mask)[off]));
  }
}

// Rows [r0, r0 + rows) of one (batch, head) of `src` into shared memory
// (row stride ld), times `mul` and rounded to T as the oracle does (`stride`:
// the source's elements between tokens when packed); rows at or past `end`
// are 0; a block of kThreads threads shares the work. With kVec (every input
// and packed row stride 16-byte aligned: vector_loads) a thread moves
// 8 elements with one 16-byte load: a row of either layout is contiguous
// over D, and D is a multiple of 8. The scalar path loads an element at a
// time.
template <typename T, int kD, int kThreads, bool kVec>
__device__ __forceinline__ void stage_rows(T* dst, int ld, const T* src, bool packed, int64_t b, int64_t head,
                                           int64_t heads, int64_t len, int64_t stride, int64_t r0, int rows,
                                           int64_t end, float mul) {
  if constexpr (kVec) {
    constexpr int kChunks = kD / 8;
    for (int idx = threadIdx.x; idx < rows * kChunks; idx += kThreads) {
      const int r = idx / kChunks, d0 = (idx % kChunks) * 8;
      const int64_t s = r0 + r;
      uint4 raw = make_uint4(0, 0, 0, 0);
      if (s < end)
        raw = *reinterpret_cast<const uint4*>(src + layout_at(packed, b, head, s, d0, heads, len, kD, stride));
      const T* in = reinterpret_cast<const T*>(&raw);
      uint4 packed_out;
      T* out = reinterpret_cast<T*>(&packed_out);
#pragma unroll
      for (int e = 0; e < 8; ++e) out[e] = from_float<T>(s < end ? to_float(in[e]) * mul : 0.f);
      *reinterpret_cast<uint4*>(dst + r * ld + d0) = packed_out;
    }
  } else {
    for (int idx = threadIdx.x; idx < rows * kD; idx += kThreads) {
      const int r = idx / kD, d = idx % kD;
      const int64_t s = r0 + r;
      const float x =
          s < end ? load<T, float>(src, layout_at(packed, b, head, s, d, heads, len, kD, stride)) * mul : 0.f;
      dst[r * ld + d] = from_float<T>(x);
    }
  }
}

// The query block a block of the tensor-core kernels owns: `rows` query rows
// from i0 of head h (kv head kh) of batch entry b, blockIdx.x running over
// the q_tiles blocks of each (b, h).
struct QueryBlock {
  int64_t b, h, kh, i0;
};
__device__ __forceinline__ QueryBlock query_block(const AttentionParams& p, int64_t q_tiles, int64_t rows) {
  const int64_t blk = blockIdx.x;
  const int64_t qt = blk % q_tiles, bh = blk / q_tiles, h = bh % p.q_heads;
  return {bh / p.q_heads, h, h / (p.q_heads / p.kv_heads), qt * rows};
}

// The keys [begin, end) that any query of rows [i0, i0 + rows) may see:
// `visible` cut by causality and the windows (the per-score bias does the rest).
struct KeyRange {
  int64_t begin, end;
};
__device__ __forceinline__ KeyRange block_keys(const AttentionParams& p, int64_t i0, int64_t rows, int64_t offset,
                                               int64_t visible) {
  const int64_t last = (i0 + rows < p.q_len ? i0 + rows : p.q_len) - 1 + offset;
  KeyRange k{0, visible};
  if (p.causal && last + 1 < k.end) k.end = last + 1;
  if (p.right_window >= 0 && last + p.right_window + 1 < k.end) k.end = last + p.right_window + 1;
  if (p.left_window >= 0 && i0 + offset - p.left_window > 0) k.begin = i0 + offset - p.left_window;
  return k;
}

// mma.sync helpers of the "mma" and "flash" kernels (m16n8k16 fragments,
// whose element layout PTX documents; mma_16816 itself is in mma_sm80.cuh).

// The max and the sum over the 4 lanes of a quad (lane / 4 equal: the
// threads that hold one row of an m16n8 fragment).
__device__ __forceinline__ float quad_max(float v) {
  float other = __shfl_xor_sync(0xffffffffu, v, 1);
  v = other > v ? other : v;
  other = __shfl_xor_sync(0xffffffffu, v, 2);
  return other > v ? other : v;
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// One key tile's step of FlashAttention's online softmax for a warp's 16
// rows of m16n8 fragments ("mma", "flash"): s holds the tile's scores (-inf
// where hidden; e / 2 is the thread's row, g or g + 8) and becomes the
// probabilities exp(s - m); m and l, each row's running max and sum, and the
// output accumulators o are rescaled to the new max. `exp` is expf for
// natural-log scores, exp2f for base-2 ones. A row with nothing visible so
// far keeps m = -inf and gets probabilities 0.
template <int kKeyTiles, int kDTiles, typename Exp>
__device__ __forceinline__ void online_softmax_step(float (&s)[kKeyTiles][4], float (&m)[2], float (&l)[2],
                                                    float (&o)[kDTiles][4], Exp exp) {
  const float neg_inf = -INFINITY;
  float m_new[2] = {m[0], m[1]}, alpha[2], psum[2] = {0.f, 0.f};
#pragma unroll
  for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) m_new[e / 2] = s[n][e] > m_new[e / 2] ? s[n][e] : m_new[e / 2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    m_new[r] = quad_max(m_new[r]);
    alpha[r] = m_new[r] == neg_inf ? 1.f : exp(m[r] - m_new[r]);
  }
#pragma unroll
  for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e / 2;
      s[n][e] = m_new[r] == neg_inf ? 0.f : exp(s[n][e] - m_new[r]);
      psum[r] += s[n][e];
    }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = l[r] * alpha[r] + quad_sum(psum[r]);
    m[r] = m_new[r];
  }
#pragma unroll
  for (int n = 0; n < kDTiles; ++n) {
    o[n][0] *= alpha[0], o[n][1] *= alpha[0];
    o[n][2] *= alpha[1], o[n][3] *= alpha[1];
  }
}

// Two 16-bit elements at p (an even element offset) as one register; the
// first in the low half, as the fragments want.
template <typename T>
__device__ __forceinline__ uint32_t pair_at(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// The tensor-core kernels' launch ("tc", "mma"): Launch<T, kD>::run for the
// dtype and head size of a layer attention_tc_takes.
template <template <typename, int> class Launch>
Status launch_tensor_core(const AttentionParams& p, const char* tactic, cudaStream_t stream) {
  if (!attention_tc_takes(p))
    return unsupported(
        "Attention ({}): takes f16/bf16, head sizes 32, 64 or 128 (D = Dv), no KV cache, softcap or optional outputs",
        tactic);
  const bool half = p.dtype == DType::kF16;
  switch (p.head) {
    case 32: return half ? Launch<__half, 32>::run(p, stream) : Launch<__nv_bfloat16, 32>::run(p, stream);
    case 64: return half ? Launch<__half, 64>::run(p, stream) : Launch<__nv_bfloat16, 64>::run(p, stream);
    default: return half ? Launch<__half, 128>::run(p, stream) : Launch<__nv_bfloat16, 128>::run(p, stream);
  }
}

// Blocks of `rows` query rows for every (batch, head): the grid, or an error
// past one grid's 2^31 - 1 blocks.
inline Expected<int64_t> query_blocks(const AttentionParams& p, int64_t rows, const char* tactic) {
  const int64_t blocks = p.batch * p.q_heads * ((p.q_len + rows - 1) / rows);
  if (blocks > int64_t(0x7fffffff))
    return unsupported("Attention ({}): {} blocks is more than one grid", tactic, blocks);
  return blocks;
}

}  // namespace kiln::cuda::attn
