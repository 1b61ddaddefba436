// kiln::FusedConv's implicit-GEMM stem with its max pool fused (tactic
// "kiln_igemm_pool"). Unfused, ResNet-50's stem writes 112x112x64 and the
// pool reads it back (at batch 128, 205 MB each way) to write 56x56x64.
//
// stem_pool_kernel has stem_igemm_kernel's structure (stem_igemm.cuh):
// persistent blocks (8 warps here) stage the weights [Cout][K] in shared
// memory once, then loop over pool output tiles of pth x ptw pixels. For
// each, the block computes the convolution tile that covers the tile's pool
// windows, th = (pth - 1) * PS + PK rows x cw = (ptw - 1) * PS + PK columns
// (rounded up to 16-pixel fragments: 8 warps x 8 / NB fragments), from an
// input halo fetched with cp.async, double-buffered so the next tile's halo
// loads while this one computes. Neighbouring tiles' windows overlap by
// PK - PS convolution rows and columns, which both compute. The epilogue adds
// the bias, applies the activation and rounds to T into a shared tile
// [th * cw][Cout + 8]; then a thread per (pool pixel, 8 channels) takes the
// max over its window's positions inside the convolution's output (those
// outside are skipped, i.e. pool padding is -inf), in the CPU's order (the
// first position, then any that is greater), and stores 16 bytes.
//
// ResNet-50 (4x4 over 16 channels to 64, Relu, MaxPool 3x3/2 pad 1): 7 x 7
// pool pixels per tile from a 15 x 15 convolution tile computed as 16 rows of
// one 16-pixel fragment (1.31x the convolution's work), 64 tiles per image;
// about 104 KB of shared memory, 2 blocks per SM.
#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/kernels/conv_activation.cuh"
#include "backends/cuda/kernels/stem_conv_pool.cuh"
#include "backends/cuda/kernels/stem_igemm.cuh"

namespace kiln::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kPad = kIgemmPad;

struct StemPoolShape {
  IgemmConv conv;  // the convolution and the tile's halo
  int oh, ow;      // the convolution's output
  int pkh, pkw, psh, psw, pph, ppw;
  int poh, pow;  // the pool's output
  int tws;       // the convolution tile: th rows x tws fragments of 16 columns
  int th, cw;    // cw = 16 * tws
  int pth, ptw;  // the pool tile
  int tiles;
  FastDiv by_tiles_w, by_tiles_h, by_ptw, by_chunks_out;
};

// Tile t's image, first pool row and column, and its convolution tile's
// first row and column (tiles run along W, then H, then N).
struct PoolTile {
  int n, py0, px0, cr0, cc0;
};
__device__ __forceinline__ PoolTile pool_tile(const StemPoolShape& s, int t) {
  uint32_t tx, ty;
  const uint32_t r = s.by_tiles_w.divmod(t, tx);
  PoolTile p;
  p.n = static_cast<int>(s.by_tiles_h.divmod(r, ty));
  p.py0 = static_cast<int>(ty) * s.pth, p.px0 = static_cast<int>(tx) * s.ptw;
  p.cr0 = p.py0 * s.psh - s.pph, p.cc0 = p.px0 * s.psw - s.ppw;
  return p;
}

template <typename T>
__device__ __forceinline__ void load_tile_halo(const T* __restrict__ x, const StemPoolShape& s, int t, T* dst) {
  const PoolTile p = pool_tile(s, t);
  igemm_load_halo<T, kThreads>(x, s.conv, p.n, p.cr0 - s.conv.ph, p.cc0 - s.conv.pw, dst);
}

// Shared memory: w [Cout][ks], bias [Cout] float, 2 halos, the convolution
// tile [th * cw][Cout + kPad].
template <typename T>
size_t pool_smem_bytes(const StemPoolShape& s, int cout) {
  return sizeof(T) * (static_cast<size_t>(cout) * s.conv.ks + 2 * static_cast<size_t>(s.conv.halo) +
                      static_cast<size_t>(s.th) * s.cw * (cout + kPad)) +
         sizeof(float) * cout;
}

