// Attention on tensor cores with mma.sync, second kernel (tactic "mma2"), for
// f16/bf16. The same fragments and numerics as "mma" (attention_mma.cu: the
// CPU oracle's roundings: Q and K times sqrt(scale) rounded to T, the dot
// product rounded, then the bias; probabilities rounded to T for P . V), so
// the same tolerances hold. What it changes, for short sequences such as
// ViT's 197 tokens (where "mma" computes 256 x 256 scores for 197 x 197):
//   - query blocks sized to the sequence: a block has up to 8 warps of 16
//     query rows, as many as split the (batch, head)'s rows evenly (197: 2
//     blocks of 7 warps, not 4 blocks of 4 whose last has 5 rows), so K and V
//     are read from L2 by 2 blocks per (batch, head) rather than 4, and a warp
//     whose rows are all past the sequence does no arithmetic;
//   - K and V tiles move with 16-byte cp.async, double-buffered: tile j + 1
//     loads while tile j is computed. K is then scaled in place in shared
//     memory by the thread that copied it (the oracle's rounding);
//   - V stays row-major in shared memory; ldmatrix.trans gives its B
//     fragments, ldmatrix those of Q and K (4 8 x 8 matrices an instruction
//     rather than 2 32-bit loads per fragment); rows are kD + 8 elements apart,
//     so the 8 rows of a matrix fall in distinct banks;
//   - the last key tile computes (scores, softmax, P . V) only the 16-key
//     chunks that hold keys (197 = 3 x 64 + 5: 16 keys rather than 64);
//   - exp(x - m) as exp2(x log2(e) - m log2(e)): one FMA and one ex2;
//   - without a mask, causality, windows or padding ("plain"), no per-score
//     bias: only the last key tile masks the keys past the end.
// Takes what "mma" takes (attention_tc_takes); cp.async needs sm_80, as the
// m16n8k16 mma does.
#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/attention_common.cuh"
#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {
namespace {

using namespace attn;  // NOLINT(google-build-using-namespace): the shared helpers

constexpr int kMaxWarps = 8;
constexpr int kMaxThreads = kMaxWarps * 32;
constexpr int kWarpRows = 16;

template <int kD>
struct Mma2Layout {
  static constexpr int keys = kD <= 64 ? 64 : 32;  // keys per tile (registers: S is keys / 2 floats a thread)
  static constexpr int ld = kD + 8;                // elements between rows of Q, K and V
  static constexpr int tile = keys * ld;           // one K or V tile
  // Q's rows, then two buffers of (K tile, V tile).
  static constexpr size_t bytes(int rows) { return size_t(rows * ld + 4 * tile) * 2; }
};

// 16 bytes from global to shared memory; zeros where !in (src then unread).
template <bool kVec, typename T>
__device__ __forceinline__ void copy16(T* dst, const T* src, bool in) {
  if constexpr (kVec) {
    cp_async16(dst, src, in);
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) dst[e] = in ? src[e] : from_float<T>(0.f);
  }
}

// 2^x (ex2.approx: relative error about 2^-22; 2^-inf = 0).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Rows [r0, r0 + n) of one (batch, head) of src into dst (rows kLd apart),
// 16 bytes a copy, a block's threads sharing them; rows at or past `end` are
// zeros. Asynchronous with kVec: wait for the group before reading.
template <typename T, int kD, int kLd, bool kVec>
__device__ __forceinline__ void load_rows(T* dst, const T* src, bool packed, int64_t b, int64_t head, int64_t heads,
                                          int64_t len, int64_t stride, int64_t r0, int n, int64_t end) {
  constexpr int kChunks = kD / 8;
  for (int idx = threadIdx.x; idx < n * kChunks; idx += blockDim.x) {
    const int r = idx / kChunks, d0 = (idx % kChunks) * 8;
    const bool in = r0 + r < end;
    copy16<kVec>(dst + r * kLd + d0, src + layout_at(packed, b, head, in ? r0 + r : 0, d0, heads, len, kD, stride), in);
  }
}

