// kiln.ExpandDepthwiseConv's fused kernel (tactic "kiln_expand_dw").
//
// Unfused, an inverted-residual block writes its expanded tensor (E = 6C
// channels, the block's largest) and reads it back K * K times through L1/L2:
// MobileNetV2 at batch 128 moves ~2.3 GB that way. Here the expanded tensor
// lives only in shared memory, a slice of CB expanded channels at a time.
//
// Persistent blocks of 8 warps (a grid of SMs x resident blocks) loop over
// work units: (image, output tile of TH x TW, chunk of `spu` slices); the
// chunk is the fastest-moving index, so blocks running at once share a tile's
// input through L2. Per unit:
//   1. cp.async the input halo, the (TH - 1) * S + K by (TW - 1) * S + K
//      pixels x C channels the tile reads, but only the part inside the
//      image (a rectangle, stored as consecutive rows of C + pad halves): the
//      depthwise pads the *expanded* tensor with zeros, and act1(b1) is not
//      0, so the halo outside the image must become exact zeros of the
//      expanded slice, never values computed from zero-filled inputs. Those
//      positions of the slice buffer are zeroed once per unit instead.
//   2. For each slice of CB expanded channels: the GEMM halo-pixels x C by
//      C x CB with mma.sync m16n8k16 (A by ldmatrix from the halo, B by
//      ldmatrix from W1's rows of the slice, double-buffered: slice j + 1's
//      rows load with cp.async while slice j computes), + b1, act1, rounded
//      to T (as the unfused pair stores its expanded tensor) into the slice
//      buffer `e` at each pixel's halo position; __syncthreads; the depthwise
//      over `e` for the tile's outputs x CB channels, a thread per (pixel, 8
//      channels), float sums over the taps in kiln_dw's order, + b2, act2,
//      one rounding, 16-byte stores of y.
// Rows are padded by 8 halves (halo and W1 rows: C rounded up to 16, + 8;
// slice pixels: CB + 8), which puts the 8 rows of each ldmatrix and each
// group of 8 lanes' epilogue stores in distinct banks. C not a multiple of
// 16 (24, 40) is padded with zeros in both the halo and W1, so the GEMM's K
// steps of 16 add nothing for them.
//
// Barriers per slice: (B) after the cp.async wait (slice j's W1 rows and the
// halo visible; the previous depthwise is done with `e` and with the buffers
// slice j + 1 refills) and (C) between the GEMM's stores to `e` and the
// depthwise's reads; plus (A) at a unit's start (the previous unit's
// depthwise is done with `e` before it is zeroed and the halo refilled).
// W2's slice (transposed to [tap][CB] and widened to float, so the
// depthwise converts only its expanded values) and both biases (as floats)
// are loaded into registers before slice j's GEMM and stored into
// the other buffer after it, hiding the loads behind the GEMM.
#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/conv_activation.cuh"
#include "backends/cuda/kernels/expand_depthwise_conv.cuh"
#include "backends/cuda/kernels/fast_div.h"
#include "backends/cuda/kernels/mma_sm80.cuh"

namespace kiln::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

// The plan in 32-bit ints for the device (plan_expand_dw bounds them).
struct EdShape {
  int h, w, c, e, oh, ow, s, pt, pl;
  int ck, cks, cbs, th, tw, hr, hc;
  int slices, spu, units;
  int off_w1, off_e, off_w2, off_bias, off_pix;  // bytes into shared memory
  FastDiv by_chunks, by_tiles_w, by_tiles_h;     // a unit's index into (chunk, tile column, tile row, image)
  FastDiv by_tw;                                 // a depthwise item's pixel into (row, column) of the tile
  FastDiv by_q;                                  // ck / 8: a row's 16-byte pieces
};

struct EdActivations {
  EpilogueActivation act1, act2;
  float lo1, hi1, lo2, hi2;
};

// W2's slice (transposed) and the biases of one slice, held in registers
// between their loads and their stores into shared memory.
template <typename T, int CB, int K>
struct SliceStage {
  static constexpr int kTaps = K * K;
  static constexpr int kPer = (kTaps * CB + kThreads - 1) / kThreads;
  float w2[kPer];
  float b1 = 0.f, b2 = 0.f;