// The warp's fragments + bias, the activation kAct, rounded to T into the
// convolution tile: the lane holds pixels lane / 4 and + 8 of fragment i,
// channels 8 * j + 2 * (lane % 4) + 0, 1 (one 32-bit store per pair; rows of
// Cout + 8 halves put a quarter-warp's pairs on distinct banks).
template <typename T, int NB, EpilogueActivation kAct>
__device__ __forceinline__ void stage_conv_tile(const float (&acc)[8 / NB][2 * NB][4], const float* sbias, T* ctile,
                                                const StemPoolShape& s, float lo, float hi) {
  constexpr int kMa = 8 / NB;
  constexpr int kCs = NB * 16 + kPad;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int i = 0; i < kMa; ++i) {
    const int f = warp * kMa + i, fr = f / s.tws, fc = (f - fr * s.tws) * 16;
#pragma unroll
    for (int j = 0; j < 2 * NB; ++j) {
      const int c = j * 8 + (lane % 4) * 2;
      const float2 b = *reinterpret_cast<const float2*>(sbias + c);
#pragma unroll
      for (int hlf = 0; hlf < 2; ++hlf) {
        const int px = fr * s.cw + fc + lane / 4 + hlf * 8;
        const float v0 = acc[i][j][2 * hlf] + b.x, v1 = acc[i][j][2 * hlf + 1] + b.y;
        *reinterpret_cast<uint32_t*>(ctile + px * kCs + c) =
            pack<T>(conv_activate(v0, kAct, lo, hi), conv_activate(v1, kAct, lo, hi));
      }
    }
  }
}

// The pool tile from the convolution tile: a thread per (pool pixel, 8
// channels), consecutive threads on consecutive channels of a pixel.
template <typename T, int NB>
__device__ __forceinline__ void pool_tile_store(const T* ctile, T* __restrict__ y, const StemPoolShape& s,
                                                const PoolTile& p, bool vec_out) {
  constexpr int kCout = NB * 16;
  constexpr int kCs = kCout + kPad;
  constexpr int kChunks = kCout / 8;
  using P = Pack<T, 8>;
  for (int q = threadIdx.x; q < s.pth * s.ptw * kChunks; q += kThreads) {
    uint32_t chunk, px;
    const uint32_t py = s.by_ptw.divmod(s.by_chunks_out.divmod(q, chunk), px);
    const int gy = p.py0 + static_cast<int>(py), gx = p.px0 + static_cast<int>(px);
    if (gy >= s.poh || gx >= s.pow) continue;
    P best;
    bool found = false;
    for (int i = 0; i < s.pkh; ++i) {
      const int cr = gy * s.psh - s.pph + i;
      if (cr < 0 || cr >= s.oh) continue;
      for (int j = 0; j < s.pkw; ++j) {
        const int cc = gx * s.psw - s.ppw + j;
        if (cc < 0 || cc >= s.ow) continue;
        const P v = *reinterpret_cast<const P*>(ctile + ((cr - p.cr0) * s.cw + cc - p.cc0) * kCs + chunk * 8);
        if (!found) {
          best = v, found = true;
          continue;
        }
#pragma unroll
        for (int e = 0; e < 8; ++e)
          if (to_float(v.v[e]) > to_float(best.v[e])) best.v[e] = v.v[e];
      }
    }
    T* yp = y + ((static_cast<size_t>(p.n) * s.poh + gy) * s.pow + gx) * kCout + chunk * 8;
    if (vec_out) {
      *reinterpret_cast<P*>(yp) = best;
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) yp[e] = best.v[e];
    }
  }
}

// NB = Cout / 16; 8 / NB fragments of 16 pixels per warp. `vec_out`: y is
// 16-byte aligned. Each block: gridDim.x-strided tiles from blockIdx.x.
template <typename T, int NB>
__global__ void __launch_bounds__(kThreads)
    stem_pool_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias, T* __restrict__ y,
                     StemPoolShape s, bool vec_out, EpilogueActivation act, float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 mma and cp.async need sm_80: launch_stem_conv_pool declines older devices
#else
  constexpr int kMa = 8 / NB;
  constexpr int kCout = NB * 16;
  extern __shared__ __align__(16) unsigned char smem[];
  const IgemmConv& cv = s.conv;
  T* sw = reinterpret_cast<T*>(smem);
  float* sbias = reinterpret_cast<float*>(sw + kCout * cv.ks);
  T* halos = reinterpret_cast<T*>(sbias + kCout);
  T* ctile = halos + 2 * cv.halo;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  // The weights once (in the first cp.async group, with the first halo).
  igemm_stage_weights<T, kCout, kThreads>(w, bias, cv, sw, sbias);
  int a_off[kMa];
