// Resize: one thread per output element. For each resized dim it derives the
// CPU's tap set (input indices and weights, from the same double formulas:
// multiplies that the CPU rounds on their own are written with _rn
// intrinsics so nvcc cannot fuse them, which could move a nearest-mode
// coordinate across a rounding boundary) and sums x over the product of the
// taps in double. Col2Im gathers each output element's contributions.
#include <algorithm>
#include <limits>

#include "backends/cuda/kernels/index_map.cuh"
#include "backends/cuda/kernels/resize.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

struct AxisSampling {
  int dim;
  int64_t in, out, in_stride;
  double scale, roi_lo, roi_hi;
};

struct ResizeGeometry {
  int rank, naxes;
  int64_t out_dims[kMaxRank], in_strides[kMaxRank];
  bool resized[kMaxRank];
  AxisSampling ax[kMaxRank];
  ResizeMode mode;
  ResizeCoordinate coordinate;
  NearestMode nearest;
  double cubic_a, extrapolation;
  bool antialias, exclude_outside;
};

// The taps of one output coordinate on one resized dim.
struct Taps {
  int64_t start, aa_first;
  int n;
  double ratio, s, aa_sum, exclude_sum;
  bool integral, extrapolate;
};

__device__ double cubic_kernel(double x, double a) {
  x = fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

__device__ double source_coord(const ResizeGeometry& g, const AxisSampling& s, double y) {
  const double in = static_cast<double>(s.in), in1 = static_cast<double>(s.in - 1);
  const double out_w = __dmul_rn(s.scale, in);  // the real-valued output length
  switch (g.coordinate) {
    case ResizeCoordinate::kAlignCorners: return out_w == 1 ? 0.0 : __dmul_rn(y, in1) / (out_w - 1);
    case ResizeCoordinate::kAsymmetric: return y / s.scale;
    case ResizeCoordinate::kTfCropAndResize: {
      const double span = s.roi_hi - s.roi_lo;
      const double x = out_w == 1 ? __dmul_rn(span, in1) / 2 : __dmul_rn(__dmul_rn(y, span), in1) / (out_w - 1);
      return __dadd_rn(x, __dmul_rn(s.roi_lo, in1));
    }
    case ResizeCoordinate::kPytorchHalfPixel: return out_w == 1 ? -0.5 : (y + 0.5) / s.scale - 0.5;
    case ResizeCoordinate::kTfHalfPixelForNN: return (y + 0.5) / s.scale;
    case ResizeCoordinate::kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(s.out) / out_w;
      const double offset = __dmul_rn(in / 2, 1 - adjustment);
      return offset + (y + 0.5) / s.scale - 0.5;
    }
    case ResizeCoordinate::kHalfPixel: break;
  }
  return (y + 0.5) / s.scale - 0.5;
}

// Tap k's weight before any normalization.
__device__ double raw_weight(const ResizeGeometry& g, const Taps& t, int k) {
  const double r = t.ratio;
  if (g.mode == ResizeMode::kNearest) {
    if (t.integral) return k == 1 ? 1.0 : 0.0;
    switch (g.nearest) {
      case NearestMode::kRoundPreferFloor: return (k == 0 ? r <= 0.5 : r > 0.5) ? 1.0 : 0.0;
      case NearestMode::kRoundPreferCeil: return (k == 0 ? r < 0.5 : r >= 0.5) ? 1.0 : 0.0;
      case NearestMode::kFloor: return k == 0 ? 1.0 : 0.0;
      case NearestMode::kCeil: break;
    }
    return k == 0 ? 0.0 : 1.0;
  }
  if (!g.antialias) {
    if (g.mode == ResizeMode::kLinear) return k == 0 ? 1 - r : r;
    const double arg = k == 0 ? r + 1 : k == 1 ? r : k == 2 ? 1 - r : 2 - r;
    return cubic_kernel(arg, g.cubic_a);
  }
  // Antialiased: the filter stretched by 1/scale when downsampling.
  const double x = (static_cast<double>(t.aa_first + k) - r) * t.s;
  return g.mode == ResizeMode::kLinear ? fmin(fmax(1 - fabs(x), 0.0), 1.0) : cubic_kernel(x, g.cubic_a);
}

__device__ double tap_weight(const ResizeGeometry& g, const AxisSampling& s, const Taps& t, int k) {
  double w = raw_weight(g, t, k);
  if (g.antialias && g.mode != ResizeMode::kNearest) w /= t.aa_sum;
  if (g.exclude_outside) {
    const int64_t i = t.start + k;
    if (i < 0 || i >= s.in) w = 0;
    if (t.exclude_sum != 0) w /= t.exclude_sum;
  }
  return w;
}

