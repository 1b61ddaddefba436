// Attention on tensor cores in the manner of FlashAttention-2 (tactic
// "flash"), for f16/bf16 with D = Dv in {32, 64, 128}: what "mma" takes, laid
// out for speed rather than for the CPU oracle's roundings.
//
// Why a second mma.sync kernel: on the H100, ViT-B/16 at batch 64 (197
// tokens, 12 heads of 64) spends 0.062 ms a layer in cuDNN's fused attention
// and 0.126 ms in "mma", against ~0.026 ms to read Q, K, V and write Y once.
// "mma" stages every key tile synchronously (two barriers with nothing in
// flight), transposes V element by element into shared memory, rounds Q and K
// times sqrt(scale) as the oracle does, and computes whole 64-key tiles where
// 197 keys leave 5 in the last one. Here:
//   - Q, K and V tiles move with 16-byte cp.async, K and V double-buffered,
//     so the next tile loads while this one computes (zeros past the last
//     key: a P of 0 times stale data could be NaN);
//   - K's and V's B fragments come from row-major tiles with ldmatrix (V's
//     with .trans), four 8 x 8 matrices an instruction;
//   - the scores are Q . K^T in float, times scale * log2(e), then exp2
//     (the online softmax of FlashAttention-2 in base 2); the probabilities
//     are rounded to T for the product with V, whose accumulators stay float;
//   - key tiles of 8 (scores) and chunks of 16 (P . V) past the block's last
//     visible key are skipped, so 197 keys cost 200 and 208, not 256;
//   - Y goes through this warp's rows of the Q tile (Q is in registers by
//     then) and out as 16-byte stores of whole rows.
// Masks, causality and windows go through score_bias, as in "mma" (the
// kBias kernel); without them the scores need no per-element test but the
// last key.
//
// The fragment layouts (PTX's m16n8k16): a thread holds rows g and g + 8
// (g = lane / 4) of each 16 x 8 result, columns 2t and 2t + 1 (t = lane % 4).
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/attention_common.cuh"
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/mma_sm80.cuh"

