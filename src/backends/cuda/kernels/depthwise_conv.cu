// kiln::FusedConv's channels-last depthwise convolution (tactic "kiln_dw"):
// a thread per (output pixel, group of V consecutive channels), consecutive
// threads on consecutive groups of the same pixel, so a warp's loads and
// stores are contiguous; V = 16 bytes of channels where C and every pointer
// allow it, else 4 channels, else 1. The weights are first transposed to
// [KH * KW, C] in the workspace so a tap's V weights are contiguous too.
//
// The strip variant (tactic "kiln_dw_strip", 3x3 and 5x5 with a W stride of
// 1 or 2): a thread per (strip of R consecutive output pixels along W, group
// of V channels), R = 4 at stride 1 and 2 at stride 2, consecutive threads on
// consecutive groups of the same strip. For each kernel row it loads the
// strip's (R - 1) * S + K input vectors and that row's K weight vectors once
// into registers and slides the window over them, so an input vector is read
// about (R + K - 1) / R times per kernel row instead of K, and a weight
// vector once per R outputs. Same taps in the same order, same float
// accumulation and epilogue as the one-pixel kernel, so the same results.
#include <climits>

#include "backends/cuda/kernels/depthwise_conv.cuh"
#include "backends/cuda/kernels/depthwise_conv_common.cuh"
#include "backends/cuda/kernels/fast_div.h"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

// The geometry in 32-bit ints (depthwise_conv_fits bounds every index).
struct DwShape {
  int c, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
  int groups;  // c / V
  // A thread's index split into (image, row, column or strip, channel group)
  // by multiply and shift: three integer divisions were a third of the
  // one-pixel kernel's instructions.
  FastDiv by_groups, by_ow, by_oh, by_strips;
};

// w [C, taps] -> wt [taps, C].
template <typename T>
__global__ void transpose_dw_weights_kernel(const T* __restrict__ w, T* __restrict__ wt, int c, int taps) {
  const int i = blockIdx.x * kBlock + threadIdx.x;
  if (i >= c * taps) return;
  const int tap = i / c, ch = i - tap * c;
  wt[i] = w[ch * taps + tap];
}

// K > 0: a K x K kernel known at compile time (unrolled); 0: s.kh x s.kw.
// n = N * OH * OW * (C / V) threads.
template <typename T, int V, int K>
__global__ void __launch_bounds__(kBlock)
    depthwise_nhwc_kernel(const T* __restrict__ x, const T* __restrict__ wt, const T* __restrict__ bias,
                          const T* __restrict__ z, T* __restrict__ y, DwShape s, int n, EpilogueActivation act,
                          float lo, float hi) {
  using P = Pack<T, V>;
  const int i = blockIdx.x * kBlock + threadIdx.x;
  if (i >= n) return;
  uint32_t cg, ow, oh;
  const uint32_t pix = s.by_groups.divmod(i, cg);
  const int b = static_cast<int>(s.by_oh.divmod(s.by_ow.divmod(pix, ow), oh));
  const int c = static_cast<int>(cg) * V;
  const int ih0 = static_cast<int>(oh) * s.sh - s.ph, iw0 = static_cast<int>(ow) * s.sw - s.pw;
  const T* xb = x + b * s.h * s.w * s.c + c;
  const T* wc = wt + c;
  float acc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) acc[v] = 0.f;
  if constexpr (K > 0) {
    // Every tap's load first (those in the padding skipped, and their
    // products too), then the products: the K * K loads are in flight at
    // once instead of one round trip per tap.
    P xv[K * K];
    bool ok[K * K];
#pragma unroll
    for (int kh = 0; kh < K; ++kh) {
      const int ih = ih0 + kh;
#pragma unroll
      for (int kw = 0; kw < K; ++kw) {
        const int iw = iw0 + kw, tap = kh * K + kw;
        ok[tap] = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
        if (ok[tap]) xv[tap] = *reinterpret_cast<const P*>(xb + (ih * s.w + iw) * s.c);
      }
    }
#pragma unroll
    for (int tap = 0; tap < K * K; ++tap) {
      if (!ok[tap]) continue;
      const P wv = *reinterpret_cast<const P*>(wc + tap * s.c);
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] += to_float(xv[tap].v[v]) * to_float(wv.v[v]);
    }
  } else {
    for (int kh = 0; kh < s.kh; ++kh) {
      const int ih = ih0 + kh;
      if (ih < 0 || ih >= s.h) continue;
      for (int kw = 0; kw < s.kw; ++kw) {
        const int iw = iw0 + kw;
        if (iw < 0 || iw >= s.w) continue;
        const P xv = *reinterpret_cast<const P*>(xb + (ih * s.w + iw) * s.c);
        const P wv = *reinterpret_cast<const P*>(wc + (kh * s.kw + kw) * s.c);
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] += to_float(xv.v[v]) * to_float(wv.v[v]);
      }
    }
  }
  const P* bp = bias ? reinterpret_cast<const P*>(bias + c) : nullptr;
  const T* zp = z ? z + static_cast<size_t>(i) * V : nullptr;
  P* yp = reinterpret_cast<P*>(y + static_cast<size_t>(i) * V);
  with_activation(act, [&](auto a) { *yp = dw_finish<T, V, decltype(a)::value>(acc, bp, zp, lo, hi); });
}