#pragma unroll
  for (int i = 0; i < kMa; ++i) {
    const int f = warp * kMa + i, fr = f / s.tws, fc = (f - fr * s.tws) * 16;
    a_off[i] = igemm_a_offset(cv, fr, fc, lane);
  }
  const int b_off = igemm_b_offset(cv, lane);

  int t = blockIdx.x, buf = 0;
  if (t < s.tiles) load_tile_halo(x, s, t, halos);
  cp_async_commit();
  for (; t < s.tiles; t += gridDim.x, buf ^= 1) {
    const int next = t + gridDim.x;
    if (next < s.tiles) load_tile_halo(x, s, next, halos + (buf ^ 1) * cv.halo);
    cp_async_commit();  // possibly empty: the wait below is the same every iteration
    cp_async_wait<1>();
    // This tile's halo (and the weights, bias) visible to every warp; every
    // warp done pooling the last tile, so the convolution tile may be
    // rewritten, and done with halo buf ^ 1, which the loads above refill.
    __syncthreads();

    float acc[kMa][2 * NB][4];
    igemm_mma<T, NB, kMa>(halos + buf * cv.halo, sw, a_off, b_off, cv, acc);
    with_activation(act, [&](auto a) { stage_conv_tile<T, NB, decltype(a)::value>(acc, sbias, ctile, s, lo, hi); });
    __syncthreads();  // the whole convolution tile before any window reads it
    pool_tile_store<T, NB>(ctile, y, s, pool_tile(s, t), vec_out);
  }
#endif
}

// The tile for the layer: 8 warps x 8 / NB fragments as th rows x tws
// fragments, the shape that computes the fewest convolution pixels over the
// whole output (the fewer tiles on a tie).
StemPoolShape pool_shape(const WindowGeometry& g, const WindowGeometry& pg) {
  StemPoolShape s;
  IgemmConv& c = s.conv;
  c.h = static_cast<int>(g.in[1]), c.w = static_cast<int>(g.in[2]);
  c.cin = static_cast<int>(g.in_channels);
  c.kh = static_cast<int>(g.kernel[1]), c.kw = static_cast<int>(g.kernel[2]);
  c.ph = static_cast<int>(g.pad_begin[1]), c.pw = static_cast<int>(g.pad_begin[2]);
  s.oh = static_cast<int>(g.out[1]), s.ow = static_cast<int>(g.out[2]);
  s.pkh = static_cast<int>(pg.kernel[1]), s.pkw = static_cast<int>(pg.kernel[2]);
  s.psh = static_cast<int>(pg.stride[1]), s.psw = static_cast<int>(pg.stride[2]);
  s.pph = static_cast<int>(pg.pad_begin[1]), s.ppw = static_cast<int>(pg.pad_begin[2]);
  s.poh = static_cast<int>(pg.out[1]), s.pow = static_cast<int>(pg.out[2]);
  const int frags = kWarps * (8 / static_cast<int>(g.out_channels / 16));
  int64_t best = -1, best_tiles = 0;
  for (int tws = 1; tws <= frags; tws *= 2) {
    const int th = frags / tws, cw = 16 * tws;
    if (th < s.pkh) break;
    const int pth = (th - s.pkh) / s.psh + 1, ptw = (cw - s.pkw) / s.psw + 1;
    const int64_t tiles = static_cast<int64_t>((s.poh + pth - 1) / pth) * ((s.pow + ptw - 1) / ptw);
    const int64_t work = tiles * frags;
    if (best < 0 || work < best || (work == best && tiles < best_tiles)) {
      best = work, best_tiles = tiles;
      s.tws = tws, s.th = th, s.cw = cw, s.pth = pth, s.ptw = ptw;
    }
  }
  set_igemm_halo(c, s.th, s.cw);
  const int tiles_w = (s.pow + s.ptw - 1) / s.ptw, tiles_h = (s.poh + s.pth - 1) / s.pth;
  s.tiles = static_cast<int>(g.batch) * tiles_w * tiles_h;
  s.by_tiles_w = FastDiv(static_cast<uint32_t>(tiles_w));
  s.by_tiles_h = FastDiv(static_cast<uint32_t>(tiles_h));
  s.by_ptw = FastDiv(static_cast<uint32_t>(s.ptw));
  s.by_chunks_out = FastDiv(static_cast<uint32_t>(g.out_channels / 8));
  return s;
}