  // Element i = tid + r * kThreads of [tap][CB] is w2[(e0 + i % CB) * taps + i / CB].
  __device__ __forceinline__ void load(const T* __restrict__ w2g, const T* __restrict__ b1g, const T* __restrict__ b2g,
                                       int e0) {
#pragma unroll
    for (int r = 0; r < kPer; ++r) {
      const int i = threadIdx.x + r * kThreads;
      if (i < kTaps * CB) w2[r] = to_float(w2g[static_cast<size_t>(e0 + i % CB) * kTaps + i / CB]);
    }
    if (threadIdx.x < CB) {
      b1 = b1g ? to_float(b1g[e0 + threadIdx.x]) : 0.f;
      b2 = b2g ? to_float(b2g[e0 + threadIdx.x]) : 0.f;
    }
  }
  __device__ __forceinline__ void store(float* w2s, float* bias) const {
#pragma unroll
    for (int r = 0; r < kPer; ++r) {
      const int i = threadIdx.x + r * kThreads;
      if (i < kTaps * CB) w2s[i] = w2[r];
    }
    if (threadIdx.x < CB) bias[threadIdx.x] = b1, bias[CB + threadIdx.x] = b2;
  }
};

// W1's rows e0 .. e0 + CB into `dst` ([CB][cks]), zeros past C.
template <typename T, int CB>
__device__ __forceinline__ void load_w1(const T* __restrict__ w1, const EdShape& s, int e0, T* dst) {
  const int cq = s.c / 8;
  for (int i = threadIdx.x; i < CB * (s.ck / 8); i += kThreads) {
    uint32_t q;
    const int row = static_cast<int>(s.by_q.divmod(i, q));
    const bool valid = static_cast<int>(q) < cq;
    cp_async16(dst + row * s.cks + q * 8, valid ? w1 + static_cast<size_t>(e0 + row) * s.c + q * 8 : w1, valid);
  }
}

template <typename T, int CB, int K>
__global__ void __launch_bounds__(kThreads, 2)
    expand_dw_kernel(const T* __restrict__ x, const T* __restrict__ w1, const T* __restrict__ b1,
                     const T* __restrict__ w2, const T* __restrict__ b2, T* __restrict__ y, EdShape s,
                     EdActivations acts) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 mma and cp.async need sm_80: the launcher declines older devices