// R outputs a thread along W for a K x K kernel at W stride S; n = N * OH *
// ceil(OW / R) * (C / V) threads. The strip's window starts at input column
// ow0 * S - pw; output r reads its columns r * S .. r * S + K - 1.
template <typename T, int V, int K, int S>
__global__ void __launch_bounds__(kBlock)
    depthwise_nhwc_strip_kernel(const T* __restrict__ x, const T* __restrict__ wt, const T* __restrict__ bias,
                                const T* __restrict__ z, T* __restrict__ y, DwShape s, int n, EpilogueActivation act,
                                float lo, float hi) {
  constexpr int R = S == 1 ? 4 : 2;
  constexpr int kWin = (R - 1) * S + K;
  using P = Pack<T, V>;
  const int i = blockIdx.x * kBlock + threadIdx.x;
  if (i >= n) return;
  uint32_t cg, st, ohu;
  const uint32_t strip = s.by_groups.divmod(i, cg);
  const int b = static_cast<int>(s.by_oh.divmod(s.by_strips.divmod(strip, st), ohu));
  const int c = static_cast<int>(cg) * V, oh = static_cast<int>(ohu);
  const int ow0 = static_cast<int>(st) * R;
  const int outs = min(R, s.ow - ow0);  // the right edge's strip may be shorter
  const int ih0 = oh * s.sh - s.ph, iw0 = ow0 * S - s.pw;
  // The window's columns inside the input and read by one of the strip's outputs.
  bool col_ok[kWin];
#pragma unroll
  for (int j = 0; j < kWin; ++j) col_ok[j] = iw0 + j >= 0 && iw0 + j < s.w && j < (outs - 1) * S + K;
  const T* xb = x + b * s.h * s.w * s.c + c;
  const T* wc = wt + c;
  float acc[R][V];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int v = 0; v < V; ++v) acc[r][v] = 0.f;
  }
#pragma unroll
  for (int kh = 0; kh < K; ++kh) {
    const int ih = ih0 + kh;
    if (ih < 0 || ih >= s.h) continue;
    P wv[K];
#pragma unroll
    for (int kw = 0; kw < K; ++kw) wv[kw] = *reinterpret_cast<const P*>(wc + (kh * K + kw) * s.c);
    P xv[kWin];
#pragma unroll
    for (int j = 0; j < kWin; ++j) {
      if (col_ok[j]) xv[j] = *reinterpret_cast<const P*>(xb + (ih * s.w + iw0 + j) * s.c);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int kw = 0; kw < K; ++kw) {
        if (r >= outs || !col_ok[r * S + kw]) continue;
#pragma unroll
        for (int v = 0; v < V; ++v) acc[r][v] += to_float(xv[r * S + kw].v[v]) * to_float(wv[kw].v[v]);
      }
    }
  }
  const P* bp = bias ? reinterpret_cast<const P*>(bias + c) : nullptr;
  const int base = ((b * s.oh + oh) * s.ow + ow0) * s.c + c;
  with_activation(act, [&](auto a) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r >= outs) break;
      const int at = base + r * s.c;
      *reinterpret_cast<P*>(y + at) = dw_finish<T, V, decltype(a)::value>(acc[r], bp, z ? z + at : nullptr, lo, hi);
    }
  });
}