// Launches stem_pool_kernel<T, NB> on a grid of resident blocks.
template <typename T, int NB>
Status launch_pool_kernel(const StemConvPoolParams& p, const StemPoolShape& s, cudaStream_t stream) {
  const IgemmDeviceLimits& d = igemm_device_limits();
  const size_t smem = pool_smem_bytes<T>(s, NB * 16);
  if (smem > static_cast<size_t>(d.smem_optin))
    return unsupported("stem conv + max pool: {} bytes of shared memory, the device has {}", smem, d.smem_optin);
  auto kernel = stem_pool_kernel<T, NB>;
  // The opt-in and the blocks per SM, per device and shared memory size,
  // asked of the driver once (a layer launches its one size on every run).
  static std::mutex mutex;
  static std::map<std::pair<int, size_t>, int> blocks_per_sm;
  int device = 0;
  KILN_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  int per_sm = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto known = blocks_per_sm.find({device, smem});
    if (known != blocks_per_sm.end()) {
      per_sm = known->second;
    } else {
      if (smem > 48 * 1024)
        KILN_CUDA_RETURN_IF_ERROR(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, d.smem_optin));
      KILN_CUDA_RETURN_IF_ERROR(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem));
      blocks_per_sm.emplace(std::make_pair(device, smem), per_sm);
    }
  }
  if (per_sm < 1) return unsupported("stem conv + max pool: no block of {} bytes fits an SM", smem);
  int64_t resident = static_cast<int64_t>(per_sm) * d.sms;
  if (stem_conv_test_hooks().max_blocks > 0) resident = std::min<int64_t>(resident, stem_conv_test_hooks().max_blocks);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(s.tiles, resident));
  kernel<<<grid, kThreads, smem, stream>>>(static_cast<const T*>(p.x), static_cast<const T*>(p.w),
                                           static_cast<const T*>(p.bias), static_cast<T*>(p.y), s, aligned16(p.y),
                                           p.act, p.lo, p.hi);
  return last_launch_status("stem_pool_kernel");
}

template <typename T>
Status launch_typed(const StemConvPoolParams& p, cudaStream_t stream) {
  const StemPoolShape s = pool_shape(p.g, p.pool);
  switch (p.g.out_channels / 16) {
    case 1: return launch_pool_kernel<T, 1>(p, s, stream);
    case 2: return launch_pool_kernel<T, 2>(p, s, stream);
    case 4: return launch_pool_kernel<T, 4>(p, s, stream);
    default: return launch_pool_kernel<T, 8>(p, s, stream);
  }
}

}  // namespace

bool stem_conv_pool_fits(DType dtype, const WindowGeometry& g, const WindowGeometry& pool) {
  if (!stem_conv_fits(dtype, g)) return false;
  // 8 / NB fragments a warp: NB divides 8.
  const int64_t nb = g.out_channels / 16;
  if (nb != 1 && nb != 2 && nb != 4 && nb != 8) return false;
  if (pool.batch != g.batch || pool.in_channels != g.out_channels || pool.out_channels != g.out_channels) return false;
  if (pool.in[0] != 1 || pool.out[0] != 1 || pool.kernel[0] != 1) return false;
  for (int a = 1; a < 3; ++a) {
    const int64_t k = pool.kernel[a], st = pool.stride[a];
    if (pool.in[a] != g.out[a] || pool.dilation[a] != 1 || k < 1 || k > 3 || st < 1 || st > 2) return false;
    if (pool.pad_begin[a] < 0 || pool.pad_begin[a] >= k || pool.pad_end[a] < 0 || pool.pad_end[a] >= k) return false;
    if (pool.out[a] != (pool.in[a] + pool.pad_begin[a] + pool.pad_end[a] - k) / st + 1 || pool.out[a] < 1) return false;
  }
  return true;
}

Status launch_stem_conv_pool(const StemConvPoolParams& p, cudaStream_t stream) {
  if (!stem_conv_pool_fits(p.dtype, p.g, p.pool))
    return unsupported(
        "stem conv + max pool: dtype {} or geometry outside the kernel (the implicit-GEMM conv's, Cout 16, 32, 64 or "
        "128, a 2-D max pool of kernel <= 3, stride <= 2, pads below the kernel over the conv's output)",
        dtype_name(p.dtype));
  if (p.z) return invalid_argument("stem conv + max pool: a pooled convolution has no residual");
  if (!aligned16(p.x) || !aligned16(p.w)) return invalid_argument("stem conv + max pool: x or w not 16-byte aligned");
  if (p.pool.batch * p.pool.out_size() == 0) return Status::ok();
  const int major = igemm_device_limits().major;
  if (major < 8) return unsupported("stem conv + max pool: compute capability {}.x (needs 8.0)", major);
  if (p.dtype == DType::kF16) return launch_typed<__half>(p, stream);
  return launch_typed<__nv_bfloat16>(p, stream);
}

}  // namespace kiln::cuda
