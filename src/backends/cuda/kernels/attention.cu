// Fused attention. A block of 128 threads owns 16 query rows of one (batch,
// head), 8 threads a row. Per 32-key tile: K and V are staged in shared
// memory, each thread computes 4 of its row's scores (sequential dot products
// over D, as the CPU sums), the row's running max and sum are merged across
// its 8 threads with shuffles, and each thread updates Dv / 8 output columns.
// Key tiles that no row of the block can see (causal frontier, window,
// padding, mask length) are skipped.
#include <type_traits>

#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/attention_common.cuh"
#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {
namespace {

using namespace attn;  // NOLINT(google-build-using-namespace): the shared helpers

constexpr int kRows = 16;
constexpr int kCols = 32;
constexpr int kThreads = 128;
constexpr int kLanes = kThreads / kRows;  // threads per query row
constexpr int kScoresPerThread = kCols / kLanes;

template <typename T, typename Acc>
__device__ __forceinline__ Acc finish_score(const AttentionParams& p, Acc dot, Acc bias, int mode_stop, Acc* stop) {
  Acc s = round_to<T, Acc>(dot);
  if (mode_stop == 0) *stop = s;
  if (p.softcap > 0) {
    const Acc cap = static_cast<Acc>(p.softcap);
    s = round_to<T, Acc>(round_to<T, Acc>(acc_tanh(round_to<T, Acc>(s / cap))) * cap);
  }
  if (mode_stop == 1) *stop = s;
  s = round_to<T, Acc>(s + bias);
  return s;
}

template <typename Acc>
__device__ __forceinline__ Acc row_reduce_max(Acc v) {
#pragma unroll
  for (int o = 1; o < kLanes; o <<= 1) {
    const Acc w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

template <typename Acc>
__device__ __forceinline__ Acc row_reduce_sum(Acc v) {
#pragma unroll
  for (int o = 1; o < kLanes; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T, typename Acc, int kMaxDv>
__global__ void __launch_bounds__(kThreads) flash_attention_kernel(AttentionParams p, int64_t q_tiles, int64_t blocks) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int64_t D = p.head, Dv = p.v_head, ld = D + 1, pld = kCols + 1;
  Acc* qs = reinterpret_cast<Acc*>(smem_raw);
  Acc* ks = qs + kRows * ld;
  Acc* vs = ks + kCols * ld;
  Acc* ps = vs + kCols * Dv;
  const int row = threadIdx.x / kLanes, sub = threadIdx.x % kLanes;
  const Acc root = round_to<T, Acc>(static_cast<Acc>(sqrt(p.scale)));
  const int64_t group = p.q_heads / p.kv_heads;
  const Acc neg_inf = -INFINITY;
  for (int64_t blk = blockIdx.x; blk < blocks; blk += gridDim.x) {
    const int64_t qt = blk % q_tiles, bh = blk / q_tiles, h = bh % p.q_heads, b = bh / p.q_heads, kh = h / group;
    const int64_t i0 = qt * kRows, i = i0 + row;
    const bool row_valid = i < p.q_len;
    __syncthreads();  // the previous iteration's reads of qs are done
    for (int64_t idx = threadIdx.x; idx < kRows * D; idx += kThreads) {
      const int64_t r = idx / D, d = idx % D;
      qs[r * ld + d] = i0 + r < p.q_len ? round_to<T, Acc>(load<T, Acc>(static_cast<const T*>(p.q),
                                                                        layout_at(p.packed, b, h, i0 + r, d, p.q_heads,
                                                                                  p.q_len, D, p.q_stride())) *
                                                           root)
                                        : Acc(0);
    }
    const int64_t offset = query_offset(p, b), visible = visible_keys(p, b), pos = i + offset;
    const int64_t last = (i0 + kRows < p.q_len ? i0 + kRows : p.q_len) - 1 + offset;
    int64_t kv_end = visible, kv_begin = 0;
    if (p.causal && last + 1 < kv_end) kv_end = last + 1;
    if (p.right_window >= 0 && last + p.right_window + 1 < kv_end) kv_end = last + p.right_window + 1;
    if (p.left_window >= 0 && i0 + offset - p.left_window > 0) kv_begin = i0 + offset - p.left_window;
    Acc m = neg_inf, l = 0;
    Acc o[kMaxDv / kLanes];
#pragma unroll
    for (int t = 0; t < kMaxDv / kLanes; ++t) o[t] = 0;
    for (int64_t j0 = kv_begin; j0 < kv_end; j0 += kCols) {
      __syncthreads();  // qs is written; the previous tile's ks, vs, ps are read
      for (int64_t idx = threadIdx.x; idx < kCols * D; idx += kThreads) {
        const int64_t c = idx / D, d = idx % D, j = j0 + c;
        ks[c * ld + d] = j < kv_end
                             ? round_to<T, Acc>(cached<T, Acc>(p, p.past_k, p.k, D, p.k_stride(), b, kh, j, d) * root)
                             : Acc(0);
      }
      for (int64_t idx = threadIdx.x; idx < kCols * Dv; idx += kThreads) {
        const int64_t c = idx / Dv, d = idx % Dv, j = j0 + c;
        vs[c * Dv + d] = j < kv_end ? cached<T, Acc>(p, p.past_v, p.v, Dv, p.v_stride(), b, kh, j, d) : Acc(0);
      }
      __syncthreads();
      Acc s[kScoresPerThread];
      Acc tile_max = neg_inf;
#pragma unroll
      for (int c4 = 0; c4 < kScoresPerThread; ++c4) {
        const int col = sub + kLanes * c4;
        const int64_t j = j0 + col;
        Acc sc = neg_inf;
        if (row_valid && j < kv_end) {
          Acc dot = 0;
#pragma unroll 4
          for (int64_t d = 0; d < D; ++d) dot += qs[row * ld + d] * ks[col * ld + d];
          Acc unused;
          sc = finish_score<T, Acc>(p, dot, score_bias<T, Acc>(p, b, h, i, j, pos, visible), -1, &unused);
        }
        s[c4] = sc;
        tile_max = sc > tile_max ? sc : tile_max;
      }
      const Acc row_max = row_reduce_max(tile_max);
      const Acc m_new = row_max > m ? row_max : m;
      Acc alpha = 1, psum = 0;
      if (m_new != neg_inf) {
        alpha = acc_exp(m - m_new);
#pragma unroll
        for (int c4 = 0; c4 < kScoresPerThread; ++c4) {
          s[c4] = acc_exp(s[c4] - m_new);
          psum += s[c4];
        }
      } else {
#pragma unroll
        for (int c4 = 0; c4 < kScoresPerThread; ++c4) s[c4] = 0;
      }
      l = l * alpha + row_reduce_sum(psum);
      m = m_new;
#pragma unroll
      for (int c4 = 0; c4 < kScoresPerThread; ++c4) ps[row * pld + sub + kLanes * c4] = s[c4];
      __syncwarp();  // a row's 8 threads share one warp
#pragma unroll
      for (int t = 0; t < kMaxDv / kLanes; ++t) {
        const int64_t d = sub + kLanes * t;
        if (d < Dv) {
          Acc acc = o[t] * alpha;
#pragma unroll 4
          for (int c = 0; c < kCols; ++c) acc += ps[row * pld + c] * vs[c * Dv + d];
          o[t] = acc;
        }
      }
    }
    if (row_valid) {
      T* y = static_cast<T*>(p.y);
#pragma unroll
      for (int t = 0; t < kMaxDv / kLanes; ++t) {
        const int64_t d = sub + kLanes * t;
        if (d < Dv)
          y[layout_at(p.packed, b, h, i, d, p.q_heads, p.q_len, Dv, p.q_heads * Dv)] =
              store<T, Acc>(l > 0 ? o[t] / l : Acc(0));
      }
    }
  }
}

// Scores recomputed one thread each, as the fused kernel computes them:
// stage 0 is the rounded dot product, 1 after softcap, 2 (and 3) after the
// bias. For qk_matmul_output (S = T) and the unfused path (S = Acc).
template <typename T, typename Acc, typename S>
__global__ void scores_kernel(AttentionParams p, int stage, S* out, int64_t n) {
  const int64_t total = (p.past_len + p.kv_len), group = p.q_heads / p.kv_heads;
  const Acc root = round_to<T, Acc>(static_cast<Acc>(sqrt(p.scale)));
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t j = e % total, rest = e / total, i = rest % p.q_len, bh = rest / p.q_len;
    const int64_t h = bh % p.q_heads, b = bh / p.q_heads, kh = h / group;
    Acc dot = 0;
    for (int64_t d = 0; d < p.head; ++d) {
      const Acc qv =
          round_to<T, Acc>(load<T, Acc>(static_cast<const T*>(p.q),
                                        layout_at(p.packed, b, h, i, d, p.q_heads, p.q_len, p.head, p.q_stride())) *
                           root);
      dot += qv * round_to<T, Acc>(cached<T, Acc>(p, p.past_k, p.k, p.head, p.k_stride(), b, kh, j, d) * root);
    }
    Acc early = 0;
    const Acc bias = score_bias<T, Acc>(p, b, h, i, j, i + query_offset(p, b), visible_keys(p, b));
    const Acc sc = finish_score<T, Acc>(p, dot, bias, stage, &early);
    if constexpr (std::is_same_v<S, Acc>)
      out[e] = stage <= 1 ? early : sc;
    else
      out[e] = store<T, Acc>(stage <= 1 ? early : sc);
  }
}

// Reduces over the block (blockDim.x a multiple of 32, at most 1024);
// `smem` holds 32 values. Every thread gets the result.
template <typename Acc, bool kMax>
__device__ Acc block_reduce(Acc v, Acc* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const Acc w = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? (w > v ? w : v) : v + w;
  }
  __syncthreads();  // smem may still be read by a previous reduction
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  Acc r = smem[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) r = kMax ? (smem[w] > r ? smem[w] : r) : r + smem[w];
  return r;
}

// Softmax of each score row in place (in Acc); a row with no visible key is zeros.
template <typename T, typename Acc, typename S>
__global__ void score_softmax_kernel(S* x, int64_t rows, int64_t cols) {
  __shared__ Acc smem[32];
  const Acc neg_inf = -INFINITY;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    S* row = x + r * cols;
    Acc mx = neg_inf;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const Acc v = load<S, Acc>(row, c);
      mx = v > mx ? v : mx;
    }
    mx = block_reduce<Acc, true>(mx, smem);
    Acc sum = 0;
    if (mx != neg_inf)
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += acc_exp(load<S, Acc>(row, c) - mx);
    sum = block_reduce<Acc, false>(sum, smem);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const Acc v = mx == neg_inf ? Acc(0) : acc_exp(load<S, Acc>(row, c) - mx) / sum;
      if constexpr (std::is_same_v<S, Acc>)
        row[c] = v;
      else
        row[c] = store<T, Acc>(v);
    }
  }
}