// The operands typed, as both kernels take them.
template <typename T>
struct DwPointers {
  const T* x;
  const T* wt;  // the transposed weights (the workspace)
  const T* bias;
  const T* z;
  T* y;
};
template <typename T>
DwPointers<T> dw_pointers(const DepthwiseConvParams& p) {
  return {static_cast<const T*>(p.x), static_cast<const T*>(p.workspace), static_cast<const T*>(p.bias),
          static_cast<const T*>(p.z), static_cast<T*>(p.y)};
}

// The strip kernel for a k x k kernel (3 or 5) at W stride s.sw (1 or 2).
template <typename T, int V>
Status launch_strip(const DepthwiseConvParams& p, DwShape s, int k, cudaStream_t stream) {
  const int r = s.sw == 1 ? 4 : 2;
  const int strips = (s.ow + r - 1) / r;
  s.by_strips = FastDiv(static_cast<uint32_t>(strips));
  const int64_t n = p.g.batch * s.oh * strips * s.groups;
  const unsigned blocks = static_cast<unsigned>((n + kBlock - 1) / kBlock);
  const auto [x, wt, bias, z, y] = dw_pointers<T>(p);
  const int ni = static_cast<int>(n);
  if (k == 3 && s.sw == 1) {
    depthwise_nhwc_strip_kernel<T, V, 3, 1><<<blocks, kBlock, 0, stream>>>(x, wt, bias, z, y, s, ni, p.act, p.lo, p.hi);
  } else if (k == 3) {
    depthwise_nhwc_strip_kernel<T, V, 3, 2><<<blocks, kBlock, 0, stream>>>(x, wt, bias, z, y, s, ni, p.act, p.lo, p.hi);
  } else if (s.sw == 1) {
    depthwise_nhwc_strip_kernel<T, V, 5, 1><<<blocks, kBlock, 0, stream>>>(x, wt, bias, z, y, s, ni, p.act, p.lo, p.hi);
  } else {
    depthwise_nhwc_strip_kernel<T, V, 5, 2><<<blocks, kBlock, 0, stream>>>(x, wt, bias, z, y, s, ni, p.act, p.lo, p.hi);
  }
  return last_launch_status("depthwise_nhwc_strip_kernel");
}

template <typename T, int V>
Status launch_vectorized(const DepthwiseConvParams& p, DwShape s, cudaStream_t stream) {
  s.groups = s.c / V;
  s.by_groups = FastDiv(static_cast<uint32_t>(s.groups));
  s.by_ow = FastDiv(static_cast<uint32_t>(s.ow));
  s.by_oh = FastDiv(static_cast<uint32_t>(s.oh));
  const int k = s.kh == s.kw && (s.kh == 3 || s.kh == 5) ? s.kh : 0;
  if (p.strip && depthwise_conv_strip_applies(p.g)) return launch_strip<T, V>(p, s, k, stream);
  const int64_t n = p.g.batch * s.oh * s.ow * s.groups;
  const unsigned blocks = static_cast<unsigned>((n + kBlock - 1) / kBlock);
  const auto [x, wt, bias, z, y] = dw_pointers<T>(p);
  const int ni = static_cast<int>(n);
  if (k == 3) {
    depthwise_nhwc_kernel<T, V, 3><<<blocks, kBlock, 0, stream>>>(x, wt, bias, z, y, s, ni, p.act, p.lo, p.hi);
  } else if (k == 5) {
    depthwise_nhwc_kernel<T, V, 5><<<blocks, kBlock, 0, stream>>>(x, wt, bias, z, y, s, ni, p.act, p.lo, p.hi);
  } else {
    depthwise_nhwc_kernel<T, V, 0><<<blocks, kBlock, 0, stream>>>(x, wt, bias, z, y, s, ni, p.act, p.lo, p.hi);
  }
  return last_launch_status("depthwise_nhwc_kernel");
}

