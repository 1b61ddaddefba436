// kiln::FusedConv's channels-last implicit GEMM on tensor cores (tactic
// "kiln_igemm"). The GEMM: M = N * OH * OW output pixels, N = Cout,
// K = KH * KW * Cin ordered (kh, kw, cin), so one K step of 16 is one tap and
// 16 consecutive input channels: A's row for pixel (n, oh, ow) is
// x[n, oh + kh - pt, ow + kw - pl, c0:c0 + 16] (zeros where the tap falls in
// the padding) and B is w[co, kh, kw, c0:c0 + 16], a column-major 16 x Cout
// matrix. A block of 4 warps takes 64 consecutive pixels (flattened over
// N * OH * OW, so a tile may span rows and images) and every output channel:
// per K step it stages A (64 x 16) and B (16 x Cout) in shared memory and each
// warp multiplies its 16 pixels into Cout / 16 float accumulator fragments
// (WMMA 16x16x16). The epilogue goes through shared memory (float) and adds
// bias and residual, activates, rounds once and writes 8 channels at a time.
#include <mma.h>

#include <climits>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/conv_activation.cuh"
#include "backends/cuda/kernels/stem_conv.cuh"

namespace kiln::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTileM = kWarps * 16;  // output pixels per block, 16 per warp
constexpr int kStepK = 16;           // one tap, 16 input channels
constexpr int kMaxCout = 128;
constexpr int kMaxFrags = kMaxCout / 16;
constexpr int kMaxK = 1024;         // Cin * KH * KW
constexpr int kLdc = kMaxCout + 4;  // the float epilogue tile's row stride (a multiple of 4)

// The geometry in 32-bit ints (stem_conv_fits bounds every index).
struct StemShape {
  int h, w, cin, oh, ow, kh, kw, ph, pw, cout;
  int m;  // N * OH * OW output pixels
  int k;  // KH * KW * Cin: one output channel's weights
};

// A block per 64 output pixels; `vec_out`: y, bias and z are 16-byte aligned.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    stem_conv_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                     const T* __restrict__ z, T* __restrict__ y, StemShape s, bool vec_out, EpilogueActivation act,
                     float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 WMMA needs sm_80: launch_stem_conv declines older devices
#else
  using P = Pack<T, 8>;                              // 16 bytes
  __shared__ __align__(32) T sa[kTileM * kStepK];    // A: 64 pixels x 16 channels, row-major
  __shared__ __align__(32) T sb[kMaxCout * kStepK];  // B: 16 x Cout, column-major (ld 16)
  __shared__ __align__(32) float sc[kTileM * kLdc];  // the accumulators, row-major (ld kLdc)

  const int tid = threadIdx.x, warp = tid / 32;
  const int m0 = blockIdx.x * kTileM;
  const int frags = s.cout / 16;

  // A's loader: a thread per (pixel of the tile, 8 of the step's 16 channels).
  const int row = tid / 2, part = (tid % 2) * 8;
  const int pix = m0 + row;
  const bool live = pix < s.m;
  int b = 0, oh = 0, ow = 0;
  if (live) {
    ow = pix % s.ow;
    const int t = pix / s.ow;
    oh = t % s.oh, b = t / s.oh;
  }
  const T* xb = x + static_cast<size_t>(b) * s.h * s.w * s.cin + part;
  P zero;
#pragma unroll
  for (int v = 0; v < 8; ++v) zero.v[v] = from_float<T>(0.f);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kMaxFrags];
#pragma unroll
  for (int j = 0; j < kMaxFrags; ++j) wmma::fill_fragment(acc[j], 0.f);

  for (int kh = 0; kh < s.kh; ++kh) {
    const int ih = oh + kh - s.ph;
    for (int kw = 0; kw < s.kw; ++kw) {
      const int iw = ow + kw - s.pw;
      const bool inside = live && ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
      const T* xp = inside ? xb + (static_cast<size_t>(ih) * s.w + iw) * s.cin : xb;
      const int tap = (kh * s.kw + kw) * s.cin;  // the tap's offset in a weight row
      for (int c0 = 0; c0 < s.cin; c0 += kStepK) {
        *reinterpret_cast<P*>(sa + row * kStepK + part) = inside ? *reinterpret_cast<const P*>(xp + c0) : zero;
        for (int v = tid; v < s.cout * 2; v += kThreads) {
          const int co = v / 2, half = (v % 2) * 8;
          *reinterpret_cast<P*>(sb + co * kStepK + half) =
              *reinterpret_cast<const P*>(w + static_cast<size_t>(co) * s.k + tap + c0 + half);
        }
        __syncthreads();
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::load_matrix_sync(a, sa + warp * 16 * kStepK, kStepK);
#pragma unroll
        for (int j = 0; j < kMaxFrags; ++j) {
          if (j < frags) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bf;
            wmma::load_matrix_sync(bf, sb + j * 16 * kStepK, kStepK);
            wmma::mma_sync(acc[j], a, bf, acc[j]);
          }
        }
        __syncthreads();  // sa and sb are refilled next step
      }
    }
  }