// The unfused path's last step: Y = probs . V, a thread per output element.
template <typename T, typename Acc>
__global__ void probs_values_kernel(AttentionParams p, const Acc* __restrict__ probs, int64_t n) {
  const int64_t total = (p.past_len + p.kv_len), group = p.q_heads / p.kv_heads;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t d = e % p.v_head, rest = e / p.v_head, i = rest % p.q_len, bh = rest / p.q_len;
    const int64_t h = bh % p.q_heads, b = bh / p.q_heads, kh = h / group;
    const Acc* row = probs + rest * total;
    Acc acc = 0;
    for (int64_t j = 0; j < total; ++j)
      acc += row[j] * cached<T, Acc>(p, p.past_v, p.v, p.v_head, p.v_stride(), b, kh, j, d);
    static_cast<T*>(p.y)[layout_at(p.packed, b, h, i, d, p.q_heads, p.q_len, p.v_head, p.q_heads * p.v_head)] =
        store<T, Acc>(acc);
  }
}

template <typename T, typename S>
Status launch_scores(const AttentionParams& p, int stage, S* out, cudaStream_t stream) {
  using Acc = acc_t<T>;
  const int64_t total = p.past_len + p.kv_len, rows = p.batch * p.q_heads * p.q_len, n = rows * total;
  if (n == 0) return Status::ok();
  constexpr int kBlock = 256;
  scores_kernel<T, Acc, S><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, stage, out, n);
  KILN_RETURN_IF_ERROR(last_launch_status("scores_kernel"));
  if (stage != 3) return Status::ok();
  score_softmax_kernel<T, Acc, S>
      <<<static_cast<unsigned>(rows < 0x7fffffff ? rows : 0x7fffffff), 128, 0, stream>>>(out, rows, total);
  return last_launch_status("score_softmax_kernel");
}

