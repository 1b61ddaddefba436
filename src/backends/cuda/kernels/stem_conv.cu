// kiln::FusedConv's channels-last implicit GEMM on tensor cores (tactic
// "kiln_igemm"). The GEMM: M = N * OH * OW output pixels, N = Cout,
// K = KH * KW * Cin ordered (kh, kw, cin) as in w [Cout, KH, KW, Cin]: A's row
// for pixel (n, oh, ow) is x[n, oh + kh - pt, ow + kw - pl, :] per tap (zeros
// in the padding), B's columns are w's rows.
//
// Why the first kernel (stem_conv_kernel below, kept for layers whose weights
// and tiles do not fit in shared memory) ran at ~1/5 of memory speed on the
// stems (H100, batch 128): a block of 4 warps took 64 pixels x Cout and
// walked K one tap (16 channels) at a time: load a 64 x 16 slice of x and a
// 16 x Cout slice of w with plain loads, __syncthreads, one WMMA per 16 x 16
// output fragment, __syncthreads. So (1) every K step is a full
// global-memory round trip with nothing else in flight (no prefetch; 2 KB of
// x per block per step, and 40 KB of static shared memory and 120-126
// registers (cuobjdump) allow 4 blocks per SM: ~1 MB in flight on the GPU,
// where HBM needs ~3 MB); (2) each input pixel is loaded once per tap (4x
// for MobileNetV2's 2x2, 16x for ResNet-50's 4x4, through L1/L2) and the
// whole weight matrix once per 64 pixels (ResNet-50: 32 KB per block, 25088
// blocks, 0.8 GB of L2 traffic); (3) 4 to 16 tiny K steps of 64 pixels leave
// the tensor cores and the LSU idle between barriers. The loads were 16-byte
// and coalesced and the epilogue's 16-byte stores along Cout were fine; the
// ~34 KB float epilogue tile only cost occupancy.
//
// The kernel now (stem_igemm_kernel): persistent blocks of 4 warps (a grid of
// SMs x resident blocks) each stage the whole weight matrix [Cout][K] in
// shared memory ONCE, then loop over output tiles of TH rows x TW = 16 * TWS
// columns (TH * TWS = 4 warps x MA fragments of 16 pixels, MA = 8 / (Cout /
// 16), so a warp holds at most 64 float accumulators): the tile's input halo
// (TH + KH - 1) x (TW + KW - 1) x Cin is fetched ONCE with 16-byte cp.async
// (zero fill in the padding), double-buffered so the next tile's halo loads
// while this one computes and stores. Each warp runs mma.sync m16n8k16 over K
// with A read by ldmatrix straight from the halo (implicit im2col: a tap is
// an offset into the halo) and B by ldmatrix from the staged weights; rows of
// Cin + 8 and K + 8 halves keep ldmatrix free of bank conflicts. The epilogue
// (bias, residual, activation, one rounding) goes through a 16-pixel x Cout
// staging tile per warp, so y is written 16 bytes at a time as whole
// contiguous rows of Cout pixels. MobileNetV2's stem: 16 x 16-pixel tiles,
// 37 KB of shared memory and 128 registers, 4 blocks per SM; ResNet-50's:
// 8 x 16 tiles, 63 KB, 3 blocks per SM.
#include <mma.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/conv_activation.cuh"
#include "backends/cuda/kernels/fast_div.h"
#include "backends/cuda/kernels/mma_sm80.cuh"
#include "backends/cuda/kernels/stem_conv.cuh"
#include "backends/cuda/kernels/stem_igemm.cuh"

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

// ---- stem_conv_kernel (the simple one) -----------------------------------

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

// ---- stem_igemm_kernel ----------------------------------------------------

constexpr int kIgemmWarps = 4;
constexpr int kIgemmThreads = kIgemmWarps * 32;
constexpr int kPad = kIgemmPad;

// The persistent kernel's geometry (stem_conv_fits bounds every index).
struct IgemmShape {
  IgemmConv conv;  // the convolution and the tile's halo
  int oh, ow;
  int th, tws;  // the tile: th output rows x tws * 16 columns
  int tiles_w, tiles_h, tiles;
  FastDiv by_tiles_w, by_tiles_h;  // a tile's index into its column, row and image
};

// Tile t's image and first output row and column (tiles run along W, then H,
// then N).
__device__ __forceinline__ void tile_origin(const IgemmShape& s, int t, int& n, int& oh0, int& ow0) {
  uint32_t tw, th;
  const uint32_t r = s.by_tiles_w.divmod(t, tw);
  n = static_cast<int>(s.by_tiles_h.divmod(r, th));
  oh0 = static_cast<int>(th) * s.th;
  ow0 = static_cast<int>(tw) * s.tws * 16;
}

