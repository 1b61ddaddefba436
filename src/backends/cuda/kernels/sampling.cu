#include <cmath>

#include "backends/cuda/kernels/sampling.cuh"
#include "backends/cuda/kernels/window_common.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

// ---- GridSample ------------------------------------------------------------

__device__ double reflect(double x, double lo, double hi) {
  const double range = hi - lo;
  if (x < lo) {
    const double dx = lo - x;
    const int64_t n = static_cast<int64_t>(dx / range);
    const double r = dx - static_cast<double>(n) * range;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const double dx = x - hi;
    const int64_t n = static_cast<int64_t>(dx / range);
    const double r = dx - static_cast<double>(n) * range;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

__device__ double cubic_weight(double x) {
  constexpr double a = -0.75;
  x = fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

__device__ int64_t fetch(int64_t i, int64_t size, GridPadding padding, double lo, double hi) {
  if (padding == GridPadding::kZeros) return i >= 0 && i < size ? i : -1;
  if (padding == GridPadding::kBorder) return i < 0 ? 0 : (i > size - 1 ? size - 1 : i);
  return static_cast<int64_t>(reflect(static_cast<double>(i), lo, hi));
}

// The taps (index, -1 for zero padding; weight) of one dim for sample
// coordinate x; returns how many.
__device__ int grid_taps(float x, int64_t size, const GridSampleParams& p, int64_t index[4], double weight[4]) {
  const double lo = p.align_corners ? 0.0 : -0.5;
  const double hi = p.align_corners ? static_cast<double>(size - 1) : static_cast<double>(size) - 0.5;
  double v = x;
  if (p.mode == GridMode::kNearest) v = rint(v);  // half to even, as nearbyint
  if (v < lo || v > hi) {
    if (p.padding == GridPadding::kBorder)
      v = fmin(fmax(v, 0.0), static_cast<double>(size - 1));
    else if (p.padding == GridPadding::kReflection)
      v = reflect(v, lo, hi);
  }
  if (p.mode == GridMode::kNearest) {
    index[0] = fetch(static_cast<int64_t>(v), size, p.padding, lo, hi);
    weight[0] = 1.0;
    return 1;
  }
  const double f = floor(v), t = v - f;
  const int64_t i0 = static_cast<int64_t>(f);
  if (p.mode == GridMode::kLinear) {
    index[0] = fetch(i0, size, p.padding, lo, hi), weight[0] = 1 - t;
    index[1] = fetch(i0 + 1, size, p.padding, lo, hi), weight[1] = t;
    return 2;
  }
  const double w[4] = {cubic_weight(t + 1), cubic_weight(t), cubic_weight(1 - t), cubic_weight(2 - t)};
  for (int k = 0; k < 4; ++k) index[k] = fetch(i0 - 1 + k, size, p.padding, lo, hi), weight[k] = w[k];
  return 4;
}

// One thread per (batch, point): its taps, then every channel.
template <typename T>
__global__ void grid_sample_kernel(GridSampleParams p, int64_t n) {
  const T* x = static_cast<const T*>(p.x);
  const T* grid = static_cast<const T*>(p.grid);
  T* y = static_cast<T*>(p.y);
  const int r = p.spatial;
  int64_t stride[3] = {1, 1, 1}, isize = 1;
  for (int d = r - 1; d >= 0; --d) stride[d] = isize, isize *= p.in[d];
  KILN_GRID_STRIDE_LOOP(i, n) {
    const int64_t b = i / p.points, point = i % p.points;
    int64_t index[3][4];
    double weight[3][4];
    int count[3];
    for (int d = 0; d < 3; ++d) {
      if (d >= r) {
        count[d] = 1, index[d][0] = 0, weight[d][0] = 1.0;
        continue;
      }
      // Grid vectors list coordinates innermost dim first; the reference keeps them in float.
      const double g = load_as<double>(grid[i * r + (r - 1 - d)]);
      const double size = static_cast<double>(p.in[d]);
      const float coord = p.align_corners ? static_cast<float>((g + 1) / 2.0 * (size - 1))
                                          : static_cast<float>(((g + 1) * size - 1) / 2.0);
      count[d] = grid_taps(coord, p.in[d], p, index[d], weight[d]);
    }
    for (int64_t ch = 0; ch < p.channels; ++ch) {
      const T* src = x + (b * p.channels + ch) * isize;
      double acc = 0;
      for (int a = 0; a < count[0]; ++a)
        for (int bb = 0; bb < count[1]; ++bb)
          for (int c = 0; c < count[2]; ++c) {
            if (index[0][a] < 0 || index[1][bb] < 0 || index[2][c] < 0) continue;
            const double w = weight[0][a] * weight[1][bb] * weight[2][c];
            acc +=
                w * load_as<double>(src[index[0][a] * stride[0] + index[1][bb] * stride[1] + index[2][c] * stride[2]]);
          }
      y[(b * p.channels + ch) * p.points + point] = store_as<T>(acc);
    }
  }
}

// ---- AffineGrid ------------------------------------------------------------

template <typename T>
__global__ void affine_grid_kernel(AffineGridParams p, int64_t points, int64_t n) {
  const T* theta = static_cast<const T*>(p.theta);
  T* y = static_cast<T*>(p.y);
  const int r = p.spatial;
  KILN_GRID_STRIDE_LOOP(i, n) {
    const int64_t b = i / points;
    // Homogeneous source point (x, y[, z], 1), x along the innermost dim.
    double h[4] = {1, 1, 1, 1};
    int64_t rem = i % points;
    for (int d = r - 1; d >= 0; --d) {
      const int64_t len = p.size[d], at = rem % len;
      rem /= len;
      h[r - 1 - d] = p.align_corners
                         ? (len == 1 ? -1.0 : -1.0 + static_cast<double>(at) * 2.0 / static_cast<double>(len - 1))
                         : -1.0 + (2.0 * static_cast<double>(at) + 1.0) / static_cast<double>(len);
    }
    for (int row = 0; row < r; ++row) {
      double acc = 0;
      for (int col = 0; col <= r; ++col) acc += load_as<double>(theta[(b * r + row) * (r + 1) + col]) * h[col];
      y[i * r + row] = store_as<T>(acc);
    }
  }
}

// ---- RoiAlign --------------------------------------------------------------

template <typename T>
__global__ void roi_align_kernel(RoiAlignParams p, int64_t n) {
  const T* x = static_cast<const T*>(p.x);
  const T* rois = static_cast<const T*>(p.roi);
  T* y = static_cast<T*>(p.y);
  const int64_t h = p.height, w = p.width;
  KILN_GRID_STRIDE_LOOP(i, n) {
    const int64_t pw = i % p.out_w, ph = i / p.out_w % p.out_h, ch = i / (p.out_w * p.out_h) % p.channels,
                  r = i / (p.out_w * p.out_h * p.channels);
    const int64_t batch = p.batch_indices[r];
    if (batch < 0 || batch >= p.batch) {
      y[i] = store_as<T>(0.0);
      continue;
    }
    const double off = p.half_pixel ? 0.5 : 0.0;
    const double sw = load_as<double>(rois[r * 4]) * p.spatial_scale - off;
    const double sh = load_as<double>(rois[r * 4 + 1]) * p.spatial_scale - off;
    double rw = load_as<double>(rois[r * 4 + 2]) * p.spatial_scale - off - sw;
    double rh = load_as<double>(rois[r * 4 + 3]) * p.spatial_scale - off - sh;
    if (!p.half_pixel) rw = fmax(rw, 1.0), rh = fmax(rh, 1.0);
    const double bh = rh / static_cast<double>(p.out_h), bw = rw / static_cast<double>(p.out_w);
    const int64_t gh =
        p.sampling_ratio > 0 ? p.sampling_ratio : static_cast<int64_t>(ceil(rh / static_cast<double>(p.out_h)));
    const int64_t gw =
        p.sampling_ratio > 0 ? p.sampling_ratio : static_cast<int64_t>(ceil(rw / static_cast<double>(p.out_w)));
    const double count = static_cast<double>(gh * gw > 1 ? gh * gw : 1);
    const T* img = x + (batch * p.channels + ch) * h * w;
    double acc = 0;
    bool first = true;
    for (int64_t iy = 0; iy < gh; ++iy)
      for (int64_t ix = 0; ix < gw; ++ix) {
        double yy = sh + static_cast<double>(ph) * bh + (static_cast<double>(iy) + 0.5) * bh / static_cast<double>(gh);
        double xx = sw + static_cast<double>(pw) * bw + (static_cast<double>(ix) + 0.5) * bw / static_cast<double>(gw);
        double v[4] = {0, 0, 0, 0};
        if (!(yy < -1.0 || yy > static_cast<double>(h) || xx < -1.0 || xx > static_cast<double>(w))) {
          yy = fmax(yy, 0.0), xx = fmax(xx, 0.0);
          int64_t y0 = static_cast<int64_t>(yy), x0 = static_cast<int64_t>(xx), y1 = y0 + 1, x1 = x0 + 1;
          if (y0 >= h - 1) y0 = y1 = h - 1, yy = static_cast<double>(y0);
          if (x0 >= w - 1) x0 = x1 = w - 1, xx = static_cast<double>(x0);
          const double ly = yy - static_cast<double>(y0), lx = xx - static_cast<double>(x0);
          v[0] = (1 - ly) * (1 - lx) * load_as<double>(img[y0 * w + x0]);
          v[1] = (1 - ly) * lx * load_as<double>(img[y0 * w + x1]);
          v[2] = ly * (1 - lx) * load_as<double>(img[y1 * w + x0]);
          v[3] = ly * lx * load_as<double>(img[y1 * w + x1]);
        }
        if (p.max_mode) {
          // As ONNX's reference and ORT: the max of the weighted corner values.
          const double m = fmax(fmax(v[0], v[1]), fmax(v[2], v[3]));
          acc = first ? m : fmax(acc, m);
          first = false;
        } else {
          acc += v[0] + v[1] + v[2] + v[3];
        }
      }
    y[i] = store_as<T>(p.max_mode ? acc : acc / count);
  }
}

// ---- DeformConv ------------------------------------------------------------

// Bilinear sample of an h x w plane at (y, x); neighbours outside read zero.
template <typename T>
__device__ double bilinear_zero(const T* img, int64_t h, int64_t w, double y, double x) {
  const double fy = floor(y), fx = floor(x);
  const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
  const double ly = y - fy, lx = x - fx;
  double acc = 0;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      const int64_t yy = y0 + dy, xx = x0 + dx;
      if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
      acc += (dy ? ly : 1 - ly) * (dx ? lx : 1 - lx) * load_as<double>(img[yy * w + xx]);
    }
  return acc;
}

template <typename T>
__global__ void deform_conv_kernel(DeformConvParams p, int64_t n) {
  const WindowGeometry& g = p.g;
  const T* x = static_cast<const T*>(p.x);
  const T* wt = static_cast<const T*>(p.w);
  const T* offset = static_cast<const T*>(p.offset);
  const T* mask = static_cast<const T*>(p.mask);
  const T* bias = static_cast<const T*>(p.bias);
  const int64_t c = g.in_channels, m = g.out_channels, kh = g.kernel[1], kw = g.kernel[2];
  const int64_t oh = g.out[1], ow = g.out[2], h = g.in[1], w = g.in[2];
  const int64_t cg = c / g.group, mg = m / g.group, cog = c / p.offset_group;
  KILN_GRID_STRIDE_LOOP(idx, n) {
    const int64_t j = idx % ow, i = idx / ow % oh, oc = idx / (ow * oh) % m, batch = idx / (ow * oh * m);
    double acc = bias ? load_as<double>(bias[oc]) : 0.0;
    for (int64_t ci = 0; ci < cg; ++ci) {
      const int64_t ic = oc / mg * cg + ci, o = ic / cog;
      const T* img = x + (batch * c + ic) * h * w;
      for (int64_t a = 0; a < kh; ++a)
        for (int64_t b = 0; b < kw; ++b) {
          const int64_t k = a * kw + b, base = ((batch * p.offset_group + o) * kh * kw + k) * 2;
          const double dy = load_as<double>(offset[(base * oh + i) * ow + j]);
          const double dx = load_as<double>(offset[((base + 1) * oh + i) * ow + j]);
          const double yy = static_cast<double>(i * g.stride[1] - g.pad_begin[1] + a * g.dilation[1]) + dy;
          const double xx = static_cast<double>(j * g.stride[2] - g.pad_begin[2] + b * g.dilation[2]) + dx;
          double v = bilinear_zero(img, h, w, yy, xx);
          if (mask) v *= load_as<double>(mask[(((batch * p.offset_group + o) * kh * kw + k) * oh + i) * ow + j]);
          acc += v * load_as<double>(wt[((oc * cg + ci) * kh + a) * kw + b]);
        }
    }
    static_cast<T*>(p.y)[idx] = store_as<T>(acc);
  }
}

}  // namespace

// Runs launch<T>() for the float dtypes and f64.
#define KILN_SAMPLING_DISPATCH(dtype, what, launch)                                                  \
  switch (dtype) {                                                                                   \
    case DType::kF32: launch(float); break;                                                          \
    case DType::kF64: launch(double); break;                                                         \
    case DType::kF16: launch(__half); break;                                                         \
    case DType::kBF16: launch(__nv_bfloat16); break;                                                 \
    default: return unsupported("{}: dtype {} (f32, f16, bf16, f64 only)", what, dtype_name(dtype)); \
  }

Status launch_grid_sample(const GridSampleParams& p, cudaStream_t stream) {
  const int64_t n = p.batch * p.points;
  if (n == 0 || p.channels == 0) return Status::ok();
#define KILN_LAUNCH(T) grid_sample_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, n)
  KILN_SAMPLING_DISPATCH(p.dtype, "GridSample", KILN_LAUNCH);
#undef KILN_LAUNCH
  return last_launch_status("grid_sample_kernel");
}

Status launch_affine_grid(const AffineGridParams& p, cudaStream_t stream) {
  const int64_t points = p.size[0] * p.size[1] * p.size[2], n = p.batch * points;
  if (n == 0) return Status::ok();
#define KILN_LAUNCH(T) affine_grid_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, points, n)
  KILN_SAMPLING_DISPATCH(p.dtype, "AffineGrid", KILN_LAUNCH);
#undef KILN_LAUNCH
  return last_launch_status("affine_grid_kernel");
}

Status launch_roi_align(const RoiAlignParams& p, cudaStream_t stream) {
  const int64_t n = p.rois * p.channels * p.out_h * p.out_w;
  if (n == 0) return Status::ok();
#define KILN_LAUNCH(T) roi_align_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, n)
  KILN_SAMPLING_DISPATCH(p.dtype, "RoiAlign", KILN_LAUNCH);
#undef KILN_LAUNCH
  return last_launch_status("roi_align_kernel");
}

Status launch_deform_conv(const DeformConvParams& p, cudaStream_t stream) {
  const int64_t n = p.g.batch * p.g.out_channels * p.g.out[1] * p.g.out[2];
  if (n == 0) return Status::ok();
#define KILN_LAUNCH(T) deform_conv_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, n)
  KILN_SAMPLING_DISPATCH(p.dtype, "DeformConv", KILN_LAUNCH);
#undef KILN_LAUNCH
  return last_launch_status("deform_conv_kernel");
}

}  // namespace kiln::cuda