// Head sizes past the fused kernel's: scores, softmax and the product with V
// as three kernels over the scratch buffer.
template <typename T>
Status run_unfused(const AttentionParams& p, cudaStream_t stream) {
  using Acc = acc_t<T>;
  if (!p.scratch) return internal_error("Attention: head sizes {} and {} need scratch memory", p.head, p.v_head);
  auto* probs = static_cast<Acc*>(p.scratch);
  KILN_RETURN_IF_ERROR(launch_scores<T>(p, 3, probs, stream));
  const int64_t n = p.batch * p.q_heads * p.q_len * p.v_head;
  if (n == 0) return Status::ok();
  constexpr int kBlock = 256;
  probs_values_kernel<T, Acc><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, probs, n);
  return last_launch_status("probs_values_kernel");
}

// present_key / present_value: past then new entries, (B, H, total, size).
template <typename E>
__global__ void present_kernel(const E* __restrict__ past, const E* __restrict__ cur, E* __restrict__ out,
                               int64_t heads, int64_t past_len, int64_t cur_len, int64_t size, bool packed, int64_t row,
                               int64_t n) {
  const int64_t total = past_len + cur_len, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t d = e % size, rest = e / size, t = rest % total, bh = rest / total;
    out[e] = t < past_len ? past[(bh * past_len + t) * size + d]
                          : cur[layout_at(packed, bh / heads, bh % heads, t - past_len, d, heads, cur_len, size, row)];
  }
}

