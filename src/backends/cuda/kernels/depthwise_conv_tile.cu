// kiln::FusedConv's channels-last depthwise convolution through shared
// memory (tactic "kiln_dw_tile", f16/bf16, a square K x K kernel, K 3, 5 or
// 7, equal strides S of 1 or 2). "kiln_dw" reads each input vector K^2 / S^2
// times and "kiln_dw_strip" about K / S times through L1 and L2; here a block
// takes an output tile of th rows x tw = strips * R columns x 8 * g channels
// and copies the tile's input halo, ((th - 1) * S + K) x ((tw - 1) * S + K)
// x 8 * g, into shared memory once with 16-byte cp.async (zero fill in the
// padding), with the K * K weight vectors of its channels (from the
// transposed weights in the workspace). Then each thread computes R outputs
// along W (R = 4 at stride 1, 2 at stride 2 and for 7x7: 206 registers a
// thread at R = 4) for 8 channels exactly as
// "kiln_dw_strip" does, one register window of (R - 1) * S + K input vectors
// per kernel row, the same taps in the same order (those in the padding
// skipped, not multiplied by zero) and dw_finish's epilogue: the results are
// bit-identical to "kiln_dw"'s.
//
// Shared memory bank conflicts: a thread's 16-byte load hits slot (address /
// 16) % 8 of the 8 a quarter-warp's loads are served from. Threads run with
// their channel group fastest, then the tile row, so lane l of a quarter-warp
// reads chunk (row * S * pitch + g_idx) and a halo row pitch with
// S * pitch = g (mod 8) puts every lane on its own slot (pitch: the halo row
// stride in 16-byte units, padded up to that where it exists).
#include <algorithm>

#include "backends/cuda/kernels/depthwise_conv_common.cuh"
#include "backends/cuda/kernels/fast_div.h"
#include "backends/cuda/kernels/mma_sm80.cuh"

namespace kiln::cuda {
namespace {

constexpr int kMaxThreads = 256;
constexpr size_t kMaxSmem = 48 * 1024;  // no opt-in needed
constexpr int kSms = 132;               // an H100 SXM: what "fill the GPU" aims at

// Outputs a thread along W for a K x K kernel at stride S.
__host__ __device__ constexpr int tile_outputs(int k, int stride) { return stride == 1 && k < 7 ? 4 : 2; }

struct DwTileShape {
  int c, h, w, oh, ow, ph, pw;
  int g, th, tw;         // the plan's g, th and strips * R
  int hr, hc, pitch;     // the halo: rows, columns, row stride in 16-byte chunks
  int cblocks, tiles_w;  // channel blocks (C / 8 / g), tiles along W
  FastDiv by_g, by_th, by_hc, by_cblocks, by_tiles_w, by_tiles_h;
};

template <typename T, int K, int S>
__global__ void __launch_bounds__(kMaxThreads)
    depthwise_nhwc_tile_kernel(const T* __restrict__ x, const T* __restrict__ wt, const T* __restrict__ bias,
                               const T* __restrict__ z, T* __restrict__ y, DwTileShape s, EpilogueActivation act,
                               float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // cp.async needs sm_80: launch_depthwise_conv_tile declines older devices
#else
  constexpr int R = tile_outputs(K, S);
  constexpr int kWin = (R - 1) * S + K;
  using P = Pack<T, 8>;
  extern __shared__ __align__(16) unsigned char smem[];
  P* halo = reinterpret_cast<P*>(smem);  // [hr][pitch] chunks; pixel col, group q at col * g + q
  P* sw = halo + s.hr * s.pitch;         // [K * K][g]

  // The block's tile: channel block fastest, then tile column, tile row, image.
  uint32_t cbk, tx, ty;
  const int n =
      static_cast<int>(s.by_tiles_h.divmod(s.by_tiles_w.divmod(s.by_cblocks.divmod(blockIdx.x, cbk), tx), ty));
  const int c0 = static_cast<int>(cbk) * s.g * 8;
  const int oh0 = static_cast<int>(ty) * s.th, ow0 = static_cast<int>(tx) * s.tw;
  const int ih0 = oh0 * S - s.ph, iw0 = ow0 * S - s.pw;
  const T* xn = x + static_cast<size_t>(n) * s.h * s.w * s.c + c0;
  // The halo, consecutive threads on consecutive chunks of a halo row (each
  // pixel's 8 * g channels are contiguous in x).
  const int chunks = s.hr * s.hc * s.g;
  for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
    uint32_t q, col;
    const uint32_t row = s.by_hc.divmod(s.by_g.divmod(i, q), col);
    const int ih = ih0 + static_cast<int>(row), iw = iw0 + static_cast<int>(col);
    const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
    const T* src = inside ? xn + (static_cast<size_t>(ih) * s.w + iw) * s.c + q * 8 : x;
    cp_async16(halo + row * s.pitch + col * s.g + q, src, inside);
  }
  for (int i = threadIdx.x; i < K * K * s.g; i += blockDim.x) {
    uint32_t q;
    const uint32_t tap = s.by_g.divmod(i, q);
    cp_async16(sw + i, wt + static_cast<size_t>(tap) * s.c + c0 + q * 8, true);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();  // the only barrier: threads past the output may leave below

  // The thread's strip: channel group fastest, then tile row, then strip.
  uint32_t cg, row;
  const int strip = static_cast<int>(s.by_th.divmod(s.by_g.divmod(threadIdx.x, cg), row));
  const int oh = oh0 + static_cast<int>(row), ow = ow0 + strip * R;
  if (oh >= s.oh || ow >= s.ow) return;
  const int outs = min(R, s.ow - ow);  // the right edge's strip may be shorter
  const int ih = oh * S - s.ph, iw = ow * S - s.pw;
  bool col_ok[kWin];
#pragma unroll
  for (int j = 0; j < kWin; ++j) col_ok[j] = iw + j >= 0 && iw + j < s.w && j < (outs - 1) * S + K;
  const P* hb = halo + static_cast<int>(row) * S * s.pitch + strip * R * S * s.g + static_cast<int>(cg);
  const P* wb = sw + cg;
  float acc[R][8];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int v = 0; v < 8; ++v) acc[r][v] = 0.f;
#pragma unroll
  for (int kh = 0; kh < K; ++kh) {
    if (ih + kh < 0 || ih + kh >= s.h) continue;
    P wv[K];
#pragma unroll
    for (int kw = 0; kw < K; ++kw) wv[kw] = wb[(kh * K + kw) * s.g];
    P xv[kWin];
    const P* hr = hb + kh * s.pitch;
#pragma unroll
    for (int j = 0; j < kWin; ++j) {
      if (col_ok[j]) xv[j] = hr[j * s.g];
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int kw = 0; kw < K; ++kw) {
        if (r >= outs || !col_ok[r * S + kw]) continue;
#pragma unroll
        for (int v = 0; v < 8; ++v) acc[r][v] += to_float(xv[r * S + kw].v[v]) * to_float(wv[kw].v[v]);
      }
    }
  }
  const int c = c0 + static_cast<int>(cg) * 8;
  const P* bp = bias ? reinterpret_cast<const P*>(bias + c) : nullptr;
  const int base = ((n * s.oh + oh) * s.ow + ow) * s.c + c;
  with_activation(act, [&](auto a) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r >= outs) break;
      const int at = base + r * s.c;
      *reinterpret_cast<P*>(y + at) = dw_finish<T, 8, decltype(a)::value>(acc[r], bp, z ? z + at : nullptr, lo, hi);
    }
  });
