// Resize: separable, one axis at a time, in double. For each resized axis a
// tap table lists, for every output index, the input indices and weights
// (nearest: one weight of 1; linear: 2 taps; cubic: 4; antialias widens the
// taps by 1/scale when downsampling). Integer outputs round and saturate.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "support/parallel.h"

namespace kiln {
namespace {

struct ResizeAttrs {
  std::string mode, ctm, nearest_mode;
  double cubic_a = -0.75, extrapolation = 0;
  bool antialias = false, exclude_outside = false;
};

struct AxisTaps {
  int64_t out = 0;
  int taps = 0;
  std::vector<int64_t> index;     // out * taps, clamped into the input
  std::vector<double> weight;     // out * taps
  std::vector<bool> extrapolate;  // tf_crop_and_resize positions outside the input
};

std::vector<double> nearest_coeffs(double ratio, bool integral, const std::string& mode) {
  if (integral) return {0, 1};
  if (mode == "round_prefer_floor") return {ratio <= 0.5 ? 1.0 : 0.0, ratio > 0.5 ? 1.0 : 0.0};
  if (mode == "round_prefer_ceil") return {ratio < 0.5 ? 1.0 : 0.0, ratio >= 0.5 ? 1.0 : 0.0};
  if (mode == "floor") return {1, 0};
  return {0, 1};  // ceil
}

double cubic_kernel(double x, double a) {
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

std::vector<double> coeffs(const ResizeAttrs& r, double ratio, bool integral, double scale) {
  if (r.mode == "nearest") return nearest_coeffs(ratio, integral, r.nearest_mode);
  if (r.mode == "linear" && !r.antialias) return {1 - ratio, ratio};
  if (r.mode == "cubic" && !r.antialias)
    return {cubic_kernel(ratio + 1, r.cubic_a), cubic_kernel(ratio, r.cubic_a), cubic_kernel(1 - ratio, r.cubic_a),
            cubic_kernel(2 - ratio, r.cubic_a)};
  // Antialiased: the filter is stretched by 1/scale when downsampling and normalized.
  double s = std::min(scale, 1.0);
  double support = r.mode == "linear" ? 1.0 : 2.0;
  auto start = static_cast<int64_t>(std::floor(-support / s) + 1);
  int64_t end = (r.mode == "linear") ? start + 2 - 2 * start : 2 - start;
  std::vector<double> c;
  double sum = 0;
  for (int64_t i = start; i < end; ++i) {
    double x = (static_cast<double>(i) - ratio) * s;
    double v = r.mode == "linear" ? std::clamp(1 - std::fabs(x), 0.0, 1.0) : cubic_kernel(x, r.cubic_a);
    c.push_back(v);
    sum += v;
  }
  for (auto& v : c) v /= sum;
  return c;
}

// Where output index y samples the input, per coordinate_transformation_mode.
double source_coord(const ResizeAttrs& r, double y, double scale, int64_t in, int64_t out, double roi_lo,
                    double roi_hi) {
  double out_w = scale * static_cast<double>(in);  // the real-valued output length
  const std::string& m = r.ctm;
  if (m == "align_corners") return out_w == 1 ? 0.0 : y * static_cast<double>(in - 1) / (out_w - 1);
  if (m == "asymmetric") return y / scale;
  if (m == "tf_crop_and_resize") {
    double x = out_w == 1 ? (roi_hi - roi_lo) * static_cast<double>(in - 1) / 2
                          : y * (roi_hi - roi_lo) * static_cast<double>(in - 1) / (out_w - 1);
    return x + roi_lo * static_cast<double>(in - 1);
  }
  if (m == "pytorch_half_pixel") return out_w == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
  if (m == "tf_half_pixel_for_nn") return (y + 0.5) / scale;
  if (m == "half_pixel_symmetric") {
    double adjustment = static_cast<double>(out) / out_w;
    double offset = static_cast<double>(in) / 2 * (1 - adjustment);
    return offset + (y + 0.5) / scale - 0.5;
  }
  return (y + 0.5) / scale - 0.5;  // half_pixel
}

AxisTaps make_taps(const ResizeAttrs& r, int64_t in, int64_t out, double scale, double roi_lo, double roi_hi) {
  AxisTaps t;
  t.out = out;
  t.extrapolate.assign(static_cast<size_t>(out), false);
  for (int64_t y = 0; y < out; ++y) {
    double x = source_coord(r, static_cast<double>(y), scale, in, out, roi_lo, roi_hi);
    if (r.ctm == "tf_crop_and_resize" && (x < 0 || x > static_cast<double>(in - 1))) t.extrapolate[y] = true;
    double fl = std::floor(x), frac = x - fl;
    bool integral = frac == 0;
    std::vector<double> c = coeffs(r, integral ? 1.0 : frac, integral, scale);
    auto n = static_cast<int64_t>(c.size());
    if (y == 0) t.taps = static_cast<int>(n);
    // The n taps nearest x, preferring the lower side (as ONNX's reference picks them).
    int64_t start = static_cast<int64_t>(fl);
    if (n % 2 == 0)
      start += integral ? -(n / 2) : -(n / 2) + 1;
    else
      start += frac <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1;
    if (r.exclude_outside) {
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) {
        int64_t i = start + k;
        if (i < 0 || i >= in) c[k] = 0;
        sum += c[k];
      }
      if (sum != 0)
        for (auto& v : c) v /= sum;
    }
    for (int64_t k = 0; k < n; ++k) {
      t.index.push_back(std::clamp<int64_t>(start + k, 0, in - 1));
      t.weight.push_back(c[k]);
    }
  }
  return t;
}

// Resizes `v` (dims `dims`) along `axis` with the taps; updates dims.
std::vector<double> apply_taps(const std::vector<double>& v, std::vector<int64_t>& dims, size_t axis, const AxisTaps& t,
                               double extrapolation) {
  int64_t outer = 1, inner = 1, in = dims[axis];
  for (size_t i = 0; i < axis; ++i) outer *= dims[i];
  for (size_t i = axis + 1; i < dims.size(); ++i) inner *= dims[i];
  std::vector<double> out(static_cast<size_t>(outer * t.out * inner));
  parallel_for(outer, t.out * inner * t.taps, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o)
      for (int64_t y = 0; y < t.out; ++y) {
        double* dst = out.data() + (o * t.out + y) * inner;
        if (t.extrapolate[y]) {
          std::fill(dst, dst + inner, extrapolation);
          continue;
        }
        for (int k = 0; k < t.taps; ++k) {
          double w = t.weight[y * t.taps + k];
          if (w == 0) continue;
          const double* src = v.data() + (o * in + t.index[y * t.taps + k]) * inner;
          for (int64_t i = 0; i < inner; ++i) dst[i] += w * src[i];
        }
      }
  });
  dims[axis] = t.out;
  return out;
}

