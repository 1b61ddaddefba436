// Resize (Upsample is rewritten into Resize on import) and Col2Im. The host
// derives per-dim scales, roi and which dims are resized exactly as the CPU
// kernel does; the kernels sample and accumulate in double.
#include "backends/cuda/kernels/resize.cuh"

#include <cmath>
#include <optional>

#include "backends/cuda/ops/data_movement_support.h"

namespace kiln::cuda {
namespace {

std::vector<double> host_doubles(const KernelContext& ctx, size_t i) {
  std::vector<double> v;
  const Tensor* t = ctx.host_input(i);
  if (!t) return v;
  for (int64_t k = 0; k < t->numel(); ++k) v.push_back(t->element_as_double(k));
  return v;
}

Status read_modes(const Node& n, ResizeParams& p) {
  const std::string mode = n.attr_string("mode", "nearest");
  const std::string ctm = n.attr_string("coordinate_transformation_mode", "half_pixel");
  const std::string nearest = n.attr_string("nearest_mode", "round_prefer_floor");
  if (mode == "nearest")
    p.mode = ResizeMode::kNearest;
  else if (mode == "linear")
    p.mode = ResizeMode::kLinear;
  else if (mode == "cubic")
    p.mode = ResizeMode::kCubic;
  else
    return unsupported("Resize: mode '{}'", mode);
  if (ctm == "half_pixel")
    p.coordinate = ResizeCoordinate::kHalfPixel;
  else if (ctm == "half_pixel_symmetric")
    p.coordinate = ResizeCoordinate::kHalfPixelSymmetric;
  else if (ctm == "pytorch_half_pixel")
    p.coordinate = ResizeCoordinate::kPytorchHalfPixel;
  else if (ctm == "align_corners")
    p.coordinate = ResizeCoordinate::kAlignCorners;
  else if (ctm == "asymmetric")
    p.coordinate = ResizeCoordinate::kAsymmetric;
  else if (ctm == "tf_crop_and_resize")
    p.coordinate = ResizeCoordinate::kTfCropAndResize;
  else if (ctm == "tf_half_pixel_for_nn")
    p.coordinate = ResizeCoordinate::kTfHalfPixelForNN;
  else
    return unsupported("Resize: coordinate_transformation_mode '{}'", ctm);
  if (nearest == "round_prefer_floor")
    p.nearest = NearestMode::kRoundPreferFloor;
  else if (nearest == "round_prefer_ceil")
    p.nearest = NearestMode::kRoundPreferCeil;
  else if (nearest == "floor")
    p.nearest = NearestMode::kFloor;
  else if (nearest == "ceil")
    p.nearest = NearestMode::kCeil;
  else
    return unsupported("Resize: nearest_mode '{}'", nearest);
  p.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
  p.extrapolation = n.attr_float("extrapolation_value", 0.0f);
  p.antialias = n.attr_int("antialias", 0) != 0;
  p.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
  return Status::ok();
}

Status run_resize(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  ResizeParams p;
  KILN_RETURN_IF_ERROR(read_modes(ctx.node(), p));
  const auto rank = static_cast<size_t>(x.rank());
  std::vector<int64_t> axes = ctx.node().attr_ints("axes");
  if (axes.empty())
    for (size_t i = 0; i < rank; ++i) axes.push_back(static_cast<int64_t>(i));
  for (auto& a : axes) {
    if (a < -x.rank() || a >= x.rank()) return invalid_argument("Resize: axis {} out of range", a);
    a = dm::positive_axis(a, x.rank());
  }
  p.scale.assign(rank, 1.0), p.roi_lo.assign(rank, 0.0), p.roi_hi.assign(rank, 1.0);
  const std::vector<double> roi = host_doubles(ctx, 1), scales = host_doubles(ctx, 2);
  if (!roi.empty()) {
    if (roi.size() != 2 * axes.size())
      return invalid_argument("Resize: roi has {} values for {} axes", roi.size(), axes.size());
    for (size_t i = 0; i < axes.size(); ++i) p.roi_lo[axes[i]] = roi[i], p.roi_hi[axes[i]] = roi[i + axes.size()];
  }
  if (!scales.empty()) {
    if (scales.size() != axes.size())
      return invalid_argument("Resize: {} scales for {} axes", scales.size(), axes.size());
    for (size_t i = 0; i < axes.size(); ++i) p.scale[axes[i]] = scales[i];
  } else {
    const std::string policy = ctx.node().attr_string("keep_aspect_ratio_policy", "stretch");
    KILN_ASSIGN_OR_RETURN(auto sizes, dm::host_ints(ctx, 3));
    if (sizes.size() != axes.size()) return invalid_argument("Resize: {} sizes for {} axes", sizes.size(), axes.size());
    std::optional<double> common;
    for (size_t i = 0; i < axes.size(); ++i) {
      const double s = static_cast<double>(sizes[i]) / static_cast<double>(x.dims[axes[i]]);
      p.scale[axes[i]] = s;
      common = !common ? s : (policy == "not_larger" ? std::min(*common, s) : std::max(*common, s));
    }
    if (policy != "stretch")
      for (int64_t a : axes) p.scale[a] = *common;
  }
  p.resized.assign(rank, false);
  for (size_t a = 0; a < rank; ++a) {
    const bool identity = std::fabs(p.scale[a] - 1.0) < 1e-9 && y.dims[a] == x.dims[a] &&
                          std::fabs(p.roi_lo[a]) < 1e-9 && std::fabs(p.roi_hi[a] - 1.0) < 1e-9;
    p.resized[a] = !identity;
  }
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = y.data;
  p.in_dims = x.dims;
  p.out_dims = y.dims;
  return launch_resize(p, ctx.stream());
}

Status supports_resize(const Node& n) {
  ResizeParams p;
  KILN_RETURN_IF_ERROR(read_modes(n, p));
  return dm::supports_numeric(n, 0);
}

Status run_col2im(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  Col2ImParams p;
  KILN_ASSIGN_OR_RETURN(p.image, dm::host_ints(ctx, 1));
  KILN_ASSIGN_OR_RETURN(p.block, dm::host_ints(ctx, 2));
  const size_t nd = p.image.size();
  auto attr = [&](const char* key, int64_t fill, size_t n) {
    auto v = ctx.node().attr_ints(key);
    return v.empty() ? std::vector<int64_t>(n, fill) : v;
  };
  p.dilations = attr("dilations", 1, nd), p.strides = attr("strides", 1, nd), p.pads = attr("pads", 0, 2 * nd);
  if (x.rank() != 3 || p.block.size() != nd)
    return invalid_argument("Col2Im: inconsistent ranks of input, image_shape and block_shape");
  int64_t kernel = 1;
  for (int64_t b : p.block) kernel *= b;
  if (kernel <= 0 || x.dims[1] % kernel != 0)
    return invalid_argument("Col2Im: {} input channels for blocks of {}", x.dims[1], kernel);
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = ctx.output(0).data;
  p.batch = x.dims[0];
  p.channels = x.dims[1] / kernel;
  p.blocks_in = x.dims[2];
  return launch_col2im(p, ctx.stream());
}

}  // namespace

KILN_CUDA_KERNEL("", "Resize", {.run = run_resize, .host_inputs = {1, 2, 3}, .supports = supports_resize});
KILN_CUDA_KERNEL("", "Col2Im", {.run = run_col2im, .host_inputs = {1, 2}, .supports = [](const Node& n) {
                                  return dm::supports_numeric(n, 0);
                                }});

}  // namespace kiln::cuda