// Issues tile t's halo into `dst`.
template <typename T>
__device__ __forceinline__ void load_halo(const T* __restrict__ x, const IgemmShape& s, int t, T* dst) {
  int n, oh0, ow0;
  tile_origin(s, t, n, oh0, ow0);
  igemm_load_halo<T, kIgemmThreads>(x, s.conv, n, oh0 - s.conv.ph, ow0 - s.conv.pw, dst);
}

// Shared memory: w [Cout][ks], bias [Cout] float, 2 halos, a staging tile
// [16][Cout + kPad] per warp.
template <typename T>
size_t igemm_smem_bytes(const IgemmShape& s, int cout) {
  return sizeof(T) * (static_cast<size_t>(cout) * s.conv.ks + 2 * static_cast<size_t>(s.conv.halo) +
                      static_cast<size_t>(kIgemmWarps) * 16 * (cout + kPad)) +
         sizeof(float) * cout;
}

// Tile t's epilogue (bias, residual z, the activation kAct, one rounding), a
// fragment (16 pixels of one output row) at a time: the lane holds rows
// lane / 4 and + 8, channels 8 * j + 2 * (lane % 4) + 0, 1, written as one
// packed pair into the warp's staging tile, which then goes to y as whole
// 16-byte pieces of contiguous pixels.
template <typename T, int NB, EpilogueActivation kAct>
__device__ __forceinline__ void store_tile(const float (&acc)[8 / NB][2 * NB][4], const float* sbias,
                                           const T* __restrict__ z, T* __restrict__ y, T* stage, const IgemmShape& s,
                                           int t, bool vec_out, float lo, float hi) {
  constexpr int kMa = 8 / NB;
  constexpr int kCout = NB * 16;
  constexpr int kCs = kCout + kPad;   // a staging row's stride
  constexpr int kChunks = kCout / 8;  // 16-byte pieces of an output pixel
  using P = Pack<T, 8>;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int n, oh0, ow0;
  tile_origin(s, t, n, oh0, ow0);
#pragma unroll
  for (int i = 0; i < kMa; ++i) {
    const int f = warp * kMa + i, fr = f / s.tws, fc = (f - fr * s.tws) * 16;
    const int oh = oh0 + fr, owb = ow0 + fc;
    const int live = oh < s.oh ? min(16, max(0, s.ow - owb)) : 0;  // pixels of the fragment inside y
    const size_t pix0 = (static_cast<size_t>(n) * s.oh + oh) * s.ow + owb;
#pragma unroll
    for (int j = 0; j < 2 * NB; ++j) {
      const int c = j * 8 + (lane % 4) * 2;
      const float2 b = *reinterpret_cast<const float2*>(sbias + c);
#pragma unroll
      for (int hlf = 0; hlf < 2; ++hlf) {
        const int row = lane / 4 + hlf * 8;
        float v0 = acc[i][j][2 * hlf] + b.x, v1 = acc[i][j][2 * hlf + 1] + b.y;
        if (z && row < live) {
          const T* zp = z + (pix0 + row) * kCout + c;
          v0 += to_float(zp[0]), v1 += to_float(zp[1]);
        }
        *reinterpret_cast<uint32_t*>(stage + row * kCs + c) =
            pack<T>(conv_activate(v0, kAct, lo, hi), conv_activate(v1, kAct, lo, hi));
      }
    }
    __syncwarp();
    // The fragment's live pixels are contiguous in y: 16 bytes per lane.
    for (int q = lane; q < live * kChunks; q += 32) {
      const int row = q / kChunks, piece = q % kChunks;
      const T* sp = stage + row * kCs + piece * 8;
      T* yp = y + (pix0 + row) * kCout + piece * 8;
      if (vec_out) {
        *reinterpret_cast<P*>(yp) = *reinterpret_cast<const P*>(sp);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) yp[e] = sp[e];
      }
    }
    __syncwarp();  // the staging tile is rewritten by the next fragment
  }
}

// NB = Cout / 16; MA = 8 / NB fragments of 16 pixels per warp. `vec_out`: y is
// 16-byte aligned. Each block: gridDim.x-strided tiles from blockIdx.x.
template <typename T, int NB>
__global__ void __launch_bounds__(kIgemmThreads)
    stem_igemm_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                      const T* __restrict__ z, T* __restrict__ y, IgemmShape s, bool vec_out, EpilogueActivation act,
                      float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 mma and cp.async need sm_80: launch_stem_conv declines older devices
