// Attention on tensor cores with mma.sync (tactic "mma"), for f16/bf16 in the
// manner of FlashAttention-2. A block of 4 warps owns 64 query rows of one
// (batch, head), a warp 16 of them. Unlike the WMMA kernel ("tc"), whose
// fragments are opaque, this one uses m16n8k16 fragments whose element
// layout PTX documents, so the scores, the probabilities and the output stay
// in registers:
//   - a thread holds, of each 16 x 8 result tile, rows g and g + 8 (g = lane / 4)
//     and columns 2t, 2t + 1 (t = lane % 4): the 4 threads of a group share a
//     row, so a row's max and sum take two shuffles;
//   - the probabilities of two neighbouring key tiles are, element for element,
//     the A fragment of P . V, so P never goes through shared memory;
//   - O (16 x D per warp) is rescaled in registers.
// Per tile of keys (64, or 32 for D = 128), K goes to shared memory row-major
// (its rows are the columns of K^T, contiguous pairs for the B fragment) and
// V transposed (so V's B fragment is a contiguous pair too). Scores follow
// the CPU oracle as the other kernels do (Q and K times sqrt(scale) rounded to
// T, the dot product rounded, then the bias); the probabilities are rounded
// to T for the product with V.
//
// Takes what "tc" takes (attention_tc_takes): f16/bf16, D = Dv in {32, 64,
// 128}, no KV cache, softcap or optional outputs.
#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/attention_common.cuh"
#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {
namespace {

using namespace attn;  // NOLINT(google-build-using-namespace): the shared helpers

constexpr int kWarps = 4;
constexpr int kWarpRows = 16;
constexpr int kBlockRows = kWarps * kWarpRows;
constexpr int kThreads = kWarps * 32;

template <int kD>
struct MmaLayout {
  static constexpr int keys = kD <= 64 ? 64 : 32;  // keys per tile (registers: S is keys / 2 floats a thread)
  static constexpr int ldq = kD + 8;               // Q and K rows, 16-bit: conflict-free fragment loads
  static constexpr int ldv = keys + 8;             // rows of V^T
  static constexpr int q = kBlockRows * ldq;       // elements
  static constexpr int k = keys * ldq;
  static constexpr int v = kD * ldv;
};
static_assert(size_t(MmaLayout<128>::q + MmaLayout<128>::k + MmaLayout<128>::v) * 2 <= 48 * 1024,
              "static shared memory is at most 48 KiB");

// V rows [j0, j0 + keys) of one (batch, kv head) into vt as V^T: vt[d * ldv + c]
// = V[j0 + c][d]; keys at or past `end` are 0. Neighbouring threads take
// neighbouring keys, so their 16-bit stores into a row of V^T share banks two
// by two instead of colliding.
template <typename T, int kD, int kKeys, int kLd, bool kVec>
__device__ __forceinline__ void stage_v_transposed(T* vt, const AttentionParams& p, int64_t b, int64_t kh, int64_t j0,
                                                   int64_t end) {
  const T* v = static_cast<const T*>(p.v);
  constexpr int kChunks = kD / 8;
  for (int idx = threadIdx.x; idx < kKeys * kChunks; idx += kThreads) {
    const int c = idx % kKeys, d0 = (idx / kKeys) * 8;
    const int64_t j = j0 + c;
    T x[8];
    if constexpr (kVec) {
      uint4 raw = make_uint4(0, 0, 0, 0);
      if (j < end)
        raw = *reinterpret_cast<const uint4*>(
            v + layout_at(p.packed, b, kh, j, d0, p.kv_heads, p.kv_len, kD, p.v_stride()));
      memcpy(x, &raw, sizeof(raw));
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e)
        x[e] = j < end ? v[layout_at(p.packed, b, kh, j, d0 + e, p.kv_heads, p.kv_len, kD, p.v_stride())]
                       : from_float<T>(0.f);
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) vt[(d0 + e) * kLd + c] = x[e];
  }
}

