// The implicit-GEMM pieces kiln's persistent stem kernels share (stem_conv.cu's
// stem_igemm_kernel, stem_conv_pool.cu's stem_pool_kernel; stem_conv.cu's
// header says how they work): the weights staged in shared memory once per
// block, a tile's input halo fetched with 16-byte cp.async (zero fill in the
// padding), and a warp's mma.sync loop over K with A read by ldmatrix straight
// from the halo (a tap is an offset into it) and B from the staged weights.
// Included by .cu files only.
#pragma once

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/fast_div.h"
#include "backends/cuda/kernels/mma_sm80.cuh"
#include "backends/cuda/kernels/stem_conv.cuh"

namespace kiln::cuda {

// The current device's compute capability major, SMs and shared memory
// opt-in, asked once per process (stem_conv.cu).
struct IgemmDeviceLimits {
  int major = 0, sms = 0, smem_optin = 0;
};
const IgemmDeviceLimits& igemm_device_limits();

// set_stem_conv_test_hooks' hooks, which the pooled kernel honours too.
const StemConvTestHooks& stem_conv_test_hooks();

constexpr int kIgemmPad = 8;  // halves added to every shared row: ldmatrix without bank conflicts

// The convolution and its halo for a tile of hr - KH + 1 rows x hc - KW + 1
// columns (the kernels' fits functions bound every index to int).
struct IgemmConv {
  int h, w, cin, kh, kw, ph, pw;
  int k;                     // KH * KW * Cin: one output channel's weights
  int ks;                    // K + kIgemmPad: a weight row's stride in shared memory
  int cins;                  // Cin + kIgemmPad: a halo pixel's stride
  int hr, hc;                // the halo's rows and columns
  int halo;                  // hr * hc * cins elements
  FastDiv by_chunks, by_hc;  // Cin / 8 and hc: the halo loader's index splits
};

// The fields of IgemmConv that depend on the tile (th rows x tw columns) too.
inline void set_igemm_halo(IgemmConv& c, int th, int tw) {
  c.k = c.kh * c.kw * c.cin;
  c.ks = c.k + kIgemmPad, c.cins = c.cin + kIgemmPad;
  c.hr = th + c.kh - 1, c.hc = tw + c.kw - 1;
  c.halo = c.hr * c.hc * c.cins;
  c.by_chunks = FastDiv(static_cast<uint32_t>(c.cin / 8));
  c.by_hc = FastDiv(static_cast<uint32_t>(c.hc));
}

// Issues image n's halo whose first input pixel is (ih0, iw0) into `dst`
// ([hr][hc][cins]): a thread per 16 bytes, consecutive threads along a halo
// row, which is contiguous in x.
template <typename T, int kThreads>
__device__ __forceinline__ void igemm_load_halo(const T* __restrict__ x, const IgemmConv& s, int n, int ih0, int iw0,
                                                T* dst) {
  const int total = s.hr * s.hc * (s.cin / 8);
  const T* xn = x + static_cast<size_t>(n) * s.h * s.w * s.cin;
  for (int i = threadIdx.x; i < total; i += kThreads) {
    uint32_t q, c;
    const uint32_t pix = s.by_chunks.divmod(i, q), r = s.by_hc.divmod(pix, c);
    const int ih = ih0 + static_cast<int>(r), iw = iw0 + static_cast<int>(c);
    const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
    const T* src = inside ? xn + (static_cast<size_t>(ih) * s.w + iw) * s.cin + q * 8 : x;
    cp_async16(dst + pix * s.cins + q * 8, src, inside);
  }
}

// Issues w [kCout][K] into sw ([kCout][ks]) and writes the bias as floats
// (zeros without one); the caller commits the cp.async group.
template <typename T, int kCout, int kThreads>
__device__ __forceinline__ void igemm_stage_weights(const T* __restrict__ w, const T* __restrict__ bias,
                                                    const IgemmConv& s, T* sw, float* sbias) {
  const int wchunks = s.k / 8;
  for (int i = threadIdx.x; i < kCout * wchunks; i += kThreads) {
    const int co = i / wchunks, q = i - co * wchunks;
    cp_async16(sw + co * s.ks + q * 8, w + static_cast<size_t>(co) * s.k + q * 8, true);
  }
  for (int i = threadIdx.x; i < kCout; i += kThreads) sbias[i] = bias ? to_float(bias[i]) : 0.f;
}

// The lane's ldmatrix row for A in the fragment of 16 pixels at tile row fr,
// columns fc .. fc + 15: lane l gives pixel l % 16, channels (l / 16) * 8 ..
__device__ __forceinline__ int igemm_a_offset(const IgemmConv& s, int fr, int fc, int lane) {
  return (fr * s.hc + fc + lane % 16) * s.cins + (lane / 16) * 8;
}

// The lane's ldmatrix row for B: output channel (l % 8) + (l / 16) * 8 of a
// 16-channel group, K offset ((l / 8) % 2) * 8.
__device__ __forceinline__ int igemm_b_offset(const IgemmConv& s, int lane) {
  return (lane % 8 + (lane / 16) * 8) * s.ks + ((lane / 8) % 2) * 8;
}

// acc[i] = the warp's kMa fragments (A rows at a_off[i] in the halo hb) times
// the NB * 16 staged output channels, over K = (kh, kw, c0) in w's order;
// acc[i][j] holds the m16n8 tile of channels 8 j .. 8 j + 7.
template <typename T, int NB, int kMa>
__device__ __forceinline__ void igemm_mma(const T* hb, const T* sw, const int (&a_off)[kMa], int b_off,
                                          const IgemmConv& s, float (&acc)[kMa][2 * NB][4]) {
#pragma unroll
  for (int i = 0; i < kMa; ++i)
#pragma unroll
    for (int j = 0; j < 2 * NB; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
  int kk = 0;  // (kh, kw, c0)'s offset in a weight row
  for (int kh = 0; kh < s.kh; ++kh) {
    for (int kw = 0; kw < s.kw; ++kw) {
      const T* tap = hb + (kh * s.hc + kw) * s.cins;
      for (int c0 = 0; c0 < s.cin; c0 += 16, kk += 16) {
        uint32_t a[kMa][4];
#pragma unroll
        for (int i = 0; i < kMa; ++i) ldmatrix_x4(a[i], tap + a_off[i] + c0);
#pragma unroll
        for (int j = 0; j < NB; ++j) {
          uint32_t b[4];
          ldmatrix_x4(b, sw + b_off + j * 16 * s.ks + kk);
#pragma unroll
          for (int i = 0; i < kMa; ++i) {
            mma_16816<T>(acc[i][2 * j], a[i], b[0], b[1]);
            mma_16816<T>(acc[i][2 * j + 1], a[i], b[2], b[3]);
          }
        }
      }
    }
  }
}

}  // namespace kiln::cuda