#else
  constexpr int kMa = 8 / NB;
  constexpr int kCout = NB * 16;
  constexpr int kCs = kCout + kPad;  // a staging row's stride
  extern __shared__ __align__(16) unsigned char smem[];
  const IgemmConv& cv = s.conv;
  T* sw = reinterpret_cast<T*>(smem);
  float* sbias = reinterpret_cast<float*>(sw + kCout * cv.ks);
  T* halos = reinterpret_cast<T*>(sbias + kCout);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  T* stage = halos + 2 * cv.halo + warp * 16 * kCs;

  // The weights once (in the first cp.async group, with the first halo).
  igemm_stage_weights<T, kCout, kIgemmThreads>(w, bias, cv, sw, sbias);
  int a_off[kMa];
#pragma unroll
  for (int i = 0; i < kMa; ++i) {
    const int f = warp * kMa + i, fr = f / s.tws, fc = (f - fr * s.tws) * 16;
    a_off[i] = igemm_a_offset(cv, fr, fc, lane);
  }
  const int b_off = igemm_b_offset(cv, lane);

  int t = blockIdx.x, buf = 0;
  if (t < s.tiles) load_halo(x, s, t, halos);
  cp_async_commit();
  for (; t < s.tiles; t += gridDim.x, buf ^= 1) {
    const int next = t + gridDim.x;
    if (next < s.tiles) load_halo(x, s, next, halos + (buf ^ 1) * cv.halo);
    cp_async_commit();  // possibly empty: the wait below is the same every iteration
    cp_async_wait<1>();
    __syncthreads();  // this tile's halo (and the weights, bias) visible to every warp

    float acc[kMa][2 * NB][4];
    igemm_mma<T, NB, kMa>(halos + buf * cv.halo, sw, a_off, b_off, cv, acc);

    // The activation is a constant in each copy of the epilogue (a switch
    // per element, 64 of them per lane and tile, issued more instructions
    // than the tile's mma loop).
    with_activation(
        act, [&](auto a) { store_tile<T, NB, decltype(a)::value>(acc, sbias, z, y, stage, s, t, vec_out, lo, hi); });
    __syncthreads();  // every warp is done with halo `buf`, refilled next iteration
  }
#endif
}

template <typename T>
Status launch_simple(const StemConvParams& p, cudaStream_t stream) {
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

// The persistent kernel's tile for g: 4 warps x (8 / NB) fragments of 16
// pixels as th rows x tws * 16 columns, tws the power of two that pads the
// output plane least (the narrower on a tie: a squarer halo).
IgemmShape igemm_shape(const WindowGeometry& g) {
  IgemmShape s;
  IgemmConv& c = s.conv;
  c.h = static_cast<int>(g.in[1]), c.w = static_cast<int>(g.in[2]);
  c.cin = static_cast<int>(g.in_channels);
  c.kh = static_cast<int>(g.kernel[1]), c.kw = static_cast<int>(g.kernel[2]);
  c.ph = static_cast<int>(g.pad_begin[1]), c.pw = static_cast<int>(g.pad_begin[2]);
  s.oh = static_cast<int>(g.out[1]), s.ow = static_cast<int>(g.out[2]);
  const int frags = kIgemmWarps * (8 / static_cast<int>(g.out_channels / 16));
  int64_t best = -1;
  for (int tws = 1; tws <= frags; tws *= 2) {
    const int64_t th = frags / tws, tw = 16 * tws;
    const int64_t padded = (s.oh + th - 1) / th * th * ((s.ow + tw - 1) / tw * tw);
    if (best < 0 || padded < best) best = padded, s.tws = tws;
  }
  s.th = frags / s.tws;
  set_igemm_halo(c, s.th, 16 * s.tws);
  s.tiles_w = (s.ow + 16 * s.tws - 1) / (16 * s.tws);
  s.tiles_h = (s.oh + s.th - 1) / s.th;
  s.tiles = static_cast<int>(g.batch) * s.tiles_w * s.tiles_h;
  s.by_tiles_w = FastDiv(static_cast<uint32_t>(s.tiles_w));
  s.by_tiles_h = FastDiv(static_cast<uint32_t>(s.tiles_h));
  return s;
}

StemConvTestHooks g_test_hooks;

const IgemmDeviceLimits& device_limits() { return igemm_device_limits(); }

// Launches stem_igemm_kernel<T, NB> on a grid of resident blocks; `launched`
// false (and ok) where its shared memory does not fit, for the simple kernel.
template <typename T, int NB>
Status launch_igemm(const StemConvParams& p, const IgemmShape& s, cudaStream_t stream, bool& launched) {
  launched = false;
  const IgemmDeviceLimits& d = device_limits();
  const size_t smem = igemm_smem_bytes<T>(s, NB * 16);
  if (smem > static_cast<size_t>(d.smem_optin)) return Status::ok();
  auto kernel = stem_igemm_kernel<T, NB>;
  // The shared memory opt-in and the blocks per SM, per device (the opt-in
  // is the device's) and shared memory size: asked of the driver once, not on
  // every launch (a layer launches its one size on every run).
  static std::mutex mutex;
  static std::map<std::pair<int, size_t>, int> blocks_per_sm;
  int device = 0;
  KILN_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  const std::pair<int, size_t> key{device, smem};
  int per_sm = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto known = blocks_per_sm.find(key);
    if (known != blocks_per_sm.end()) {
      per_sm = known->second;
    } else {
      // The opt-in is the kernel's maximum, so it covers every size asked for.
      if (smem > 48 * 1024) {
        KILN_CUDA_RETURN_IF_ERROR(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, d.smem_optin));
      }
      KILN_CUDA_RETURN_IF_ERROR(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kIgemmThreads, smem));
      blocks_per_sm.emplace(key, per_sm);
    }
  }
  if (per_sm < 1) return Status::ok();
  int64_t resident = static_cast<int64_t>(per_sm) * d.sms;
  if (g_test_hooks.max_blocks > 0) resident = std::min<int64_t>(resident, g_test_hooks.max_blocks);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(s.tiles, resident));
  kernel<<<grid, kIgemmThreads, smem, stream>>>(static_cast<const T*>(p.x), static_cast<const T*>(p.w),
                                                static_cast<const T*>(p.bias), static_cast<const T*>(p.z),
                                                static_cast<T*>(p.y), s, aligned16(p.y), p.act, p.lo, p.hi);
  launched = true;
  return last_launch_status("stem_igemm_kernel");
}