#else
  constexpr int kNg = CB / 16;  // 16-channel groups of a slice (a GEMM item's N)
  constexpr int kNv = CB / 8;   // 8-channel vectors of a slice (a depthwise item's channels)
  constexpr int kTaps = K * K;
  using P = Pack<T, 8>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* halo = reinterpret_cast<T*>(smem);
  T* w1s = reinterpret_cast<T*>(smem + s.off_w1);
  T* es = reinterpret_cast<T*>(smem + s.off_e);
  float* w2s = reinterpret_cast<float*>(smem + s.off_w2);
  float* bs = reinterpret_cast<float*>(smem + s.off_bias);
  int16_t* pix = reinterpret_cast<int16_t*>(smem + s.off_pix);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;

  for (int u = blockIdx.x; u < s.units; u += gridDim.x) {
    uint32_t chunk, tcol, trow;
    const uint32_t rest = s.by_tiles_w.divmod(s.by_chunks.divmod(u, chunk), tcol);
    const int n = static_cast<int>(s.by_tiles_h.divmod(rest, trow));
    const int oh0 = static_cast<int>(trow) * s.th, ow0 = static_cast<int>(tcol) * s.tw;
    const int th_live = min(s.th, s.oh - oh0), tw_live = min(s.tw, s.ow - ow0);
    // The halo the live outputs read, and its rectangle inside the image.
    const int hr_need = (th_live - 1) * s.s + K, hc_need = (tw_live - 1) * s.s + K;
    const int ih0 = oh0 * s.s - s.pt, iw0 = ow0 * s.s - s.pl;
    const int r0 = max(0, -ih0), c0 = max(0, -iw0);
    const int rh = max(0, min(hr_need, s.h - ih0) - r0), rw = max(0, min(hc_need, s.w - iw0) - c0);
    const int m = rh * rw;  // the GEMM's rows
    const int slice0 = static_cast<int>(chunk) * s.spu, nslices = min(s.spu, s.slices - slice0);

    __syncthreads();  // (A)
    {
      const int cq = s.c / 8, nq = s.ck / 8;
      const T* xn = x + static_cast<size_t>(n) * s.h * s.w * s.c;
      for (int rr = warp; rr < rh; rr += kWarps) {
        const T* xrow = xn + (static_cast<size_t>(ih0 + r0 + rr) * s.w + (iw0 + c0)) * s.c;
        T* srow = halo + rr * rw * s.cks;
        for (int i = lane; i < rw * nq; i += 32) {
          uint32_t q;
          const int cc = static_cast<int>(s.by_q.divmod(i, q));
          const bool valid = static_cast<int>(q) < cq;
          cp_async16(srow + cc * s.cks + q * 8, valid ? xrow + cc * s.c + q * 8 : x, valid);
        }
      }
    }
    load_w1<T, CB>(w1, s, slice0 * CB, w1s);
    cp_async_commit();
    {
      SliceStage<T, CB, K> first;
      first.load(w2, b1, b2, slice0 * CB);
      first.store(w2s, bs);
    }
    for (int i = tid; i < m; i += kThreads) {
      const int rr = i / rw, cc = i - rr * rw;
      pix[i] = static_cast<int16_t>((r0 + rr) * s.hc + c0 + cc);
    }
    if (m != hr_need * hc_need) {  // a border tile: the slice is 0 outside the image
      P zero;
#pragma unroll
      for (int v = 0; v < 8; ++v) zero.v[v] = from_float<T>(0.f);
      for (int i = tid; i < hr_need * hc_need * kNv; i += kThreads) {
        const int p = i / kNv, v = i - p * kNv;
        const int hr = p / hc_need, hc = p - hr * hc_need;
        if (hr >= r0 && hr < r0 + rh && hc >= c0 && hc < c0 + rw) continue;
        *reinterpret_cast<P*>(es + (hr * s.hc + hc) * s.cbs + v * 8) = zero;
      }
    }

    for (int j = 0; j < nslices; ++j) {
      const int buf = j & 1, e0 = (slice0 + j) * CB;
      cp_async_wait<0>();
      __syncthreads();  // (B)
      const bool more = j + 1 < nslices;
      if (more) {
        load_w1<T, CB>(w1, s, e0 + CB, w1s + (buf ^ 1) * CB * s.cks);
        cp_async_commit();
      }
      SliceStage<T, CB, K> next;
      if (more) next.load(w2, b1, b2, e0 + CB);

      // The expansion: items of 16 halo pixels x 16 channels over the warps.
      const T* wb = w1s + buf * CB * s.cks;
      const float* b1s = bs + buf * 2 * CB;
      const int items = (m + 15) / 16 * kNg;
      for (int it = warp; it < items; it += kWarps) {
        const int mf = it / kNg, ng = it - mf * kNg;
        float acc[2][4];
#pragma unroll
        for (int t = 0; t < 2; ++t)
#pragma unroll
          for (int q = 0; q < 4; ++q) acc[t][q] = 0.f;
        // ldmatrix rows: A's pixel lane % 16, channels (lane / 16) * 8; B's
        // channel (lane % 8) + (lane / 16) * 8 of the group, K offset ((lane / 8) % 2) * 8.
        const T* arow = halo + (mf * 16 + lane % 16) * s.cks + (lane / 16) * 8;
        const T* brow = wb + (ng * 16 + lane % 8 + (lane / 16) * 8) * s.cks + ((lane / 8) % 2) * 8;
        for (int k0 = 0; k0 < s.ck; k0 += 16) {
          uint32_t a[4], b[4];
          ldmatrix_x4(a, arow + k0);
          ldmatrix_x4(b, brow + k0);
          mma_16816<T>(acc[0], a, b[0], b[1]);
          mma_16816<T>(acc[1], a, b[2], b[3]);
        }
        // The lane holds rows lane / 4 and + 8, channels 8 t + 2 (lane % 4) + 0, 1.
        with_activation(acts.act1, [&](auto act) {
#pragma unroll
          for (int hlf = 0; hlf < 2; ++hlf) {
            const int row = mf * 16 + lane / 4 + hlf * 8;
            if (row >= m) continue;
            T* ep = es + pix[row] * s.cbs;
#pragma unroll
            for (int t = 0; t < 2; ++t) {
              const int c = ng * 16 + t * 8 + (lane % 4) * 2;
              const float v0 = conv_activate(acc[t][2 * hlf] + b1s[c], decltype(act)::value, acts.lo1, acts.hi1);
              const float v1 =
                  conv_activate(acc[t][2 * hlf + 1] + b1s[c + 1], decltype(act)::value, acts.lo1, acts.hi1);
              *reinterpret_cast<uint32_t*>(ep + c) = pack<T>(v0, v1);
            }
          }
        });
      }
      if (more) next.store(w2s + (buf ^ 1) * kTaps * CB, bs + (buf ^ 1) * 2 * CB);
      __syncthreads();  // (C)

      // The depthwise: a thread per (output pixel of the tile, 8 channels).
      const float* w2b = w2s + buf * kTaps * CB;
      const float* b2s = bs + buf * 2 * CB + CB;
      for (int it = tid; it < s.th * s.tw * kNv; it += kThreads) {
        const int p = it / kNv, v = it - p * kNv;
        uint32_t ox;
        const int oy = static_cast<int>(s.by_tw.divmod(p, ox));
        if (oy >= th_live || static_cast<int>(ox) >= tw_live) continue;
        const T* eb = es + (oy * s.s * s.hc + static_cast<int>(ox) * s.s) * s.cbs + v * 8;
        const float* wv8 = w2b + v * 8;
        float acc[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] = 0.f;
#pragma unroll
        for (int ky = 0; ky < K; ++ky) {
#pragma unroll
          for (int kx = 0; kx < K; ++kx) {
            const P ev = *reinterpret_cast<const P*>(eb + (ky * s.hc + kx) * s.cbs);
            const float4* wp = reinterpret_cast<const float4*>(wv8 + (ky * K + kx) * CB);
            const float4 wa = wp[0], wb4 = wp[1];
            const float wv[8] = {wa.x, wa.y, wa.z, wa.w, wb4.x, wb4.y, wb4.z, wb4.w};
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[i] += to_float(ev.v[i]) * wv[i];
          }
        }
        P out;
        with_activation(acts.act2, [&](auto act) {
#pragma unroll
          for (int i = 0; i < 8; ++i)
            out.v[i] = from_float<T>(conv_activate(acc[i] + b2s[v * 8 + i], decltype(act)::value, acts.lo2, acts.hi2));
        });
        const size_t at = ((static_cast<size_t>(n) * s.oh + oh0 + oy) * s.ow + ow0 + ox) * s.e + e0 + v * 8;
        *reinterpret_cast<P*>(y + at) = out;
      }
    }
  }