template <typename T, int kD, bool kVec>
__global__ void __launch_bounds__(kThreads) attention_mma_kernel(AttentionParams p, int64_t q_tiles) {
  using L = MmaLayout<kD>;
  constexpr int kKeys = L::keys;
  constexpr int kKeyTiles = kKeys / 8;  // n-tiles of the scores
  constexpr int kDTiles = kD / 8;       // n-tiles of the output
  constexpr int kDChunks = kD / 16;     // k-chunks of Q . K^T
  __shared__ __align__(16) T smem[L::q + L::k + L::v];
  T* qs = smem;
  T* ks = smem + L::q;
  T* vt = smem + L::q + L::k;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const auto [b, h, kh, i0] = query_block(p, q_tiles, kBlockRows);
  const float root = round_to<T, float>(static_cast<float>(sqrt(p.scale)));
  const float neg_inf = -INFINITY;

  stage_rows<T, kD, kThreads, kVec>(qs, L::ldq, static_cast<const T*>(p.q), p.packed, b, h, p.q_heads, p.q_len,
                                    p.q_stride(), i0, kBlockRows, p.q_len, root);

  // This thread's two rows (g and g + 8 of its warp's 16).
  int64_t row[2], pos[2];
  bool valid[2];
  const int64_t offset = query_offset(p, b), visible = visible_keys(p, b);
  for (int r = 0; r < 2; ++r) {
    row[r] = i0 + warp * kWarpRows + g + 8 * r;
    valid[r] = row[r] < p.q_len;
    pos[r] = row[r] + offset;
  }
  const auto [kv_begin, kv_end] = block_keys(p, i0, kBlockRows, offset, visible);

  __syncthreads();  // Q is staged
  // Q's A fragments: rows g, g + 8; columns 2t, 2t + 1 and those plus 8.
  uint32_t qf[kDChunks][4];
  const T* qw = qs + warp * kWarpRows * L::ldq;
#pragma unroll
  for (int c = 0; c < kDChunks; ++c) {
    qf[c][0] = pair_at(qw + g * L::ldq + c * 16 + 2 * t);
    qf[c][1] = pair_at(qw + (g + 8) * L::ldq + c * 16 + 2 * t);
    qf[c][2] = pair_at(qw + g * L::ldq + c * 16 + 8 + 2 * t);
    qf[c][3] = pair_at(qw + (g + 8) * L::ldq + c * 16 + 8 + 2 * t);
  }

  float o[kDTiles][4];
#pragma unroll
  for (int n = 0; n < kDTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {neg_inf, neg_inf}, l[2] = {0.f, 0.f};

  for (int64_t j0 = kv_begin; j0 < kv_end; j0 += kKeys) {
    __syncthreads();  // every warp is done with the previous tile
    stage_rows<T, kD, kThreads, kVec>(ks, L::ldq, static_cast<const T*>(p.k), p.packed, b, kh, p.kv_heads, p.kv_len,
                                      p.k_stride(), j0, kKeys, kv_end, root);
    stage_v_transposed<T, kD, kKeys, L::ldv, kVec>(vt, p, b, kh, j0, kv_end);
    __syncthreads();

    // S = Q . K^T: B fragment (k = d, n = key) is K[key][d], a contiguous pair.
    float s[kKeyTiles][4];
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
      const T* kr = ks + (n * 8 + g) * L::ldq;
#pragma unroll
      for (int c = 0; c < kDChunks; ++c)
        mma_16816<T>(s[n], qf[c], pair_at(kr + c * 16 + 2 * t), pair_at(kr + c * 16 + 8 + 2 * t));
    }

    // Roundings and bias, then the online softmax per row (e / 2 is the row).
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e / 2;
        const int64_t j = j0 + n * 8 + 2 * t + (e % 2);
        float v = neg_inf;
        if (valid[r] && j < kv_end) {
          const float bias = score_bias<T, float>(p, b, h, row[r], j, pos[r], visible);
          v = round_to<T, float>(round_to<T, float>(s[n][e]) + bias);
        }
        s[n][e] = v;
      }
    online_softmax_step(s, m, l, o, [](float x) { return expf(x); });

    // O += P . V: the scores of key tiles 2c and 2c + 1 are P's A fragment
    // for keys [16c, 16c + 16); V's B fragment (k = key, n = d) is V^T[d][key].
#pragma unroll
    for (int c = 0; c < kKeys / 16; ++c) {
      const uint32_t pa[4] = {pack<T>(s[2 * c][0], s[2 * c][1]), pack<T>(s[2 * c][2], s[2 * c][3]),
                              pack<T>(s[2 * c + 1][0], s[2 * c + 1][1]), pack<T>(s[2 * c + 1][2], s[2 * c + 1][3])};
#pragma unroll
      for (int n = 0; n < kDTiles; ++n) {
        const T* vr = vt + (n * 8 + g) * L::ldv + c * 16;
        mma_16816<T>(o[n], pa, pair_at(vr + 2 * t), pair_at(vr + 8 + 2 * t));
      }
    }
  }

  T* y = static_cast<T*>(p.y);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (!valid[r]) continue;
#pragma unroll
    for (int n = 0; n < kDTiles; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t d = n * 8 + 2 * t + e;
        y[layout_at(p.packed, b, h, row[r], d, p.q_heads, p.q_len, kD, p.q_heads * kD)] =
            from_float<T>(l[r] > 0.f ? o[n][2 * r + e] / l[r] : 0.f);
      }
  }
}

template <typename T, int kD>
Status launch_mma(const AttentionParams& p, cudaStream_t stream) {
  const bool vec = vector_loads(p);
  auto kernel = vec ? attention_mma_kernel<T, kD, true> : attention_mma_kernel<T, kD, false>;
  KILN_ASSIGN_OR_RETURN(const int64_t blocks, query_blocks(p, kBlockRows, "mma"));
  if (blocks <= 0) return Status::ok();
  kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, (p.q_len + kBlockRows - 1) / kBlockRows);
  return last_launch_status("attention_mma_kernel");
}

template <typename T, int kD>
struct MmaLaunch {
  static Status run(const AttentionParams& p, cudaStream_t stream) { return launch_mma<T, kD>(p, stream); }
};

}  // namespace

Status launch_attention_mma(const AttentionParams& p, cudaStream_t stream) {
  return launch_tensor_core<MmaLaunch>(p, "mma", stream);
}

}  // namespace kiln::cuda