template <typename T>
Status launch_typed(const StemConvParams& p, cudaStream_t stream) {
  if (g_test_hooks.simple_only) return launch_simple<T>(p, stream);
  const IgemmShape s = igemm_shape(p.g);
  bool launched = false;
  switch (p.g.out_channels / 16) {
    case 1: KILN_RETURN_IF_ERROR((launch_igemm<T, 1>(p, s, stream, launched))); break;
    case 2: KILN_RETURN_IF_ERROR((launch_igemm<T, 2>(p, s, stream, launched))); break;
    case 3: KILN_RETURN_IF_ERROR((launch_igemm<T, 3>(p, s, stream, launched))); break;
    case 4: KILN_RETURN_IF_ERROR((launch_igemm<T, 4>(p, s, stream, launched))); break;
    case 5: KILN_RETURN_IF_ERROR((launch_igemm<T, 5>(p, s, stream, launched))); break;
    case 6: KILN_RETURN_IF_ERROR((launch_igemm<T, 6>(p, s, stream, launched))); break;
    case 7: KILN_RETURN_IF_ERROR((launch_igemm<T, 7>(p, s, stream, launched))); break;
    default: KILN_RETURN_IF_ERROR((launch_igemm<T, 8>(p, s, stream, launched))); break;
  }
  if (launched) return Status::ok();
  return launch_simple<T>(p, stream);
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

void set_stem_conv_test_hooks(const StemConvTestHooks& hooks) { g_test_hooks = hooks; }

const StemConvTestHooks& stem_conv_test_hooks() { return g_test_hooks; }

// Asked once per process, not on every launch (engines are built for one
// compute capability, so every device a process runs them on has it).
const IgemmDeviceLimits& igemm_device_limits() {
  static const IgemmDeviceLimits limits = [] {
    IgemmDeviceLimits l;
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
      return IgemmDeviceLimits{};
    return l;
  }();
  return limits;
}

Status launch_stem_conv(const StemConvParams& p, cudaStream_t stream) {
  if (!stem_conv_fits(p.dtype, p.g))
    return unsupported(
        "implicit-GEMM conv: dtype {} or geometry outside the kernel (f16/bf16, 2-D, group 1, stride 1, dilation 1, "
        "Cin % 16 == 0, Cin * KH * KW <= 1024, Cout % 16 == 0, Cout <= 128)",
        dtype_name(p.dtype));
  if (!aligned16(p.x) || !aligned16(p.w)) return invalid_argument("implicit-GEMM conv: x or w not 16-byte aligned");
  if (p.g.batch * p.g.out_size() == 0) return Status::ok();
  const int major = device_limits().major;
  if (major < 8) return unsupported("implicit-GEMM conv: compute capability {}.x (bf16 tensor cores need 8.0)", major);
  if (p.dtype == DType::kF16) return launch_typed<__half>(p, stream);
  return launch_typed<__nv_bfloat16>(p, stream);
}

}  // namespace kiln::cuda
