// Ops that sample images at computed coordinates: GridSample, AffineGrid,
// RoiAlign and DeformConv; and NonMaxSuppression. Arithmetic in double,
// except where ONNX's reference rounds through float (noted).
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/kernels/window_plan.h"
#include "support/parallel.h"

namespace kiln {
namespace {

std::vector<double> to_doubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.element_as_double(i);
  return v;
}

Status store(Tensor& t, const std::vector<double>& v) {
  return visit_dtype(t.dtype(), kFloatTypes, [&]<typename T>() {
    T* d = t.mutable_data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] = T(static_cast<compute_t<T>>(v[i]));
    return Status::ok();
  });
}

// ---- GridSample -------------------------------------------------------------

double reflect(double x, double lo, double hi) {
  double range = hi - lo;
  if (x < lo) {
    double dx = lo - x;
    auto n = static_cast<int64_t>(dx / range);
    double r = dx - static_cast<double>(n) * range;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    auto n = static_cast<int64_t>(dx / range);
    double r = dx - static_cast<double>(n) * range;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

struct Tap {
  int64_t index;  // -1: reads zero padding
  double weight;
};

double cubic_weight(double x) {
  constexpr double a = -0.75;
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

// The taps of one spatial dim for sample coordinate x (already denormalized).
std::vector<Tap> grid_taps(float x, int64_t size, const std::string& mode, const std::string& padding, bool align) {
  double lo = align ? 0.0 : -0.5, hi = align ? static_cast<double>(size - 1) : static_cast<double>(size) - 0.5;
  double v = x;
  if (mode == "nearest") v = std::nearbyint(v);
  if (v < lo || v > hi) {
    if (padding == "border")
      v = std::clamp(v, 0.0, static_cast<double>(size - 1));
    else if (padding == "reflection")
      v = reflect(v, lo, hi);
  }
  auto fetch = [&](int64_t i) -> int64_t {
    if (padding == "zeros") return i >= 0 && i < size ? i : -1;
    if (padding == "border") return std::clamp<int64_t>(i, 0, size - 1);
    return static_cast<int64_t>(reflect(static_cast<double>(i), lo, hi));
  };
  if (mode == "nearest") return {{fetch(static_cast<int64_t>(v)), 1.0}};
  double f = std::floor(v), t = v - f;
  auto i0 = static_cast<int64_t>(f);
  if (mode == "linear") return {{fetch(i0), 1 - t}, {fetch(i0 + 1), t}};
  return {{fetch(i0 - 1), cubic_weight(t + 1)},
          {fetch(i0), cubic_weight(t)},
          {fetch(i0 + 1), cubic_weight(1 - t)},
          {fetch(i0 + 2), cubic_weight(2 - t)}};
}

Status run_grid_sample(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& grid = ctx.input(1);
  const Node& node = ctx.node();
  std::string mode = node.attr_string("mode", "linear"), padding = node.attr_string("padding_mode", "zeros");
  bool align = node.attr_int("align_corners", 0) != 0;
  if (mode != "linear" && mode != "nearest" && mode != "cubic")
    return invalid_model("GridSample: mode '{}' is not linear, nearest or cubic", mode);
  if (padding != "zeros" && padding != "border" && padding != "reflection")
    return invalid_model("GridSample: padding_mode '{}' is not zeros, border or reflection", padding);
  auto r = static_cast<size_t>(x.rank() - 2);
  if (x.rank() < 3 || grid.rank() != x.rank() || grid.dim(grid.rank() - 1) != static_cast<int64_t>(r) ||
      grid.dim(0) != x.dim(0))
    return invalid_model("GridSample: X {} and grid {} do not fit", Shape::of(x.dims()).to_string(),
                         Shape::of(grid.dims()).to_string());
  std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  int64_t n = x.dim(0), c = x.dim(1), isize = checked_numel(in);
  int64_t points = grid.numel() / std::max<int64_t>(n * static_cast<int64_t>(r), 1);
  std::vector<int64_t> dims{n, c};
  for (int64_t i = 1; i + 1 < grid.rank(); ++i) dims.push_back(grid.dim(i));
  std::vector<double> xv = to_doubles(x), gv = to_doubles(grid), out(static_cast<size_t>(n * c * points));
  std::vector<int64_t> in_strides(r, 1);
  for (size_t d = r - 1; d-- > 0;) in_strides[d] = in_strides[d + 1] * in[d + 1];
  parallel_for(n * points, c * 16, [&](int64_t begin, int64_t end) {
    for (int64_t np = begin; np < end; ++np) {
      int64_t b = np / points, p = np % points;
      // Grid vectors list coordinates innermost dim first (x, y, z); the reference keeps them in float.
      std::vector<std::vector<Tap>> taps(r);
      for (size_t d = 0; d < r; ++d) {
        double g = gv[np * r + (r - 1 - d)];
        auto size = static_cast<double>(in[d]);
        float coord =
            align ? static_cast<float>((g + 1) / 2.0 * (size - 1)) : static_cast<float>(((g + 1) * size - 1) / 2.0);
        taps[d] = grid_taps(coord, in[d], mode, padding, align);
      }
      // Every combination of one tap per dim.
      std::vector<size_t> k(r, 0);
      std::vector<std::pair<int64_t, double>> combos;
      while (true) {
        int64_t offset = 0;
        double w = 1;
        for (size_t d = 0; d < r; ++d) {
          const Tap& t = taps[d][k[d]];
          w *= t.weight;
          offset = (offset < 0 || t.index < 0) ? -1 : offset + t.index * in_strides[d];
        }
        combos.emplace_back(offset, w);
        size_t d = r;
        while (d > 0 && ++k[d - 1] == taps[d - 1].size()) k[--d] = 0;
        if (d == 0) break;
      }
      for (int64_t ch = 0; ch < c; ++ch) {
        const double* src = xv.data() + (b * c + ch) * isize;
        double acc = 0;
        for (const auto& [off, w] : combos)
          if (off >= 0) acc += w * src[off];
        out[(b * c + ch) * points + p] = acc;
      }
    }
  });
  return store(ctx.allocate_output(0, dims), out);
}

// ---- AffineGrid -------------------------------------------------------------

Status run_affine_grid(CpuKernelContext& ctx) {
  const Tensor& theta = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> size, ctx.input(1).to_i64_vector());
  bool align = ctx.node().attr_int("align_corners", 0) != 0;
  if (size.size() != 4 && size.size() != 5) return invalid_model("AffineGrid: size has {} values", size.size());
  size_t r = size.size() - 2;
  int64_t n = size[0];
  if (theta.rank() != 3 || theta.dim(0) != n || theta.dim(1) != static_cast<int64_t>(r) ||
      theta.dim(2) != static_cast<int64_t>(r) + 1)
    return invalid_model("AffineGrid: theta {} does not fit size of {} spatial dims",
                         Shape::of(theta.dims()).to_string(), r);
  std::vector<int64_t> spatial(size.begin() + 2, size.end());
  int64_t points = checked_numel(spatial);
  if (points < 0 || n < 0) return invalid_model("AffineGrid: size {} has a negative dim", Shape::of(size).to_string());
  std::vector<int64_t> dims{n};
  dims.insert(dims.end(), spatial.begin(), spatial.end());
  dims.push_back(static_cast<int64_t>(r));
  auto base = [&](int64_t i, int64_t len) {
    if (align) return len == 1 ? -1.0 : -1.0 + static_cast<double>(i) * 2.0 / static_cast<double>(len - 1);
    return -1.0 + (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(len);
  };
  std::vector<double> th = to_doubles(theta), out(static_cast<size_t>(n * points * static_cast<int64_t>(r)));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < points; ++p) {
      // Homogeneous source point (x, y[, z], 1), x along the innermost dim.
      std::vector<double> h(r + 1, 1.0);
      int64_t rem = p;
      for (size_t d = r; d-- > 0;) {
        h[r - 1 - d] = base(rem % spatial[d], spatial[d]);
        rem /= spatial[d];
      }
      for (size_t row = 0; row < r; ++row) {
        double acc = 0;
        for (size_t col = 0; col <= r; ++col) acc += th[(b * r + row) * (r + 1) + col] * h[col];
        out[(b * points + p) * r + row] = acc;
      }
    }
  return store(ctx.allocate_output(0, dims), out);
}

// ---- RoiAlign ---------------------------------------------------------------

Status run_roi_align(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& rois = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> batch, ctx.input(2).to_i64_vector());
  const Node& node = ctx.node();
  if (x.rank() != 4 || rois.rank() != 2 || rois.dim(1) != 4 || static_cast<int64_t>(batch.size()) != rois.dim(0))
    return invalid_model("RoiAlign: X must be 4-D, rois [R, 4] and batch_indices [R]");
  bool half_pixel = node.attr_string("coordinate_transformation_mode", "half_pixel") == "half_pixel";
  bool max_mode = node.attr_string("mode", "avg") == "max";
  int64_t oh = node.attr_int("output_height", 1), ow = node.attr_int("output_width", 1);
  int64_t ratio = node.attr_int("sampling_ratio", 0);
  double scale = node.attr_float("spatial_scale", 1.0f);
  int64_t c = x.dim(1), h = x.dim(2), w = x.dim(3), r_count = rois.dim(0);
  std::vector<double> xv = to_doubles(x), rv = to_doubles(rois);
  std::vector<double> out(static_cast<size_t>(r_count * c * oh * ow));
  for (int64_t r = 0; r < r_count; ++r) {
    if (batch[r] < 0 || batch[r] >= x.dim(0))
      return invalid_model("RoiAlign: batch index {} is outside the {} images", batch[r], x.dim(0));
    double off = half_pixel ? 0.5 : 0.0;
    double sw = rv[r * 4] * scale - off, sh = rv[r * 4 + 1] * scale - off;
    double rw = rv[r * 4 + 2] * scale - off - sw, rh = rv[r * 4 + 3] * scale - off - sh;
    if (!half_pixel) rw = std::max(rw, 1.0), rh = std::max(rh, 1.0);
    double bh = rh / static_cast<double>(oh), bw = rw / static_cast<double>(ow);
    int64_t gh = ratio > 0 ? ratio : static_cast<int64_t>(std::ceil(rh / static_cast<double>(oh)));
    int64_t gw = ratio > 0 ? ratio : static_cast<int64_t>(std::ceil(rw / static_cast<double>(ow)));
    double count = static_cast<double>(std::max<int64_t>(gh * gw, 1));
    for (int64_t ch = 0; ch < c; ++ch) {
      const double* img = xv.data() + (batch[r] * c + ch) * h * w;
      for (int64_t ph = 0; ph < oh; ++ph)
        for (int64_t pw = 0; pw < ow; ++pw) {
          double acc = 0;
          bool first = true;
          for (int64_t iy = 0; iy < gh; ++iy)
            for (int64_t ix = 0; ix < gw; ++ix) {
              double y =
                  sh + static_cast<double>(ph) * bh + (static_cast<double>(iy) + 0.5) * bh / static_cast<double>(gh);
              double xx =
                  sw + static_cast<double>(pw) * bw + (static_cast<double>(ix) + 0.5) * bw / static_cast<double>(gw);
              std::array<double, 4> v{0, 0, 0, 0};
              if (!(y < -1.0 || y > static_cast<double>(h) || xx < -1.0 || xx > static_cast<double>(w))) {
                y = std::max(y, 0.0), xx = std::max(xx, 0.0);
                auto y0 = static_cast<int64_t>(y), x0 = static_cast<int64_t>(xx);
                int64_t y1 = y0 + 1, x1 = x0 + 1;
                if (y0 >= h - 1) y0 = y1 = h - 1, y = static_cast<double>(y0);
                if (x0 >= w - 1) x0 = x1 = w - 1, xx = static_cast<double>(x0);
                double ly = y - static_cast<double>(y0), lx = xx - static_cast<double>(x0);
                v = {(1 - ly) * (1 - lx) * img[y0 * w + x0], (1 - ly) * lx * img[y0 * w + x1],
                     ly * (1 - lx) * img[y1 * w + x0], ly * lx * img[y1 * w + x1]};
              }
              if (max_mode) {
                // As ONNX's reference and ORT: the max of the weighted corner values.
                double m = *std::max_element(v.begin(), v.end());
                acc = first ? m : std::max(acc, m);
                first = false;
              } else {
                acc += v[0] + v[1] + v[2] + v[3];
              }
            }
          out[((r * c + ch) * oh + ph) * ow + pw] = max_mode ? acc : acc / count;
        }
    }
  }
  return store(ctx.allocate_output(0, {r_count, c, oh, ow}), out);
}

// ---- NonMaxSuppression ------------------------------------------------------

// Corners (y1, x1, y2, x2) ordered so y1 <= y2 and x1 <= x2.
std::array<double, 4> corners(const double* b, bool center) {
  if (center) return {b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2};
  return {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

bool suppresses(const std::array<double, 4>& a, const std::array<double, 4>& b, double threshold) {
  double ih = std::min(a[2], b[2]) - std::max(a[0], b[0]), iw = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  if (ih <= 0 || iw <= 0) return false;
  double inter = ih * iw;
  double area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
  double uni = area_a + area_b - inter;
  if (area_a <= 0 || area_b <= 0 || uni <= 0) return false;
  return inter / uni > threshold;
}

Status run_nms(CpuKernelContext& ctx) {
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  if (boxes.rank() != 3 || boxes.dim(2) != 4 || scores.rank() != 3 || scores.dim(0) != boxes.dim(0) ||
      scores.dim(2) != boxes.dim(1))
    return invalid_model("NonMaxSuppression: boxes {} and scores {} do not fit [B, S, 4] and [B, C, S]",
                         Shape::of(boxes.dims()).to_string(), Shape::of(scores.dims()).to_string());
  int64_t max_out = 0;
  if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> m, ctx.input(2).to_i64_vector());
    max_out = m[0];
  }
  double iou = ctx.has_input(3) && ctx.input(3).numel() > 0 ? ctx.input(3).element_as_double(0) : 0.0;
  bool has_score_threshold = ctx.has_input(4) && ctx.input(4).numel() > 0;
  double score_threshold = has_score_threshold ? ctx.input(4).element_as_double(0) : 0.0;
  if (iou < 0 || iou > 1) return invalid_model("NonMaxSuppression: iou_threshold {} is outside [0, 1]", iou);
  bool center = ctx.node().attr_int("center_point_box", 0) != 0;
  int64_t nb = boxes.dim(0), ns = boxes.dim(1), nc = scores.dim(1);
  std::vector<double> bv = to_doubles(boxes), sv = to_doubles(scores);
  std::vector<int64_t> selected;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t c = 0; c < nc; ++c) {
      const double* s = sv.data() + (b * nc + c) * ns;
      std::vector<int64_t> order;
      for (int64_t i = 0; i < ns; ++i)
        if (!has_score_threshold || s[i] > score_threshold) order.push_back(i);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t z) { return s[a] > s[z]; });
      std::vector<std::array<double, 4>> kept;
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= max_out) break;
        auto box = corners(bv.data() + (b * ns + i) * 4, center);
        bool drop = false;
        for (const auto& k : kept) drop = drop || suppresses(k, box, iou);
        if (drop) continue;
        kept.push_back(box);
        selected.insert(selected.end(), {b, c, i});
      }
    }
  Tensor& y = ctx.allocate_output(0, {static_cast<int64_t>(selected.size() / 3), 3});
  std::copy(selected.begin(), selected.end(), y.mutable_data<int64_t>());
  return Status::ok();
}