#pragma unroll
  for (int j = 0; j < kMaxFrags; ++j) {
    if (j < frags) wmma::store_matrix_sync(sc + warp * 16 * kLdc + j * 16, acc[j], kLdc, wmma::mem_row_major);
  }
  __syncthreads();

  // The epilogue: a thread per (pixel, 8 consecutive channels) and step.
  const int groups = s.cout / 8;
  for (int v = tid; v < kTileM * groups; v += kThreads) {
    const int r = v / groups, c = (v - r * groups) * 8;
    const int p = m0 + r;
    if (p >= s.m) break;  // r only grows with v
    const float* cr = sc + r * kLdc + c;
    const size_t o = static_cast<size_t>(p) * s.cout + c;
    float val[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) val[i] = cr[i];
    if (vec_out) {
      if (bias) {
        const P bv = *reinterpret_cast<const P*>(bias + c);
#pragma unroll
        for (int i = 0; i < 8; ++i) val[i] += to_float(bv.v[i]);
      }
      if (z) {
        const P zv = *reinterpret_cast<const P*>(z + o);
#pragma unroll
        for (int i = 0; i < 8; ++i) val[i] += to_float(zv.v[i]);
      }
      P out;
#pragma unroll
      for (int i = 0; i < 8; ++i) out.v[i] = from_float<T>(conv_activate(val[i], act, lo, hi));
      *reinterpret_cast<P*>(y + o) = out;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        if (bias) val[i] += to_float(bias[c + i]);
        if (z) val[i] += to_float(z[o + i]);
        y[o + i] = from_float<T>(conv_activate(val[i], act, lo, hi));
      }
    }
  }
#endif
}

template <typename T>
Status launch_typed(const StemConvParams& p, cudaStream_t stream) {
  const WindowGeometry& g = p.g;
  StemShape s;
  s.h = static_cast<int>(g.in[1]), s.w = static_cast<int>(g.in[2]);
  s.cin = static_cast<int>(g.in_channels);
  s.oh = static_cast<int>(g.out[1]), s.ow = static_cast<int>(g.out[2]);
  s.kh = static_cast<int>(g.kernel[1]), s.kw = static_cast<int>(g.kernel[2]);
  s.ph = static_cast<int>(g.pad_begin[1]), s.pw = static_cast<int>(g.pad_begin[2]);
  s.cout = static_cast<int>(g.out_channels);
  s.m = static_cast<int>(g.batch * g.out_size());
  s.k = s.kh * s.kw * s.cin;
  const bool vec_out = aligned16(p.y) && (!p.bias || aligned16(p.bias)) && (!p.z || aligned16(p.z));
  const unsigned blocks = static_cast<unsigned>((s.m + kTileM - 1) / kTileM);
  stem_conv_kernel<T><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(p.x), static_cast<const T*>(p.w),
                                                       static_cast<const T*>(p.bias), static_cast<const T*>(p.z),
                                                       static_cast<T*>(p.y), s, vec_out, p.act, p.lo, p.hi);
  return last_launch_status("stem_conv_kernel");
}

}  // namespace

bool stem_conv_fits(DType dtype, const WindowGeometry& g) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return false;
  if (g.group != 1) return false;
  if (g.in[0] != 1 || g.out[0] != 1 || g.kernel[0] != 1) return false;  // 2-D
  for (int a = 0; a < 3; ++a) {
    if (g.dilation[a] != 1 || g.stride[a] != 1 || g.kernel[a] < 1 || g.pad_begin[a] < 0 || g.pad_end[a] < 0)
      return false;
  }
  if (g.in_channels < kStepK || g.in_channels % kStepK != 0 || g.in_channels * g.kernel_size() > kMaxK) return false;
  if (g.out_channels < 16 || g.out_channels % 16 != 0 || g.out_channels > kMaxCout) return false;
  // Every pixel index and image offset within int (element offsets are size_t).
  const int64_t limit = INT_MAX;
  return g.batch >= 0 && g.batch * g.in_size() * g.in_channels < limit &&
         g.batch * g.out_size() * g.out_channels < limit;
}

Status launch_stem_conv(const StemConvParams& p, cudaStream_t stream) {
  if (!stem_conv_fits(p.dtype, p.g))
    return unsupported(
        "implicit-GEMM conv: dtype {} or geometry outside the kernel (f16/bf16, 2-D, group 1, stride 1, dilation 1, "
        "Cin % 16 == 0, Cin * KH * KW <= 1024, Cout % 16 == 0, Cout <= 128)",
        dtype_name(p.dtype));
  if (!aligned16(p.x) || !aligned16(p.w)) return invalid_argument("implicit-GEMM conv: x or w not 16-byte aligned");
  if (p.g.batch * p.g.out_size() == 0) return Status::ok();
  // Asked once per process, not on every launch (engines are built for one
  // compute capability, so every device a process runs them on has it).
  static const int major = [] {
    int device = 0, cc = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&cc, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess)
      return 0;
    return cc;
  }();
  if (major < 8) return unsupported("implicit-GEMM conv: compute capability {}.x (bf16 tensor cores need 8.0)", major);
  if (p.dtype == DType::kF16) return launch_typed<__half>(p, stream);
  return launch_typed<__nv_bfloat16>(p, stream);
}

}  // namespace kiln::cuda