Expected<ResizeAttrs> read_attrs(const Node& n) {
  ResizeAttrs r;
  r.mode = n.attr_string("mode", "nearest");
  r.ctm = n.attr_string("coordinate_transformation_mode", "half_pixel");
  r.nearest_mode = n.attr_string("nearest_mode", "round_prefer_floor");
  r.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
  r.extrapolation = n.attr_float("extrapolation_value", 0.0f);
  r.antialias = n.attr_int("antialias", 0) != 0;
  r.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
  if (r.mode != "nearest" && r.mode != "linear" && r.mode != "cubic")
    return invalid_model("Resize: mode '{}' is not nearest, linear or cubic", r.mode);
  for (const char* m : {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                        "tf_crop_and_resize", "tf_half_pixel_for_nn"})
    if (r.ctm == m) goto ctm_ok;
  return invalid_model("Resize: coordinate_transformation_mode '{}' is unknown", r.ctm);
ctm_ok:
  for (const char* m : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"})
    if (r.nearest_mode == m) return r;
  return invalid_model("Resize: nearest_mode '{}' is unknown", r.nearest_mode);
}

std::vector<double> float_input(const CpuKernelContext& ctx, size_t i) {
  std::vector<double> v;
  if (!ctx.has_input(i)) return v;
  const Tensor& t = ctx.input(i);
  for (int64_t k = 0; k < t.numel(); ++k) v.push_back(t.element_as_double(k));
  return v;
}

Status run_resize(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(ResizeAttrs r, read_attrs(ctx.node()));
  auto rank = static_cast<size_t>(x.rank());
  std::vector<int64_t> axes = ctx.node().attr_ints("axes");
  if (axes.empty())
    for (size_t i = 0; i < rank; ++i) axes.push_back(static_cast<int64_t>(i));
  for (auto& a : axes) {
    if (a < -x.rank() || a >= x.rank()) return invalid_model("Resize: axis {} out of range", a);
    if (a < 0) a += x.rank();
  }
  std::vector<double> roi = float_input(ctx, 1), scales_in = float_input(ctx, 2);
  std::vector<double> scale(rank, 1.0), roi_lo(rank, 0.0), roi_hi(rank, 1.0);
  if (!roi.empty()) {
    if (roi.size() != 2 * axes.size())
      return invalid_model("Resize: roi has {} values for {} axes", roi.size(), axes.size());
    for (size_t i = 0; i < axes.size(); ++i) roi_lo[axes[i]] = roi[i], roi_hi[axes[i]] = roi[i + axes.size()];
  }
  auto out_dims = ctx.inferred_dims(0);
  if (!out_dims) return internal_error("Resize: output dims were not inferred");
  if (!scales_in.empty()) {
    for (size_t i = 0; i < axes.size(); ++i) scale[axes[i]] = scales_in[i];
  } else {
    std::string policy = ctx.node().attr_string("keep_aspect_ratio_policy", "stretch");
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, ctx.input(3).to_i64_vector());
    std::optional<double> common;
    for (size_t i = 0; i < axes.size(); ++i) {
      double s = static_cast<double>(sizes[i]) / static_cast<double>(x.dim(axes[i]));
      scale[axes[i]] = s;
      common = !common ? s : (policy == "not_larger" ? std::min(*common, s) : std::max(*common, s));
    }
    if (policy != "stretch")
      for (int64_t a : axes) scale[a] = *common;
  }
  std::vector<double> v(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) v[i] = x.element_as_double(i);
  std::vector<int64_t> dims = x.dims();
  for (size_t a = 0; a < rank; ++a) {
    int64_t out = (*out_dims)[a];
    bool identity = std::fabs(scale[a] - 1.0) < 1e-9 && out == dims[a] && std::fabs(roi_lo[a]) < 1e-9 &&
                    std::fabs(roi_hi[a] - 1.0) < 1e-9;
    if (identity) continue;
    if (dims[a] == 0) return invalid_model("Resize: cannot resize an empty axis {}", a);
    AxisTaps t = make_taps(r, dims[a], out, scale[a], roi_lo[a], roi_hi[a]);
    v = apply_taps(v, dims, a, t, r.extrapolation);
  }
  Tensor& y = ctx.allocate_output(0, *out_dims);
  return visit_dtype(x.dtype(), kNumericTypes, [&]<typename T>() {
    T* yd = y.mutable_data<T>();
    using C = compute_t<T>;
    for (int64_t i = 0; i < y.numel(); ++i) {
      if constexpr (std::is_integral_v<C>) {
        double q = std::clamp(std::nearbyint(v[i]), static_cast<double>(std::numeric_limits<C>::lowest()),
                              static_cast<double>(std::numeric_limits<C>::max()));
        yd[i] = static_cast<T>(q);
      } else {
        yd[i] = T(static_cast<C>(v[i]));
      }
    }
    return Status::ok();
  });
}

}  // namespace

KILN_CPU_KERNEL("", "Resize", run_resize);

}  // namespace kiln