namespace kiln::cuda {
namespace {

using namespace attn;  // NOLINT(google-build-using-namespace): the shared helpers

constexpr int kWarps = 4;
constexpr int kWarpRows = 16;
constexpr int kBlockRows = kWarps * kWarpRows;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

template <int kD>
struct FlashLayout {
  static constexpr int keys = kD <= 64 ? 64 : 32;  // keys a tile (registers: the scores are keys / 2 floats a thread)
  static constexpr int ld = kD + 8;                // row stride of every tile, in elements: ldmatrix conflict-free
  static constexpr int q = kBlockRows * ld;        // elements of the Q tile
  static constexpr int kv = keys * ld;             // of one K or V tile
  static constexpr size_t bytes = size_t(q + 4 * kv) * 2;  // Q, two K tiles, two V tiles
};

// Rows [r0, r0 + rows) of one (batch, head) into `dst` (row stride kLd) with
// 16-byte cp.async; rows at or past `end` are zeros. The block shares the work.
template <typename T, int kD, int kLd>
__device__ __forceinline__ void load_rows_async(T* dst, const T* src, bool packed, int64_t b, int64_t head,
                                                int64_t heads, int64_t len, int64_t stride, int64_t r0, int rows,
                                                int64_t end) {
  constexpr int kChunks = kD / 8;
  for (int idx = threadIdx.x; idx < rows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, d0 = (idx % kChunks) * 8;
    const int64_t s = r0 + r;
    const bool valid = s < end;
    cp_async16(dst + r * kLd + d0, valid ? src + layout_at(packed, b, head, s, d0, heads, len, kD, stride) : src,
               valid);
  }
}

// At least 3 blocks an SM for D <= 64 (46 KB of shared memory each; 4 would
// cap registers at 128, where ptxas spills).
template <typename T, int kD, bool kBias>
__global__ void __launch_bounds__(kThreads, kD <= 64 ? 3 : 2)
    attention_flash_kernel(AttentionParams p, int64_t q_tiles, float scale_log2) {
  using L = FlashLayout<kD>;
  constexpr int kKeys = L::keys, kLd = L::ld;
  constexpr int kKeyTiles = kKeys / 8;    // n-tiles of the scores
  constexpr int kKeyChunks = kKeys / 16;  // k-chunks of P . V
  constexpr int kDTiles = kD / 8;         // n-tiles of the output
  constexpr int kDChunks = kD / 16;       // k-chunks of Q . K^T
  extern __shared__ __align__(16) unsigned char flash_smem[];
  T* qs = reinterpret_cast<T*>(flash_smem);
  T* ks = qs + L::q;       // two K tiles
  T* vs = ks + 2 * L::kv;  // two V tiles

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const auto [b, h, kh, i0] = query_block(p, q_tiles, kBlockRows);
  const int64_t offset = query_offset(p, b), visible = visible_keys(p, b);
  const auto [kv_begin, kv_end] = block_keys(p, i0, kBlockRows, offset, visible);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  const int64_t tiles = kv_end > kv_begin ? (kv_end - kv_begin + kKeys - 1) / kKeys : 0;

  load_rows_async<T, kD, kLd>(qs, static_cast<const T*>(p.q), p.packed, b, h, p.q_heads, p.q_len, p.q_stride(), i0,
                              kBlockRows, p.q_len);
  if (tiles > 0) {
    load_rows_async<T, kD, kLd>(ks, k, p.packed, b, kh, p.kv_heads, p.kv_len, p.k_stride(), kv_begin, kKeys, kv_end);
    load_rows_async<T, kD, kLd>(vs, v, p.packed, b, kh, p.kv_heads, p.kv_len, p.v_stride(), kv_begin, kKeys, kv_end);
  }
  cp_async_commit();

  // This thread's two rows (g and g + 8 of its warp's 16).
  int64_t row[2], pos[2];
  bool valid[2];
  for (int r = 0; r < 2; ++r) {
    row[r] = i0 + warp * kWarpRows + g + 8 * r;
    valid[r] = row[r] < p.q_len;
    pos[r] = row[r] + offset;
  }

  const float neg_inf = -INFINITY;
  uint32_t qf[kDChunks][4];
  float o[kDTiles][4];
#pragma unroll
  for (int n = 0; n < kDTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {neg_inf, neg_inf}, l[2] = {0.f, 0.f};  // running max (base 2) and sum of each row

  for (int64_t it = 0; it < tiles; ++it) {
    const int64_t j0 = kv_begin + it * kKeys;
    const int buf = static_cast<int>(it & 1);
    if (it + 1 < tiles) {  // the next tile into the other buffers (read last in iteration it - 1)
      const int64_t j1 = j0 + kKeys;
      load_rows_async<T, kD, kLd>(ks + (buf ^ 1) * L::kv, k, p.packed, b, kh, p.kv_heads, p.kv_len, p.k_stride(), j1,
                                  kKeys, kv_end);
      load_rows_async<T, kD, kLd>(vs + (buf ^ 1) * L::kv, v, p.packed, b, kh, p.kv_heads, p.kv_len, p.v_stride(), j1,
                                  kKeys, kv_end);
      cp_async_commit();
      cp_async_wait<1>();  // this tile (and Q) landed; the next may still be in flight
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (it == 0) {
      // Q's A fragments by ldmatrix: lane l points at row l % 8 (+ 8 for
      // matrices 1 and 3) and column 8 (l / 16) of chunk c.
      const T* qw = qs + (warp * kWarpRows + lane % 8 + 8 * ((lane / 8) % 2)) * kLd + 8 * (lane / 16);
#pragma unroll
      for (int c = 0; c < kDChunks; ++c) ldmatrix_x4(qf[c], qw + c * 16);
    }
    const T* kt = ks + buf * L::kv;
    const T* vt = vs + buf * L::kv;
    const int live = static_cast<int>(kv_end - j0 < kKeys ? kv_end - j0 : kKeys);  // keys of this tile to compute

    // S = Q . K^T. K's B fragment (k = d, n = key) is K[key][d..d+1]: matrices
    // 0-3 of one ldmatrix are columns [16c, 16c + 8), [16c + 8, 16c + 16) and
    // the same of chunk c + 1, rows n-tile n.
    float s[kKeyTiles][4];
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
      if (n * 8 >= live) continue;
      const T* kr = kt + (n * 8 + lane % 8) * kLd + 8 * (lane / 8);
#pragma unroll
      for (int c = 0; c < kDChunks; c += 2) {
        uint32_t kb[4];
        ldmatrix_x4(kb, kr + c * 16);
        mma_16816<T>(s[n], qf[c], kb[0], kb[1]);
        mma_16816<T>(s[n], qf[c + 1], kb[2], kb[3]);
      }
    }

    // Scores in base 2 (times scale * log2 e), -inf past the last key or
    // where the mask, causality or a window hides them; the online softmax.
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e / 2;
        const int jt = n * 8 + 2 * t + (e % 2);
        float x = neg_inf;
        if (jt < live) {
          if constexpr (kBias) {
            if (valid[r])
              x = s[n][e] * scale_log2 + score_bias<T, float>(p, b, h, row[r], j0 + jt, pos[r], visible) * kLog2e;
          } else {
            x = s[n][e] * scale_log2;
          }
        }
        s[n][e] = x;
      }
    online_softmax_step(s, m, l, o, [](float x) { return exp2f(x); });

    // O += P . V: the probabilities of key tiles 2c and 2c + 1 are P's A
    // fragment for keys [16c, 16c + 16); V's B fragment (k = key, n = d) by
    // ldmatrix.trans from the row-major tile: matrices 0-3 are keys [16c,
    // 16c + 8) and [16c + 8, 16c + 16) of d-tile n, then the same of n + 1.
#pragma unroll
    for (int c = 0; c < kKeyChunks; ++c) {
      if (c * 16 >= live) continue;
      const uint32_t pa[4] = {pack<T>(s[2 * c][0], s[2 * c][1]), pack<T>(s[2 * c][2], s[2 * c][3]),
                              pack<T>(s[2 * c + 1][0], s[2 * c + 1][1]), pack<T>(s[2 * c + 1][2], s[2 * c + 1][3])};
      const T* vr = vt + (c * 16 + lane % 8 + 8 * ((lane / 8) % 2)) * kLd + 8 * (lane / 16);
#pragma unroll
      for (int n = 0; n < kDTiles; n += 2) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, vr + n * 8);
        mma_16816<T>(o[n], pa, vb[0], vb[1]);
        mma_16816<T>(o[n + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with this tile's buffers before they are refilled
  }

  // Nothing may be in flight at the exit (no tile: Q's copies), nor while
  // warps write over the Q tile.
  cp_async_wait<0>();
  __syncthreads();

  // Y = O / l rounded to T, into this warp's 16 rows of the Q tile, then out
  // as 16-byte stores (a row with no visible key is 0).
  T* yw = qs + warp * kWarpRows * kLd;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
#pragma unroll
    for (int n = 0; n < kDTiles; ++n)
      *reinterpret_cast<uint32_t*>(yw + (g + 8 * r) * kLd + n * 8 + 2 * t) =
          pack<T>(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
  }
  __syncwarp();
  constexpr int kChunks = kD / 8;
  T* y = static_cast<T*>(p.y);
  for (int idx = lane; idx < kWarpRows * kChunks; idx += 32) {
    const int r = idx / kChunks, d0 = (idx % kChunks) * 8;
    const int64_t i = i0 + warp * kWarpRows + r;
    if (i < p.q_len)
      *reinterpret_cast<uint4*>(y + layout_at(p.packed, b, h, i, d0, p.q_heads, p.q_len, kD, p.q_heads * kD)) =
          *reinterpret_cast<const uint4*>(yw + r * kLd + d0);
  }
}

template <typename T, int kD>
Status launch_flash(const AttentionParams& p, cudaStream_t stream) {
  // 16-byte copies need 16-byte aligned rows; elsewhere "mma" runs (same takes).
  if (!vector_loads(p) || !aligned16(p.y)) return launch_attention_mma(p, stream);
  KILN_ASSIGN_OR_RETURN(const int64_t blocks, query_blocks(p, kBlockRows, "flash"));
  if (blocks <= 0) return Status::ok();
  const bool bias = p.mask || p.causal || p.left_window >= 0 || p.right_window >= 0;
  auto kernel = bias ? attention_flash_kernel<T, kD, true> : attention_flash_kernel<T, kD, false>;
  constexpr size_t smem = FlashLayout<kD>::bytes;
  if (smem > 48 * 1024)  // per device, so on every launch (a host call, no stream work)
    KILN_CUDA_RETURN_IF_ERROR(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const float scale_log2 = static_cast<float>(p.scale) * kLog2e;
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(p, (p.q_len + kBlockRows - 1) / kBlockRows,
                                                                    scale_log2);
  return last_launch_status("attention_flash_kernel");
}

template <typename T, int kD>
struct FlashLaunch {
  static Status run(const AttentionParams& p, cudaStream_t stream) { return launch_flash<T, kD>(p, stream); }
};

}  // namespace

Status launch_attention_flash(const AttentionParams& p, cudaStream_t stream) {
  return launch_tensor_core<FlashLaunch>(p, "flash", stream);
}

}  // namespace kiln::cuda