#endif
}

ExpandDepthwiseTestHooks g_test_hooks;

struct DeviceLimits {
  int major = 0, sms = 0;
};

// Asked once per process (engines are built for one compute capability).
const DeviceLimits& device_limits() {
  static const DeviceLimits limits = [] {
    DeviceLimits l;
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
      return DeviceLimits{};
    return l;
  }();
  return limits;
}

EdShape device_shape(const ExpandDwLayer& l, const ExpandDwPlan& p) {
  EdShape s;
  s.h = static_cast<int>(l.h), s.w = static_cast<int>(l.w), s.c = static_cast<int>(l.c), s.e = static_cast<int>(l.e);
  s.oh = static_cast<int>(l.oh()), s.ow = static_cast<int>(l.ow()), s.s = static_cast<int>(l.s);
  s.pt = static_cast<int>(l.pt), s.pl = static_cast<int>(l.pl);
  s.ck = p.ck, s.cks = p.cks, s.cbs = p.cbs, s.th = p.th, s.tw = p.tw, s.hr = p.hr, s.hc = p.hc;
  s.slices = p.slices, s.spu = p.spu, s.units = static_cast<int>(p.units);
  s.off_w1 = static_cast<int>(p.off_w1), s.off_e = static_cast<int>(p.off_e), s.off_w2 = static_cast<int>(p.off_w2);
  s.off_bias = static_cast<int>(p.off_bias), s.off_pix = static_cast<int>(p.off_pix);
  s.by_chunks = FastDiv(static_cast<uint32_t>(p.chunks));
  s.by_tiles_w = FastDiv(static_cast<uint32_t>(p.tiles_w));
  s.by_tiles_h = FastDiv(static_cast<uint32_t>(p.tiles_h));
  s.by_tw = FastDiv(static_cast<uint32_t>(p.tw));
  s.by_q = FastDiv(static_cast<uint32_t>(p.ck / 8));
  return s;
}