__device__ Taps make_taps(const ResizeGeometry& g, const AxisSampling& s, int64_t y) {
  Taps t{};
  const double x = source_coord(g, s, static_cast<double>(y));
  t.extrapolate = g.coordinate == ResizeCoordinate::kTfCropAndResize && (x < 0 || x > static_cast<double>(s.in - 1));
  const double fl = floor(x), frac = x - fl;
  t.integral = frac == 0;
  t.ratio = t.integral ? 1.0 : frac;
  t.s = fmin(s.scale, 1.0);
  if (g.mode == ResizeMode::kNearest || (!g.antialias && g.mode == ResizeMode::kLinear)) {
    t.n = 2;
  } else if (!g.antialias) {
    t.n = 4;
  } else {
    const double support = g.mode == ResizeMode::kLinear ? 1.0 : 2.0;
    t.aa_first = static_cast<int64_t>(floor(-support / t.s) + 1);
    t.n = static_cast<int>(2 - 2 * t.aa_first);
    t.aa_sum = 0;
    for (int k = 0; k < t.n; ++k) t.aa_sum += raw_weight(g, t, k);
  }
  // The n taps nearest x, preferring the lower side (as the CPU picks them).
  const int n = t.n;
  t.start = static_cast<int64_t>(fl);
  if (n % 2 == 0)
    t.start += t.integral ? -(n / 2) : -(n / 2) + 1;
  else
    t.start += frac <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1;
  if (g.exclude_outside) {
    t.exclude_sum = 0;  // read as "no renormalization" by tap_weight while summing
    double sum = 0;
    for (int k = 0; k < n; ++k) sum += tap_weight(g, s, t, k);
    t.exclude_sum = sum;
  }
  return t;
}

template <typename T>
__device__ T resize_store(double v, double lo, double hi) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(fmin(fmax(nearbyint(v), lo), hi));  // round, saturate
  } else if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
    return from_float<T>(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

// Sum over every combination of the resized dims' taps (an odometer over
// the tap indices, keeping each level's partial weight and offset).
template <typename T>
__device__ double sum_taps(const T* x, const ResizeGeometry& g, const Taps* t, int64_t base) {
  const int a_count = g.naxes;
  int k[kMaxRank] = {};
  double wp[kMaxRank];
  int64_t op[kMaxRank];
  bool zero[kMaxRank];
  double acc = 0;
  for (int from = 0;;) {
    for (int a = from; a < a_count; ++a) {
      const AxisSampling& s = g.ax[a];
      const double w = tap_weight(g, s, t[a], k[a]);
      const int64_t idx = min(max(t[a].start + k[a], int64_t(0)), s.in - 1);
      wp[a] = (a ? wp[a - 1] : 1.0) * w;
      op[a] = (a ? op[a - 1] : base) + idx * s.in_stride;
      zero[a] = (a ? zero[a - 1] : false) || w == 0;  // the CPU skips zero-weight taps
    }
    if (!zero[a_count - 1]) acc += wp[a_count - 1] * to_double(x[op[a_count - 1]]);
    int a = a_count - 1;
    while (a >= 0 && ++k[a] == t[a].n) k[a--] = 0;
    if (a < 0) break;
    from = a;
  }
  return acc;
}

template <typename T>
__global__ void resize_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, ResizeGeometry g, double lo,
                              double hi) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t c[kMaxRank], rest = i, base = 0;
    for (int d = g.rank - 1; d >= 0; --d) {
      c[d] = rest % g.out_dims[d];
      rest /= g.out_dims[d];
      if (!g.resized[d]) base += c[d] * g.in_strides[d];
    }
    Taps t[kMaxRank];
    int last_extrapolated = -1;
    for (int a = 0; a < g.naxes; ++a) {
      t[a] = make_taps(g, g.ax[a], c[g.ax[a].dim]);
      if (t[a].extrapolate) last_extrapolated = a;
    }
    double v;
    if (g.naxes == 0) {
      v = to_double(x[base]);
    } else if (last_extrapolated < 0) {
      v = sum_taps(x, g, t, base);
    } else {
      // The CPU fills the extrapolated dim's row with the value; the dims
      // resized after it then combine copies of that value.
      v = g.extrapolation;
      for (int a = last_extrapolated + 1; a < g.naxes; ++a) {
        double s = 0;
        for (int k = 0; k < t[a].n; ++k) {
          const double w = tap_weight(g, g.ax[a], t[a], k);
          if (w != 0) s += w * v;
        }
        v = s;
      }
    }
    y[i] = resize_store<T>(v, lo, hi);
  }
}

template <typename T>
Status launch_resize_as(const ResizeParams& p, int64_t n, const ResizeGeometry& g, cudaStream_t stream) {
  double lo = 0, hi = 0;
  if constexpr (std::is_integral_v<T>)
    lo = static_cast<double>(std::numeric_limits<T>::lowest()), hi = static_cast<double>(std::numeric_limits<T>::max());
  resize_kernel<T>
      <<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y), n, g, lo, hi);
  return last_launch_status("resize_kernel");
}

constexpr int kMaxImageRank = 6;

struct Col2ImGeometry {
  int nd;
  int64_t image[kMaxImageRank], block[kMaxImageRank], dilation[kMaxImageRank], stride[kMaxImageRank],
      pad[kMaxImageRank], blocks[kMaxImageRank];
  int64_t kernel, locations;
};