// The chunks of rows [0, n) that this thread loaded with load_rows, times
// `mul` and rounded to T (the oracle's sqrt(scale) on Q and K). Its own
// copies only, so a cp.async.wait_group is all it waits for.
template <typename T, int kD, int kLd>
__device__ __forceinline__ void scale_rows(T* rows, int n, float mul) {
  constexpr int kChunks = kD / 8;
  for (int idx = threadIdx.x; idx < n * kChunks; idx += blockDim.x) {
    uint4* at = reinterpret_cast<uint4*>(rows + (idx / kChunks) * kLd + (idx % kChunks) * 8);
    uint4 raw = *at;
    T* x = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int e = 0; e < 8; ++e) x[e] = from_float<T>(to_float(x[e]) * mul);
    *at = raw;
  }
}

template <typename T, int kD, bool kVec, bool kPlain>
__global__ void __launch_bounds__(kMaxThreads, kD <= 64 ? 2 : 1)
    attention_mma2_kernel(AttentionParams p, int64_t q_tiles) {
  using L = Mma2Layout<kD>;
  constexpr int kKeys = L::keys, kLd = L::ld;
  constexpr int kKeyTiles = kKeys / 8;    // n-tiles of the scores
  constexpr int kKeyChunks = kKeys / 16;  // k-chunks of P . V
  constexpr int kDTiles = kD / 8;         // n-tiles of the output
  constexpr int kDChunks = kD / 16;       // k-chunks of Q . K^T
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(16) unsigned char mma2_smem[];
  const int rows = static_cast<int>(blockDim.x / 32) * kWarpRows;
  T* qs = reinterpret_cast<T*>(mma2_smem);
  T* kv = qs + rows * kLd;  // tile buffer u: K at kv + 2u tiles, V after it

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  // Plain variables, not structured bindings: the lambda below captures them (C++17).
  const QueryBlock qb = query_block(p, q_tiles, rows);
  const int64_t b = qb.b, h = qb.h, kh = qb.kh, i0 = qb.i0;
  const float root = round_to<T, float>(static_cast<float>(sqrt(p.scale)));
  const float neg_inf = -INFINITY;
  const int64_t offset = query_offset(p, b), visible = visible_keys(p, b);
  const KeyRange range = block_keys(p, i0, rows, offset, visible);
  const int64_t kv_begin = range.begin, kv_end = range.end;
  const int64_t key_tiles = kv_end > kv_begin ? (kv_end - kv_begin + kKeys - 1) / kKeys : 0;
  const T* kg = static_cast<const T*>(p.k);
  const T* vg = static_cast<const T*>(p.v);
  auto load_tile = [&](int64_t tile) {
    T* ks = kv + 2 * (tile & 1) * L::tile;
    const int64_t j0 = kv_begin + tile * kKeys;
    load_rows<T, kD, kLd, kVec>(ks, kg, p.packed, b, kh, p.kv_heads, p.kv_len, p.k_stride(), j0, kKeys, kv_end);
    load_rows<T, kD, kLd, kVec>(ks + L::tile, vg, p.packed, b, kh, p.kv_heads, p.kv_len, p.v_stride(), j0, kKeys,
                                kv_end);
    cp_async_commit();
  };

  load_rows<T, kD, kLd, kVec>(qs, static_cast<const T*>(p.q), p.packed, b, h, p.q_heads, p.q_len, p.q_stride(), i0,
                              rows, p.q_len);
  cp_async_commit();
  if (key_tiles > 0) load_tile(0);

  // This thread's two rows (g and g + 8 of its warp's 16); a warp past the
  // sequence only helps to load.
  int64_t row[2], pos[2];
  bool valid[2];
  for (int r = 0; r < 2; ++r) {
    row[r] = i0 + warp * kWarpRows + g + 8 * r;
    valid[r] = row[r] < p.q_len;
    pos[r] = row[r] + offset;
  }
  const bool active = i0 + warp * kWarpRows < p.q_len;

  if (key_tiles > 0) {
    cp_async_wait<1>();  // Q's group
  } else {
    cp_async_wait<0>();
  }
  scale_rows<T, kD, kLd>(qs, rows, root);
  __syncthreads();
  // Q's A fragments: matrices (rows 0-7, 8-15) x (columns 0-7, 8-15) of each 16-column chunk.
  uint32_t qf[kDChunks][4];
  if (active) {
#pragma unroll
    for (int c = 0; c < kDChunks; ++c)
      ldmatrix_x4(qf[c], qs + (warp * kWarpRows + lane % 16) * kLd + c * 16 + (lane / 16) * 8);
  }

  float o[kDTiles][4];
#pragma unroll
  for (int n = 0; n < kDTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {neg_inf, neg_inf}, l[2] = {0.f, 0.f};

  for (int64_t tile = 0; tile < key_tiles; ++tile) {
    if (tile + 1 < key_tiles) {
      load_tile(tile + 1);  // into the buffer the previous iteration's last barrier freed
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    const T* ks = kv + 2 * (tile & 1) * L::tile;
    const T* vs = ks + L::tile;
    scale_rows<T, kD, kLd>(kv + 2 * (tile & 1) * L::tile, kKeys, root);
    __syncthreads();  // the tile is in shared memory, K scaled

    const int64_t j0 = kv_begin + tile * kKeys;
    const int keys = kv_end - j0 < kKeys ? static_cast<int>(kv_end - j0) : kKeys;
    const int chunks = (keys + 15) / 16;  // 16-key chunks holding keys
    if (active) {
      // S = Q . K^T: one ldmatrix gives the B fragments of an 8-key n-tile
      // for two 16-column chunks (matrices: K rows, columns d0 + 8 i).
      float s[kKeyTiles][4];
#pragma unroll
      for (int n = 0; n < kKeyTiles; ++n) {
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
        if (n / 2 < chunks) {
#pragma unroll
          for (int c = 0; c < kDChunks; c += 2) {
            uint32_t kb[4];
            ldmatrix_x4(kb, ks + (n * 8 + lane % 8) * kLd + c * 16 + (lane / 8) * 8);
            mma_16816<T>(s[n], qf[c], kb[0], kb[1]);
            mma_16816<T>(s[n], qf[c + 1], kb[2], kb[3]);
          }
        }
      }

      // Roundings and bias, then the online softmax per row (e / 2 is the
      // row). The n-tiles of chunks past the keys are left out here and below
      // (P . V skips them too).
      float tile_max[2] = {neg_inf, neg_inf};
#pragma unroll
      for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (n / 2 >= chunks) continue;
          const int r = e / 2, key = n * 8 + 2 * t + (e % 2);
          float v = neg_inf;
          if constexpr (kPlain) {
            if (keys == kKeys || key < keys) v = round_to<T, float>(s[n][e]);
          } else {
            const int64_t j = j0 + key;
            if (valid[r] && j < kv_end) {
              const float bias = score_bias<T, float>(p, b, h, row[r], j, pos[r], visible);
              v = round_to<T, float>(round_to<T, float>(s[n][e]) + bias);
            }
          }
          s[n][e] = v;
          tile_max[r] = v > tile_max[r] ? v : tile_max[r];
        }
      float m_log2[2], alpha[2], psum[2] = {0.f, 0.f};
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        tile_max[r] = quad_max(tile_max[r]);
        const float m_new = tile_max[r] > m[r] ? tile_max[r] : m[r];
        // m_new = -inf: every score so far is -inf; p = 0 and nothing rescales.
        m_log2[r] = m_new == neg_inf ? 0.f : m_new * kLog2e;
        alpha[r] = m_new == neg_inf ? 1.f : exp2_approx(m[r] * kLog2e - m_log2[r]);
        m[r] = m_new;
      }
#pragma unroll
      for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (n / 2 >= chunks) continue;
          const int r = e / 2;
          s[n][e] = exp2_approx(fmaf(s[n][e], kLog2e, -m_log2[r]));
          psum[r] += s[n][e];
        }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        psum[r] = quad_sum(psum[r]);
        l[r] = l[r] * alpha[r] + psum[r];
      }
#pragma unroll
      for (int n = 0; n < kDTiles; ++n) {
        o[n][0] *= alpha[0], o[n][1] *= alpha[0];
        o[n][2] *= alpha[1], o[n][3] *= alpha[1];
      }

      // O += P . V: the scores of n-tiles 2c and 2c + 1 are P's A fragment
      // for keys [16c, 16c + 16); one ldmatrix.trans gives V's B fragments for
      // two 8-column n-tiles (matrices: V rows 16c + 8 i, columns 8 (n + k)).
#pragma unroll
      for (int c = 0; c < kKeyChunks; ++c) {
        if (c < chunks) {
          const uint32_t pa[4] = {pack<T>(s[2 * c][0], s[2 * c][1]), pack<T>(s[2 * c][2], s[2 * c][3]),
                                  pack<T>(s[2 * c + 1][0], s[2 * c + 1][1]), pack<T>(s[2 * c + 1][2], s[2 * c + 1][3])};
#pragma unroll
          for (int n = 0; n < kDTiles; n += 2) {
            uint32_t vb[4];
            ldmatrix_x4_trans(vb, vs + (c * 16 + lane % 8 + ((lane / 8) % 2) * 8) * kLd + (n + lane / 16) * 8);
            mma_16816<T>(o[n], pa, vb[0], vb[1]);
            mma_16816<T>(o[n + 1], pa, vb[2], vb[3]);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is loaded again
  }

  // Y: two neighbouring columns a 32-bit store (Y is dense, D even, and 16-byte
  // aligned where kVec).
  T* y = static_cast<T*>(p.y);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (!valid[r]) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
#pragma unroll
    for (int n = 0; n < kDTiles; ++n) {
      T* at = y + layout_at(p.packed, b, h, row[r], n * 8 + 2 * t, p.q_heads, p.q_len, kD, p.q_heads * kD);
      if constexpr (kVec) {
        *reinterpret_cast<uint32_t*>(at) = pack<T>(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
      } else {
        at[0] = from_float<T>(o[n][2 * r] * inv);
        at[1] = from_float<T>(o[n][2 * r + 1] * inv);
      }
    }
  }
}

// Kernels of one dtype and head size: [kVec][kPlain].
template <typename T, int kD>
struct Mma2Kernels {
  using Fn = void (*)(AttentionParams, int64_t);
  static constexpr Fn fn[2][2] = {
      {attention_mma2_kernel<T, kD, false, false>, attention_mma2_kernel<T, kD, false, true>},
      {attention_mma2_kernel<T, kD, true, false>, attention_mma2_kernel<T, kD, true, true>}};
};

template <typename T, int kD>
Status launch_mma2(const AttentionParams& p, cudaStream_t stream) {
  using L = Mma2Layout<kD>;
  if (p.batch <= 0 || p.q_heads <= 0 || p.q_len <= 0) return Status::ok();
  // Up to 8 warps of 16 rows a block, as many blocks per (batch, head) as
  // that needs, the warps spread evenly over them.
  const int64_t warp_tiles = (p.q_len + kWarpRows - 1) / kWarpRows;
  const int64_t per_head = (warp_tiles + kMaxWarps - 1) / kMaxWarps;
  const int warps = static_cast<int>((warp_tiles + per_head - 1) / per_head);
  const int rows = warps * kWarpRows;
  // Over 48 KiB of shared memory needs the opt-in (once per instantiation).
  static const cudaError_t opt_in = [] {
    for (const auto& by_vec : Mma2Kernels<T, kD>::fn)
      for (const auto fn : by_vec) {
        const cudaError_t e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   static_cast<int>(L::bytes(kMaxWarps * kWarpRows)));
        if (e != cudaSuccess) return e;
      }
    return cudaSuccess;
  }();
  const size_t smem = L::bytes(rows);
  if (opt_in != cudaSuccess)
    return internal_error("Attention (mma2): shared memory of {} bytes refused: {}", smem, cudaGetErrorString(opt_in));
  KILN_ASSIGN_OR_RETURN(const int64_t blocks, query_blocks(p, rows, "mma2"));
  if (blocks <= 0) return Status::ok();
  const bool vec = vector_loads(p) && aligned16(p.y);
  const bool plain = !p.mask && !p.nonpad && !p.causal && p.left_window < 0 && p.right_window < 0;
  Mma2Kernels<T, kD>::fn[vec][plain]<<<static_cast<unsigned>(blocks), warps * 32, smem, stream>>>(
      p, (p.q_len + rows - 1) / rows);
  return last_launch_status("attention_mma2_kernel");
}

template <typename T, int kD>
struct Mma2Launch {
  static Status run(const AttentionParams& p, cudaStream_t stream) { return launch_mma2<T, kD>(p, stream); }
};

}  // namespace

Status launch_attention_mma2(const AttentionParams& p, cudaStream_t stream) {
  return launch_tensor_core<Mma2Launch>(p, "mma2", stream);
}

}  // namespace kiln::cuda