// ---- DeformConv -------------------------------------------------------------

// Bilinear sample of an h x w plane at (y, x); neighbours outside read zero.
double bilinear_zero(const double* img, int64_t h, int64_t w, double y, double x) {
  double fy = std::floor(y), fx = std::floor(x);
  auto y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
  double ly = y - fy, lx = x - fx, acc = 0;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      int64_t yy = y0 + dy, xx = x0 + dx;
      if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
      acc += (dy ? ly : 1 - ly) * (dx ? lx : 1 - lx) * img[yy * w + xx];
    }
  return acc;
}

Status run_deform_conv(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& wt = ctx.input(1);
  const Tensor& offset = ctx.input(2);
  const Node& node = ctx.node();
  if (x.rank() != 4) return unsupported("DeformConv: only 2-D inputs are supported, got rank {}", x.rank());
  KILN_ASSIGN_OR_RETURN(WindowPlan p, plan_window(node, x.dims(), {wt.dims().begin() + 2, wt.dims().end()}));
  int64_t group = node.attr_int("group", 1), og = node.attr_int("offset_group", 1);
  int64_t c = p.channels, m = wt.dim(0), kh = p.kernel[1], kw = p.kernel[2], oh = p.out[1], ow = p.out[2];
  int64_t h = p.in[1], w = p.in[2];
  if (group < 1 || og < 1 || c % group || m % group || c % og || wt.dim(1) * group != c)
    return invalid_model("DeformConv: channels {} / weight {} do not fit group {} and offset_group {}", c,
                         Shape::of(wt.dims()).to_string(), group, og);
  if (offset.numel() != p.batch * og * kh * kw * 2 * oh * ow)
    return invalid_model("DeformConv: offset {} does not fit [N, {}, {}, {}]", Shape::of(offset.dims()).to_string(),
                         og * kh * kw * 2, oh, ow);
  const Tensor* mask = ctx.has_input(4) ? &ctx.input(4) : nullptr;
  if (mask && mask->numel() != p.batch * og * kh * kw * oh * ow)
    return invalid_model("DeformConv: mask shape does not fit");
  std::vector<double> xv = to_doubles(x), wv = to_doubles(wt), ov = to_doubles(offset);
  std::vector<double> mv = mask ? to_doubles(*mask) : std::vector<double>();
  std::vector<double> bv =
      ctx.has_input(3) ? to_doubles(ctx.input(3)) : std::vector<double>(static_cast<size_t>(m), 0.0);
  if (static_cast<int64_t>(bv.size()) != m)
    return invalid_model("DeformConv: B has {} values for {} output channels", bv.size(), m);
  std::vector<double> out(static_cast<size_t>(p.batch * m * oh * ow));
  int64_t cg = c / group, mg = m / group, cog = c / og;
  parallel_for(p.batch * m, oh * ow * cg * kh * kw, [&](int64_t begin, int64_t end) {
    for (int64_t nm = begin; nm < end; ++nm) {
      int64_t n = nm / m, oc = nm % m, g = oc / mg;
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = bv[oc];
          for (int64_t ci = 0; ci < cg; ++ci) {
            int64_t ic = g * cg + ci, o = ic / cog;
            const double* img = xv.data() + (n * c + ic) * h * w;
            for (int64_t a = 0; a < kh; ++a)
              for (int64_t b = 0; b < kw; ++b) {
                int64_t k = a * kw + b;
                int64_t base = ((n * og + o) * kh * kw + k) * 2;
                double dy = ov[(base * oh + i) * ow + j], dx = ov[((base + 1) * oh + i) * ow + j];
                double y = static_cast<double>(i * p.stride[1] - p.pad_begin[1] + a * p.dilation[1]) + dy;
                double xx = static_cast<double>(j * p.stride[2] - p.pad_begin[2] + b * p.dilation[2]) + dx;
                double v = bilinear_zero(img, h, w, y, xx);
                if (mask) v *= mv[(((n * og + o) * kh * kw + k) * oh + i) * ow + j];
                acc += v * wv[((oc * cg + ci) * kh + a) * kw + b];
              }
          }
          out[(nm * oh + i) * ow + j] = acc;
        }
    }
  });
  return store(ctx.allocate_output(0, {p.batch, m, oh, ow}), out);
}

}  // namespace

KILN_CPU_KERNEL("", "GridSample", run_grid_sample);
KILN_CPU_KERNEL("", "AffineGrid", run_affine_grid);
KILN_CPU_KERNEL("", "RoiAlign", run_roi_align);
KILN_CPU_KERNEL("", "NonMaxSuppression", run_nms);
KILN_CPU_KERNEL("", "DeformConv", run_deform_conv);

}  // namespace kiln