// The blocks of `kernel` resident per SM with `smem` bytes, asked of the
// driver once per kernel and size (a layer launches its one size every run).
Expected<int> blocks_per_sm(const void* kernel, size_t smem) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, size_t>, int> known;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(kernel, smem);
  if (auto it = known.find(key); it != known.end()) return it->second;
  // Opt in to the plan's most, so every size a layer asks for is covered.
  KILN_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kExpandDwMaxSmem)));
  int per_sm = 0;
  KILN_CUDA_RETURN_IF_ERROR(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem));
  known.emplace(key, per_sm);
  return per_sm;
}

template <typename T, int CB, int K>
Status launch_typed(const ExpandDepthwiseParams& p, const ExpandDwPlan& plan, cudaStream_t stream) {
  auto kernel = expand_dw_kernel<T, CB, K>;
  KILN_ASSIGN_OR_RETURN(int per_sm, blocks_per_sm(reinterpret_cast<const void*>(kernel), plan.smem_bytes));
  if (per_sm < 1)
    return internal_error("expand-depthwise conv: {} bytes of shared memory fit no block", plan.smem_bytes);
  int64_t resident = int64_t(per_sm) * std::max(device_limits().sms, 1);
  if (g_test_hooks.max_blocks > 0) resident = std::min<int64_t>(resident, g_test_hooks.max_blocks);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(plan.units, resident));
  const EdActivations acts{p.act1, p.act2, p.lo1, p.hi1, p.lo2, p.hi2};
  kernel<<<grid, kThreads, plan.smem_bytes, stream>>>(
      static_cast<const T*>(p.x), static_cast<const T*>(p.w1), static_cast<const T*>(p.b1), static_cast<const T*>(p.w2),
      static_cast<const T*>(p.b2), static_cast<T*>(p.y), device_shape(p.layer, plan), acts);
  return last_launch_status("expand_dw_kernel");
}

template <typename T, int CB>
Status launch_k(const ExpandDepthwiseParams& p, const ExpandDwPlan& plan, cudaStream_t stream) {
  switch (p.layer.k) {
    case 3: return launch_typed<T, CB, 3>(p, plan, stream);
    case 5: return launch_typed<T, CB, 5>(p, plan, stream);
    default: return launch_typed<T, CB, 7>(p, plan, stream);
  }
}

template <typename T>
Status launch_cb(const ExpandDepthwiseParams& p, const ExpandDwPlan& plan, cudaStream_t stream) {
  return plan.cb == 48 ? launch_k<T, 48>(p, plan, stream) : launch_k<T, 32>(p, plan, stream);
}

ExpandDwLayer checked_layer(const ExpandDepthwiseParams& p) {
  ExpandDwLayer l = p.layer;
  l.f16_or_bf16 = p.dtype == DType::kF16 || p.dtype == DType::kBF16;
  return l;
}

}  // namespace

bool expand_depthwise_conv_runs(const ExpandDepthwiseParams& p) {
  return plan_expand_dw(checked_layer(p)).has_value() && aligned16(p.x) && aligned16(p.w1) && aligned16(p.y);
}

void set_expand_depthwise_test_hooks(const ExpandDepthwiseTestHooks& hooks) { g_test_hooks = hooks; }

Status launch_expand_depthwise_conv(const ExpandDepthwiseParams& p, cudaStream_t stream) {
  const DeviceLimits& d = device_limits();
  const std::optional<ExpandDwPlan> plan = plan_expand_dw(checked_layer(p), d.sms > 0 ? d.sms : 132);
  if (!plan)
    return unsupported(
        "expand-depthwise conv: dtype {} or geometry outside the kernel (f16/bf16, square 3/5/7 kernel, stride 1 or "
        "2, C % 8 == 0 up to 512, E % 32 == 0)",
        dtype_name(p.dtype));
  if (!aligned16(p.x) || !aligned16(p.w1) || !aligned16(p.y))
    return invalid_argument("expand-depthwise conv: x, w1 or y not 16-byte aligned");
  if (d.major < 8) return unsupported("expand-depthwise conv: compute capability {}.x (needs 8.0)", d.major);
  if (p.dtype == DType::kF16) return launch_cb<__half>(p, *plan, stream);
  return launch_cb<__nv_bfloat16>(p, *plan, stream);
}

}  // namespace kiln::cuda