#endif
}

// The smallest halo row stride >= `chunks` with stride * S = g (mod 8) (see
// the header); `chunks` where none is (odd g at stride 2).
int halo_pitch(int chunks, int g, int stride) {
  for (int p = chunks; p < chunks + 8; ++p)
    if ((p * stride) % 8 == g % 8) return p;
  return chunks;
}

template <typename T, int K, int S>
Status launch_tile(const DepthwiseConvParams& p, const DwTileShape& s, const DwTilePlan& plan, cudaStream_t stream) {
  depthwise_nhwc_tile_kernel<T, K, S><<<static_cast<unsigned>(plan.blocks), plan.threads, plan.smem_bytes, stream>>>(
      static_cast<const T*>(p.x), static_cast<const T*>(p.workspace), static_cast<const T*>(p.bias),
      static_cast<const T*>(p.z), static_cast<T*>(p.y), s, p.act, p.lo, p.hi);
  return last_launch_status("depthwise_nhwc_tile_kernel");
}

template <typename T>
Status launch_typed(const DepthwiseConvParams& p, const DwTileShape& s, const DwTilePlan& plan, int k, int stride,
                    cudaStream_t stream) {
  if (stride == 1) {
    if (k == 3) return launch_tile<T, 3, 1>(p, s, plan, stream);
    if (k == 5) return launch_tile<T, 5, 1>(p, s, plan, stream);
    return launch_tile<T, 7, 1>(p, s, plan, stream);
  }
  if (k == 3) return launch_tile<T, 3, 2>(p, s, plan, stream);
  if (k == 5) return launch_tile<T, 5, 2>(p, s, plan, stream);
  return launch_tile<T, 7, 2>(p, s, plan, stream);
}

}  // namespace

bool depthwise_conv_tile_applies(DType dtype, const WindowGeometry& g) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return false;
  const int64_t k = g.kernel[1];
  return g.in_channels % 8 == 0 && k == g.kernel[2] && (k == 3 || k == 5 || k == 7) && g.stride[1] == g.stride[2] &&
         (g.stride[1] == 1 || g.stride[1] == 2);
}

