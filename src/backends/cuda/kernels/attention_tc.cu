// Attention on tensor cores for f16/bf16 (tactic "tc"), flash-style: a block
// of 4 warps owns 64 query rows of one (batch, head), a warp 16 of them. Per
// 32-key tile, K and V are staged in shared memory; each warp computes its
// 16 x 32 scores with WMMA (16x16x16, f32 accumulation), then two lanes per
// row apply the CPU oracle's roundings and bias and the online softmax, write
// the probabilities in the input dtype, and rescale the row's output; the
// warp then adds P . V into its output rows with WMMA. The output rows live
// in shared memory in f32 (a WMMA fragment's element-to-row mapping is
// opaque, so rescaling by row needs them addressable).
//
// Q, K and V go to shared memory 16 bytes per load where they are aligned
// (a scalar path otherwise).
//
// Takes what most models run: no KV cache, no softcap, D = Dv in {32, 64,
// 128}; masks, causal and windows as the SIMT kernel. attention_tc_takes says
// whether a layer qualifies; the builder offers "tc" only then and keeps it
// only when it matches the CPU reference and is faster.
#include <mma.h>

#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/attention_common.cuh"
#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {
namespace {

using namespace attn;  // NOLINT(google-build-using-namespace): the shared helpers
namespace wmma = nvcuda::wmma;

constexpr int kWarps = 4;
constexpr int kWarpRows = 16;                   // query rows per warp (one WMMA M)
constexpr int kBlockRows = kWarps * kWarpRows;  // query rows per block
constexpr int kKeys = 32;                       // keys per tile
constexpr int kThreads = kWarps * 32;
constexpr int kPad16 = 8;  // elements of padding per 16-bit row (ldm stays a multiple of 8)
constexpr int kPad32 = 4;  // per f32 row (ldm a multiple of 4)

// Shared memory, every section a multiple of 32 bytes (WMMA's alignment).
template <int kD>
struct TcLayout {
  static constexpr int ldq = kD + kPad16;     // Q, K, V rows (16-bit)
  static constexpr int lds = kKeys + kPad32;  // scores (f32)
  static constexpr int ldp = kKeys + kPad16;  // probabilities (16-bit)
  static constexpr int ldo = kD + kPad32;     // output rows (f32)
  static constexpr size_t q = size_t(kBlockRows) * ldq * 2;
  static constexpr size_t k = size_t(kKeys) * ldq * 2;
  static constexpr size_t s = size_t(kWarps) * kWarpRows * lds * 4;
  static constexpr size_t p = size_t(kWarps) * kWarpRows * ldp * 2;
  static constexpr size_t o = size_t(kWarps) * kWarpRows * ldo * 4;
  static constexpr size_t bytes = q + 2 * k + s + p + o;
};

template <typename T, int kD, bool kVec>
__global__ void __launch_bounds__(kThreads) attention_tc_kernel(AttentionParams p, int64_t q_tiles) {
  using L = TcLayout<kD>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem);
  T* ks = reinterpret_cast<T*>(smem + L::q);
  T* vs = reinterpret_cast<T*>(smem + L::q + L::k);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* ss = reinterpret_cast<float*>(smem + L::q + 2 * L::k) + warp * kWarpRows * L::lds;
  T* ps = reinterpret_cast<T*>(smem + L::q + 2 * L::k + L::s) + warp * kWarpRows * L::ldp;
  float* os = reinterpret_cast<float*>(smem + L::q + 2 * L::k + L::s + L::p) + warp * kWarpRows * L::ldo;

  const auto [b, h, kh, i0] = query_block(p, q_tiles, kBlockRows);
  const float root = round_to<T, float>(static_cast<float>(sqrt(p.scale)));
  const float neg_inf = -INFINITY;

  // Q (times sqrt(scale), rounded as the oracle does); rows past q_len are 0.
  stage_rows<T, kD, kThreads, kVec>(qs, L::ldq, static_cast<const T*>(p.q), p.packed, b, h, p.q_heads, p.q_len,
                                    p.q_stride(), i0, kBlockRows, p.q_len, root);
  // This lane's row of the warp and its half of the keys / output columns.
  const int row = lane / 2, half = lane % 2;
  for (int d = half * (kD / 2); d < (half + 1) * (kD / 2); ++d) os[row * L::ldo + d] = 0.f;
  const int64_t i = i0 + warp * kWarpRows + row;
  const bool row_valid = i < p.q_len;
  const int64_t offset = query_offset(p, b), visible = visible_keys(p, b), pos = i + offset;
  const auto [kv_begin, kv_end] = block_keys(p, i0, kBlockRows, offset, visible);
  float m = neg_inf, l = 0.f;

