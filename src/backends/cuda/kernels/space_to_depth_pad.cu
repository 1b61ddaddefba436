// kiln.SpaceToDepthPad: Y[n, hb, wb, (ph * 2 + pw) * CC + c] =
// X[n, c, 2 * hb + ph - top, 2 * wb + pw - left], cast, 0 outside X and for
// c >= C. A thread writes one pack of V consecutive output channels of one
// block (V = 16 bytes of Y where they divide 4 * CC, as for every even CC in
// 16 bits and every CC in f32; else 4 elements; 1 where Y is misaligned),
// finding its block and first channel with three 32-bit divisions and
// stepping through the rest. Adjacent threads take adjacent wb, so a warp's
// loads of one (c, ph, pw) read every other element of 64 consecutive ones
// in a row of X (the pw = 1 load of the same thread reads the rest from L1),
// and its stores cover 32 consecutive blocks. Every offset fits in 32 bits
// (Y covers X and holds fewer than 2^31 elements).
#include <climits>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/space_to_depth_pad.cuh"

namespace kiln::cuda {
namespace {

struct Geometry {
  int c, h, w, cc, top, left;
  unsigned hb, wb, groups;  // groups: packs per block, 4 * cc / V
};

template <typename Out, typename In>
__device__ __forceinline__ Out convert(In v) {
  if constexpr (std::is_same_v<In, Out>)
    return v;
  else
    return from_float<Out>(to_float(v));  // f32 -> 16 bits: one rounding; 16 bits -> f32 or 16: exact, then one
}

template <typename In, typename Out, int V>
__global__ void __launch_bounds__(256)
    space_to_depth_pad_kernel(const In* __restrict__ x, Out* __restrict__ y, Geometry g, unsigned threads) {
  const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= threads) return;
  const unsigned wb = t % g.wb, r = t / g.wb;
  const unsigned pack = r % g.groups, row = r / g.groups;  // row: n * hb + hb
  const unsigned n = row / g.hb, hb = row - n * g.hb;
  const int first = static_cast<int>(pack) * V;
  int q = first / g.cc, c = first - q * g.cc;  // q = ph * 2 + pw
  const In* image = x + static_cast<int64_t>(n) * g.c * g.h * g.w;
  const int y0 = 2 * static_cast<int>(hb) - g.top, x0 = 2 * static_cast<int>(wb) - g.left;
  Pack<Out, V> out;
#pragma unroll
  for (int e = 0; e < V; ++e) {
    const int yy = y0 + (q >> 1), xx = x0 + (q & 1);
    In v = from_float<In>(0.f);
    if (c < g.c && yy >= 0 && yy < g.h && xx >= 0 && xx < g.w) v = image[(c * g.h + yy) * g.w + xx];
    out.v[e] = convert<Out>(v);
    if (++c == g.cc) c = 0, ++q;
  }
  *reinterpret_cast<Pack<Out, V>*>(y + (static_cast<int64_t>(row) * g.wb + wb) * (4 * g.cc) + first) = out;
}

template <typename In, typename Out, int V>
Status launch_as(const SpaceToDepthPadParams& p, Geometry g, cudaStream_t stream) {
  g.groups = static_cast<unsigned>(4 * p.channels / V);
  const int64_t threads = p.n * p.hb * p.wb * g.groups;
  constexpr int kBlock = 256;
  space_to_depth_pad_kernel<In, Out, V><<<static_cast<unsigned>((threads + kBlock - 1) / kBlock), kBlock, 0, stream>>>(
      static_cast<const In*>(p.x), static_cast<Out*>(p.y), g, static_cast<unsigned>(threads));
  return last_launch_status("space_to_depth_pad_kernel");
}

template <typename In, typename Out>
Status launch_typed(const SpaceToDepthPadParams& p, const Geometry& g, cudaStream_t stream) {
  constexpr int kWide = 16 / sizeof(Out);  // 8 in 16 bits, 4 in f32
  const int64_t c4 = 4 * p.channels;
  if (aligned16(p.y) && c4 % kWide == 0) return launch_as<In, Out, kWide>(p, g, stream);
  if constexpr (kWide != 4) {
    if (aligned_to(p.y, 4 * sizeof(Out))) return launch_as<In, Out, 4>(p, g, stream);
  }
  return launch_as<In, Out, 1>(p, g, stream);
}

template <typename In>
Status launch_from(const SpaceToDepthPadParams& p, const Geometry& g, cudaStream_t stream) {
  switch (p.y_dtype) {
    case DType::kF32: return launch_typed<In, float>(p, g, stream);
    case DType::kF16: return launch_typed<In, __half>(p, g, stream);
    case DType::kBF16: return launch_typed<In, __nv_bfloat16>(p, g, stream);
    default: return unsupported("kiln.SpaceToDepthPad: no CUDA kernel writes {}", dtype_name(p.y_dtype));
  }
}

bool takes(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

bool space_to_depth_pad_takes(DType x, DType y) { return takes(x) && takes(y); }

Status launch_space_to_depth_pad(const SpaceToDepthPadParams& p, cudaStream_t stream) {
  if (!space_to_depth_pad_takes(p.x_dtype, p.y_dtype))
    return unsupported("kiln.SpaceToDepthPad: no CUDA kernel casts {} to {}", dtype_name(p.x_dtype),
                       dtype_name(p.y_dtype));
  if (p.n < 0 || p.c < 0 || p.h < 0 || p.w < 0 || p.hb < 0 || p.wb < 0 || p.c > p.channels || p.top < 0 || p.left < 0 ||
      p.top + p.h > 2 * p.hb || p.left + p.w > 2 * p.wb)
    return invalid_argument("kiln.SpaceToDepthPad: X [{},{},{},{}] with pads before {},{} does not fit Y [{},{},{},{}]",
                            p.n, p.c, p.h, p.w, p.top, p.left, p.n, p.hb, p.wb, 4 * p.channels);
  const int64_t y_elems = p.n * p.hb * p.wb * 4 * p.channels;
  if (y_elems == 0) return Status::ok();
  if (y_elems > INT_MAX)
    return unsupported("kiln.SpaceToDepthPad: Y has {} elements; the CUDA kernel takes fewer than 2^31", y_elems);
  const Geometry g{static_cast<int>(p.c),        static_cast<int>(p.h),       static_cast<int>(p.w),
                   static_cast<int>(p.channels), static_cast<int>(p.top),     static_cast<int>(p.left),
                   static_cast<unsigned>(p.hb),  static_cast<unsigned>(p.wb), 0};
  switch (p.x_dtype) {
    case DType::kF32: return launch_from<float>(p, g, stream);
    case DType::kF16: return launch_from<__half>(p, g, stream);
    default: return launch_from<__nv_bfloat16>(p, g, stream);
  }
}

}  // namespace kiln::cuda