template <typename T>
Status launch_typed(const DepthwiseConvParams& p, cudaStream_t stream) {
  const WindowGeometry& g = p.g;
  DwShape s;
  s.c = static_cast<int>(g.in_channels);
  s.h = static_cast<int>(g.in[1]), s.w = static_cast<int>(g.in[2]);
  s.oh = static_cast<int>(g.out[1]), s.ow = static_cast<int>(g.out[2]);
  s.kh = static_cast<int>(g.kernel[1]), s.kw = static_cast<int>(g.kernel[2]);
  s.sh = static_cast<int>(g.stride[1]), s.sw = static_cast<int>(g.stride[2]);
  s.ph = static_cast<int>(g.pad_begin[1]), s.pw = static_cast<int>(g.pad_begin[2]);
  s.groups = s.c;
  const int taps = s.kh * s.kw;
  transpose_dw_weights_kernel<T><<<grid_for(int64_t(taps) * s.c, kBlock, INT_MAX), kBlock, 0, stream>>>(
      static_cast<const T*>(p.w), static_cast<T*>(p.workspace), s.c, taps);
  KILN_RETURN_IF_ERROR(last_launch_status("transpose_dw_weights_kernel"));
  // The widest vector whose channel groups and pointers line up.
  auto fits = [&](int v) {
    const size_t bytes = sizeof(T) * static_cast<size_t>(v);
    return s.c % v == 0 && aligned_to(p.x, bytes) && aligned_to(p.workspace, bytes) && aligned_to(p.y, bytes) &&
           (!p.bias || aligned_to(p.bias, bytes)) && (!p.z || aligned_to(p.z, bytes));
  };
  constexpr int kWide = 16 / static_cast<int>(sizeof(T));  // 8 for the 16-bit types, 4 for f32
  if (p.tile && depthwise_conv_tile_applies(p.dtype, g) && fits(8) && depthwise_conv_tile_device_ok())
    return launch_depthwise_conv_tile(p, stream);
  if (fits(kWide)) return launch_vectorized<T, kWide>(p, s, stream);
  if constexpr (kWide > 4) {
    if (fits(4)) return launch_vectorized<T, 4>(p, s, stream);
  }
  return launch_vectorized<T, 1>(p, s, stream);
}

}  // namespace

bool depthwise_conv_fits(DType dtype, const WindowGeometry& g) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) return false;
  if (g.in_channels < 1 || g.group != g.in_channels || g.out_channels != g.in_channels) return false;
  if (g.in[0] != 1 || g.out[0] != 1 || g.kernel[0] != 1) return false;  // 2-D
  for (int a = 0; a < 3; ++a) {
    if (g.dilation[a] != 1 || g.stride[a] < 1 || g.kernel[a] < 1 || g.pad_begin[a] < 0 || g.pad_end[a] < 0)
      return false;
  }
  // Every element index of x, y and the weights, and every pad-shifted
  // coordinate, within int.
  const int64_t limit = INT_MAX;
  const int64_t xs = g.batch * g.in_channels * g.in_size(), ys = g.batch * g.out_channels * g.out_size();
  const int64_t reach = (g.out[1] + g.out[2]) * (g.stride[1] + g.stride[2]) + g.pad_begin[1] + g.pad_begin[2];
  return g.batch >= 0 && xs < limit && ys < limit && g.in_channels * g.kernel_size() < limit && reach < limit;
}

bool depthwise_conv_strip_applies(const WindowGeometry& g) {
  return g.kernel[1] == g.kernel[2] && (g.kernel[1] == 3 || g.kernel[1] == 5) && (g.stride[2] == 1 || g.stride[2] == 2);
}

size_t depthwise_conv_workspace(DType dtype, const WindowGeometry& g) {
  const size_t element = dtype == DType::kF32 ? 4 : 2;  // f16, bf16
  const size_t bytes = element * static_cast<size_t>(g.in_channels * g.kernel_size());
  return (bytes + 255) / 256 * 256;
}

Status launch_depthwise_conv(const DepthwiseConvParams& p, cudaStream_t stream) {
  if (!depthwise_conv_fits(p.dtype, p.g))
    return unsupported("depthwise conv: dtype {} or geometry outside the kernel (multiplier 1, 2-D, no dilation)",
                       dtype_name(p.dtype));
  if (p.g.batch * p.g.out_size() == 0) return Status::ok();
  if (!p.workspace) return invalid_argument("depthwise conv: no workspace for the transposed weights");
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "depthwise conv", return launch_typed<T>(p, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