template <typename E>
Status launch_present(const AttentionParams& p, const void* past, const void* cur, void* out, int64_t size, int64_t row,
                      cudaStream_t stream) {
  const int64_t n = p.batch * p.kv_heads * (p.past_len + p.kv_len) * size;
  if (!out || n == 0) return Status::ok();
  constexpr int kBlock = 256;
  present_kernel<E><<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<const E*>(past), static_cast<const E*>(cur),
                                                                static_cast<E*>(out), p.kv_heads, p.past_len, p.kv_len,
                                                                size, p.packed, row, n);
  return last_launch_status("present_kernel");
}

template <typename T, int kMaxDv>
Status launch_flash(const AttentionParams& p, cudaStream_t stream) {
  using Acc = acc_t<T>;
  const int64_t q_tiles = (p.q_len + kRows - 1) / kRows, blocks = p.batch * p.q_heads * q_tiles;
  if (blocks == 0) return Status::ok();
  const size_t smem = sizeof(Acc) * static_cast<size_t>(kRows * (p.head + 1) + kCols * (p.head + 1) + kCols * p.v_head +
                                                        kRows * (kCols + 1));
  auto kernel = flash_attention_kernel<T, Acc, kMaxDv>;
  KILN_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const unsigned grid = static_cast<unsigned>(blocks < 0x7fffffff ? blocks : 0x7fffffff);
  kernel<<<grid, kThreads, smem, stream>>>(p, q_tiles, blocks);
  return last_launch_status("flash_attention_kernel");
}

template <typename T>
Status run_attention(const AttentionParams& p, cudaStream_t stream) {
  using E = std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
  KILN_RETURN_IF_ERROR(launch_present<E>(p, p.past_k, p.k, p.present_k, p.head, p.k_stride(), stream));
  KILN_RETURN_IF_ERROR(launch_present<E>(p, p.past_v, p.v, p.present_v, p.v_head, p.v_stride(), stream));
  if (p.head > kMaxAttentionHead || p.v_head > kMaxAttentionHead) {
    KILN_RETURN_IF_ERROR(run_unfused<T>(p, stream));
  } else if (p.v_head <= 64) {
    KILN_RETURN_IF_ERROR((launch_flash<T, 64>(p, stream)));
  } else if (p.v_head <= 128) {
    KILN_RETURN_IF_ERROR((launch_flash<T, 128>(p, stream)));
  } else {
    KILN_RETURN_IF_ERROR((launch_flash<T, 256>(p, stream)));
  }
  if (!p.qk) return Status::ok();
  return launch_scores<T>(p, p.qk_mode, static_cast<T*>(p.qk), stream);
}

}  // namespace

Status launch_attention(const AttentionParams& p, cudaStream_t stream) {
  if (p.kv_heads <= 0 || p.q_heads % p.kv_heads != 0)
    return invalid_argument("Attention: {} query heads for {} key/value heads", p.q_heads, p.kv_heads);
  switch (p.dtype) {
    case DType::kF32: return run_attention<float>(p, stream);
    case DType::kF16: return run_attention<__half>(p, stream);
    case DType::kBF16: return run_attention<__nv_bfloat16>(p, stream);
    case DType::kF64: return run_attention<double>(p, stream);
    default: return unsupported("Attention: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(p.dtype));
  }
}

}  // namespace kiln::cuda