  for (int64_t j0 = kv_begin; j0 < kv_end; j0 += kKeys) {
    __syncthreads();  // Q is written; the previous tile's K and V are read
    // K (times sqrt(scale)) and V; keys past kv_end are 0.
    stage_rows<T, kD, kThreads, kVec>(ks, L::ldq, static_cast<const T*>(p.k), p.packed, b, kh, p.kv_heads, p.kv_len,
                                      p.k_stride(), j0, kKeys, kv_end, root);
    stage_rows<T, kD, kThreads, kVec>(vs, L::ldq, static_cast<const T*>(p.v), p.packed, b, kh, p.kv_heads, p.kv_len,
                                      p.v_stride(), j0, kKeys, kv_end, 1.f);
    __syncthreads();

    // Scores: this warp's 16 rows against the tile's 32 keys.
    for (int nb = 0; nb < kKeys / 16; ++nb) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
      for (int kk = 0; kk < kD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kb;  // K^T: K's rows as columns
        wmma::load_matrix_sync(qa, qs + warp * kWarpRows * L::ldq + kk * 16, L::ldq);
        wmma::load_matrix_sync(kb, ks + nb * 16 * L::ldq + kk * 16, L::ldq);
        wmma::mma_sync(acc, qa, kb, acc);
      }
      wmma::store_matrix_sync(ss + nb * 16, acc, L::lds, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax: this lane's 16 keys of its row, merged with its partner lane.
    float sc[kKeys / 2];
    float tile_max = neg_inf;
#pragma unroll
    for (int c = 0; c < kKeys / 2; ++c) {
      const int col = half * (kKeys / 2) + c;
      const int64_t j = j0 + col;
      float v = neg_inf;
      if (row_valid && j < kv_end) {
        const float bias = score_bias<T, float>(p, b, h, i, j, pos, visible);
        v = round_to<T, float>(round_to<T, float>(ss[row * L::lds + col]) + bias);
      }
      sc[c] = v;
      tile_max = v > tile_max ? v : tile_max;
    }
    const float other_max = __shfl_xor_sync(0xffffffffu, tile_max, 1);
    const float row_max = other_max > tile_max ? other_max : tile_max;
    const float m_new = row_max > m ? row_max : m;
    float alpha = 1.f, psum = 0.f;
    if (m_new != neg_inf) {
      alpha = expf(m - m_new);
#pragma unroll
      for (int c = 0; c < kKeys / 2; ++c) {
        sc[c] = expf(sc[c] - m_new);
        psum += sc[c];
      }
    } else {
#pragma unroll
      for (int c = 0; c < kKeys / 2; ++c) sc[c] = 0.f;
    }
    psum += __shfl_xor_sync(0xffffffffu, psum, 1);
    l = l * alpha + psum;
    m = m_new;
#pragma unroll
    for (int c = 0; c < kKeys / 2; ++c) ps[row * L::ldp + half * (kKeys / 2) + c] = from_float<T>(sc[c]);
    for (int d = half * (kD / 2); d < (half + 1) * (kD / 2); ++d) os[row * L::ldo + d] *= alpha;
    __syncwarp();

    // Output rows += P . V.
    for (int nd = 0; nd < kD / 16; ++nd) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, os + nd * 16, L::ldo, wmma::mem_row_major);
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vb;
        wmma::load_matrix_sync(pa, ps + kk * 16, L::ldp);
        wmma::load_matrix_sync(vb, vs + kk * 16 * L::ldq + nd * 16, L::ldq);
        wmma::mma_sync(acc, pa, vb, acc);
      }
      wmma::store_matrix_sync(os + nd * 16, acc, L::ldo, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (!row_valid) return;
  T* y = static_cast<T*>(p.y);
  for (int d = half * (kD / 2); d < (half + 1) * (kD / 2); ++d)
    y[layout_at(p.packed, b, h, i, d, p.q_heads, p.q_len, kD, p.q_heads * kD)] =
        from_float<T>(l > 0.f ? os[row * L::ldo + d] / l : 0.f);
}

template <typename T, int kD>
Status launch_tc(const AttentionParams& p, cudaStream_t stream) {
  using L = TcLayout<kD>;
  const bool vec = vector_loads(p);
  auto kernel = vec ? attention_tc_kernel<T, kD, true> : attention_tc_kernel<T, kD, false>;
  // Over 48 KiB of shared memory needs the opt-in (once per instantiation).
  static const cudaError_t opt_in = [] {
    const cudaError_t a = cudaFuncSetAttribute(attention_tc_kernel<T, kD, true>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(L::bytes));
    const cudaError_t b = cudaFuncSetAttribute(attention_tc_kernel<T, kD, false>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(L::bytes));
    return a != cudaSuccess ? a : b;
  }();
  if (opt_in != cudaSuccess)
    return internal_error("Attention (tc): shared memory of {} bytes refused: {}", L::bytes,
                          cudaGetErrorString(opt_in));
  KILN_ASSIGN_OR_RETURN(const int64_t blocks, query_blocks(p, kBlockRows, "tc"));
  if (blocks <= 0) return Status::ok();
  kernel<<<static_cast<unsigned>(blocks), kThreads, L::bytes, stream>>>(p, (p.q_len + kBlockRows - 1) / kBlockRows);
  return last_launch_status("attention_tc_kernel");
}

template <typename T, int kD>
struct TcLaunch {
  static Status run(const AttentionParams& p, cudaStream_t stream) { return launch_tc<T, kD>(p, stream); }
};

}  // namespace

bool attention_tc_takes(const AttentionParams& p) {
  const bool dtype = p.dtype == DType::kF16 || p.dtype == DType::kBF16;
  const bool head = p.head == p.v_head && (p.head == 32 || p.head == 64 || p.head == 128);
  return dtype && head && p.past_len == 0 && !p.past_k && !p.past_v && p.softcap == 0 && !p.present_k && !p.present_v &&
         !p.qk && p.kv_heads > 0 && p.q_heads % p.kv_heads == 0;
}

Status launch_attention_tc(const AttentionParams& p, cudaStream_t stream) {
  return launch_tensor_core<TcLaunch>(p, "tc", stream);
}

}  // namespace kiln::cuda