template <typename T>
__global__ void col2im_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, Col2ImGeometry g) {
  const int64_t grid_stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += grid_stride) {
    int64_t p[kMaxImageRank], rest = i;
    for (int k = g.nd - 1; k >= 0; --k) p[k] = rest % g.image[k], rest /= g.image[k];
    const T* src = x + rest * g.kernel * g.locations;  // rest = batch * channels + channel
    int64_t kk[kMaxImageRank] = {};
    double acc = 0;
    for (int64_t kf = 0; kf < g.kernel; ++kf) {
      // The block location l with l * stride - pad + kk * dilation == p, if any.
      int64_t lf = 0;
      bool inside = true;
      for (int k = 0; k < g.nd && inside; ++k) {
        const int64_t num = p[k] + g.pad[k] - kk[k] * g.dilation[k];
        inside = num >= 0 && num % g.stride[k] == 0 && num / g.stride[k] < g.blocks[k];
        lf = lf * g.blocks[k] + (inside ? num / g.stride[k] : 0);
      }
      if (inside) acc += to_double(src[kf * g.locations + lf]);
      for (int k = g.nd - 1; k >= 0; --k) {
        if (++kk[k] < g.block[k]) break;
        kk[k] = 0;
      }
    }
    y[i] = store_c<T>(static_cast<compute_of<T>>(acc));
  }
}

}  // namespace

Status launch_resize(const ResizeParams& p, cudaStream_t stream) {
  const size_t rank = p.in_dims.size();
  if (p.out_dims.size() != rank || p.scale.size() != rank || p.roi_lo.size() != rank || p.roi_hi.size() != rank ||
      p.resized.size() != rank)
    return invalid_argument("Resize: per-dim parameters must have one entry per dim ({})", rank);
  if (rank > static_cast<size_t>(kMaxRank))
    return unsupported("Resize: rank {} (the CUDA kernel takes up to {})", rank, kMaxRank);
  const int64_t n = product(p.out_dims, 0, rank);
  if (n == 0) return Status::ok();
  ResizeGeometry g{};
  g.rank = static_cast<int>(rank);
  g.mode = p.mode;
  g.coordinate = p.coordinate;
  g.nearest = p.nearest;
  g.cubic_a = p.cubic_a;
  g.extrapolation = p.extrapolation;
  g.antialias = p.antialias;
  g.exclude_outside = p.exclude_outside;
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) g.in_strides[d] = stride, stride *= p.in_dims[d];
  for (size_t d = 0; d < rank; ++d) {
    g.out_dims[d] = p.out_dims[d];
    g.resized[d] = p.resized[d];
    if (!p.resized[d]) {
      if (p.in_dims[d] != p.out_dims[d]) return invalid_argument("Resize: dim {} changes size but is not resized", d);
      continue;
    }
    if (p.in_dims[d] == 0) return invalid_argument("Resize: cannot resize an empty axis {}", d);
    if (!(p.scale[d] > 0)) return invalid_argument("Resize: scale {} for axis {}", p.scale[d], d);
    g.ax[g.naxes++] = {static_cast<int>(d), p.in_dims[d], p.out_dims[d], g.in_strides[d],
                       p.scale[d],          p.roi_lo[d],  p.roi_hi[d]};
  }
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "Resize", return launch_resize_as<T>(p, n, g, stream));
  return Status::ok();
}

Status launch_col2im(const Col2ImParams& p, cudaStream_t stream) {
  const size_t nd = p.image.size();
  if (nd == 0 || nd > static_cast<size_t>(kMaxImageRank) || p.block.size() != nd || p.dilations.size() != nd ||
      p.strides.size() != nd || p.pads.size() != 2 * nd)
    return invalid_argument("Col2Im: inconsistent image, block, dilation, stride and pad ranks (image rank {})", nd);
  Col2ImGeometry g{};
  g.nd = static_cast<int>(nd);
  g.kernel = 1, g.locations = 1;
  for (size_t k = 0; k < nd; ++k) {
    if (p.strides[k] < 1 || p.dilations[k] < 1 || p.block[k] < 1)
      return invalid_argument("Col2Im: stride, dilation and block must be positive");
    g.image[k] = p.image[k], g.block[k] = p.block[k], g.dilation[k] = p.dilations[k];
    g.stride[k] = p.strides[k], g.pad[k] = p.pads[k];
    const int64_t extent = p.dilations[k] * (p.block[k] - 1) + 1;
    g.blocks[k] = (p.image[k] + p.pads[k] + p.pads[k + nd] - extent) / p.strides[k] + 1;
    g.kernel *= p.block[k];
    g.locations *= g.blocks[k];
  }
  if (p.blocks_in != g.locations)
    return invalid_argument("Col2Im: input has {} blocks, the geometry gives {}", p.blocks_in, g.locations);
  const int64_t n = p.batch * p.channels * product(p.image, 0, nd);
  if (n == 0) return Status::ok();
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "Col2Im", {
    col2im_kernel<T>
        <<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y), n, g);
    return last_launch_status("col2im_kernel");
  });
  return Status::ok();
}

}  // namespace kiln::cuda