DwTilePlan depthwise_conv_tile_plan(const WindowGeometry& g) {
  const int c = static_cast<int>(g.in_channels), oh = static_cast<int>(g.out[1]), ow = static_cast<int>(g.out[2]);
  const int k = static_cast<int>(g.kernel[1]), stride = static_cast<int>(g.stride[1]);
  DwTilePlan best;
  best.g = 1;
  for (int d = 8; d >= 1; --d)
    if ((c / 8) % d == 0) {
      best.g = d;
      break;
    }
  best.r = tile_outputs(k, stride);
  const int gb = best.g, r = best.r;
  const int max_strips = (ow + r - 1) / r;
  const int64_t cblocks = c / 8 / gb;
  // Cost per image in 16-byte chunks moved or slots spent: the halos and
  // weights loaded, every thread slot of whole warps (R outputs each, idle
  // past the edge) and a block's fixed share (launch, barrier).
  int64_t best_cost = -1;
  bool best_fills = false;
  for (int strips = 1; strips <= max_strips; ++strips) {
    for (int th = 1; th <= oh; ++th) {
      const int threads = gb * th * strips;
      if (threads > kMaxThreads) break;
      // Less than a warp only where that is the whole image.
      if (threads < 32 && (th < oh || strips < max_strips)) continue;
      const int tw = strips * r;
      const int hr = (th - 1) * stride + k, hc = (tw - 1) * stride + k;
      const int pitch = halo_pitch(hc * gb, gb, stride);
      const size_t smem = 16 * (static_cast<size_t>(hr) * pitch + static_cast<size_t>(k) * k * gb);
      if (smem > kMaxSmem) break;
      const int64_t tiles = static_cast<int64_t>((oh + th - 1) / th) * ((ow + tw - 1) / tw);
      const int64_t blocks = g.batch * tiles * cblocks;
      const int64_t cost = tiles * cblocks * ((hr * hc + k * k) * gb + (threads + 31) / 32 * 32 * r + 256);
      const bool fills = blocks >= 2 * kSms;
      const bool better =
          best_cost < 0 || (fills && !best_fills) ||
          (fills == best_fills &&
           (fills ? cost < best_cost : blocks > best.blocks || (blocks == best.blocks && cost < best_cost)));
      if (!better) continue;
      best_cost = cost, best_fills = fills;
      best.th = th, best.strips = strips, best.halo_rows = hr, best.halo_cols = hc, best.pitch = pitch;
      best.threads = threads, best.smem_bytes = smem, best.blocks = blocks;
    }
  }
  return best;
}

bool depthwise_conv_tile_device_ok() {
  static const bool ok = [] {
    int device = 0, major = 0;
    return cudaGetDevice(&device) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major >= 8;
  }();
  return ok;
}

Status launch_depthwise_conv_tile(const DepthwiseConvParams& p, cudaStream_t stream) {
  const WindowGeometry& g = p.g;
  const DwTilePlan plan = depthwise_conv_tile_plan(g);
  if (plan.threads == 0) return internal_error("depthwise tile conv: no tile fits the layer");
  if (plan.blocks == 0) return Status::ok();
  DwTileShape s;
  s.c = static_cast<int>(g.in_channels);
  s.h = static_cast<int>(g.in[1]), s.w = static_cast<int>(g.in[2]);
  s.oh = static_cast<int>(g.out[1]), s.ow = static_cast<int>(g.out[2]);
  s.ph = static_cast<int>(g.pad_begin[1]), s.pw = static_cast<int>(g.pad_begin[2]);
  s.g = plan.g, s.th = plan.th, s.tw = plan.strips * plan.r;
  s.hr = plan.halo_rows, s.hc = plan.halo_cols, s.pitch = plan.pitch;
  s.cblocks = s.c / 8 / s.g;
  s.tiles_w = (s.ow + s.tw - 1) / s.tw;
  s.by_g = FastDiv(static_cast<uint32_t>(s.g));
  s.by_th = FastDiv(static_cast<uint32_t>(s.th));
  s.by_hc = FastDiv(static_cast<uint32_t>(s.hc));
  s.by_cblocks = FastDiv(static_cast<uint32_t>(s.cblocks));
  s.by_tiles_w = FastDiv(static_cast<uint32_t>(s.tiles_w));
  s.by_tiles_h = FastDiv(static_cast<uint32_t>((s.oh + s.th - 1) / s.th));
  const int k = static_cast<int>(g.kernel[1]), stride = static_cast<int>(g.stride[1]);
  if (p.dtype == DType::kF16) return launch_typed<__half>(p, s, plan, k, stride, stream);
  return launch_typed<__nv_bfloat16>(p, s, plan, k, stride, stream);
}

}  // namespace kiln::cuda
