// Image ops: Resize (and Upsample, read as Resize), GridSample, AffineGrid,
// RoiAlign and NonMaxSuppression.
#include <fmt/format.h>

#include <cmath>

#include "ops/infer_util.h"

namespace kiln {
namespace {

// A Resize input given as an empty tensor counts as absent (opset 11 needed
// placeholders for roi and scales).
bool present_nonempty(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return false;
  const Shape& s = ctx.input_shape(i);
  return !(s.has_rank() && s.numel() == 0);
}

Status infer_resize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "Resize"));
  const Shape& x = ctx.input_shape(0);
  DType dtype = ctx.input_dtype(0);
  if (!x.has_rank()) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  int64_t rank = x.rank();
  std::vector<int64_t> axes = ctx.attr_ints("axes");
  if (axes.empty())
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  for (auto& a : axes) {
    KILN_ASSIGN_OR_RETURN(a, normalize_axis(a, rank, "Resize axes"));
  }
  bool has_scales = present_nonempty(ctx, 2), has_sizes = present_nonempty(ctx, 3);
  if (has_scales == has_sizes)
    return invalid_model("Resize: exactly one of scales and sizes must be given (got {})",
                         has_scales ? "both" : "neither");
  std::string policy = ctx.attr_string("keep_aspect_ratio_policy", "stretch");
  if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
    return invalid_model("Resize: keep_aspect_ratio_policy '{}' is not stretch, not_larger or not_smaller", policy);
  Dims out = *x.dims;
  if (has_sizes) {
    auto sizes = ctx.input_dims_value(3);
    if (auto fixed = ctx.input_ints(3))
      for (int64_t v : *fixed)
        if (v < 0) return invalid_model("Resize: sizes has a negative value {}", v);
    if (!sizes) {
      for (int64_t a : axes) out[static_cast<size_t>(a)] = Dim::unknown();
    } else if (sizes->size() != axes.size()) {
      return invalid_model("Resize: sizes has {} values for {} axes", sizes->size(), axes.size());
    } else if (policy == "stretch") {
      for (size_t i = 0; i < axes.size(); ++i) out[static_cast<size_t>(axes[i])] = (*sizes)[i];
    } else {
      // One scale for all axes: the smallest (not_larger) or largest ratio.
      std::optional<double> scale;
      bool fixed = true;
      for (size_t i = 0; i < axes.size(); ++i) {
        const Dim& in = out[static_cast<size_t>(axes[i])];
        if (!in.is_fixed() || !(*sizes)[i].is_fixed()) {
          fixed = false;
          break;
        }
        double r = static_cast<double>((*sizes)[i].value) / static_cast<double>(in.value);
        scale = !scale ? r : (policy == "not_larger" ? std::min(*scale, r) : std::max(*scale, r));
      }
      for (int64_t a : axes) {
        Dim& d = out[static_cast<size_t>(a)];
        d = fixed ? Dim(static_cast<int64_t>(*scale * static_cast<double>(d.value) + 0.5)) : Dim::unknown();
      }
    }
  } else {
    const Tensor* scales = ctx.input_value(2);
    if (!scales) {
      for (int64_t a : axes) out[static_cast<size_t>(a)] = Dim::unknown();
    } else {
      if (scales->numel() != static_cast<int64_t>(axes.size()))
        return invalid_model("Resize: scales has {} values for {} axes", scales->numel(), axes.size());
      if (scales->dtype() != DType::kF32) return unsupported("Resize: scales of dtype {}", dtype_name(scales->dtype()));
      for (size_t i = 0; i < axes.size(); ++i) {
        double s = scales->data<float>()[i];
        if (!(s > 0)) return invalid_model("Resize: scale {} for axis {} must be positive", s, axes[i]);
        Dim& d = out[static_cast<size_t>(axes[i])];
        if (d.is_fixed())
          d = Dim(static_cast<int64_t>(std::floor(s * static_cast<double>(d.value))));
        else if (s != 1.0)
          d = Dim::unknown();
      }
    }
  }
  ctx.set_output(0, dtype, Shape(std::move(out)));
  return Status::ok();
}

// Resize before opset 11 took (X, scales) and sampled like Upsample.
Status upgrade_resize_10(UpgradeContext& ctx) {
  Node& n = ctx.node();
  if (n.inputs.size() >= 2) n.inputs = {n.inputs[0], nullptr, n.inputs[1]};
  n.attrs["coordinate_transformation_mode"] = Attribute::of_string("asymmetric");
  n.attrs["nearest_mode"] = Attribute::of_string("floor");
  return Status::ok();
}

// Upsample (opsets 1-9) becomes Resize: the scales input (from opset 9), the
// scales attribute (7) or width/height_scale (1), sampled asymmetrically.
Status upgrade_upsample(UpgradeContext& ctx) {
  Node& n = ctx.node();
  std::string mode = n.attr_string("mode", "nearest");
  if (mode == "bilinear") mode = "linear";
  if (mode != "nearest" && mode != "linear") return unsupported("Upsample: mode '{}' is not nearest or linear", mode);
  Value* scales = n.input(1);
  if (!scales) {
    std::vector<float> s = n.attr_floats("scales");
    if (s.empty()) {
      if (!n.has_attr("height_scale") || !n.has_attr("width_scale"))
        return invalid_model("Upsample: no scales input or attribute");
      s = {1.0f, 1.0f, n.attr_float("height_scale", 1.0f), n.attr_float("width_scale", 1.0f)};
    }
    scales = ctx.add_constant(Tensor::from_vector<float>(DType::kF32, {static_cast<int64_t>(s.size())}, s), "scales");
  }
  n.attrs.clear();
  n.attrs["mode"] = Attribute::of_string(mode);
  n.attrs["coordinate_transformation_mode"] = Attribute::of_string("asymmetric");
  n.attrs["nearest_mode"] = Attribute::of_string("floor");
  n.inputs = {n.inputs[0], nullptr, scales};
  n.op_type = "Resize";
  // The node now has Resize's newest form; it no longer reads at the Upsample opset.
  n.opset = std::max(n.opset, 19);
  return Status::ok();
}

Status infer_grid_sample(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "GridSample"));
  const Shape& x = ctx.input_shape(0);
  const Shape& g = ctx.input_shape(1);
  if (!x.has_rank() || !g.has_rank()) {
    ctx.set_output(0, ctx.input_dtype(0),
                   x.has_rank() ? Shape(Dims(static_cast<size_t>(x.rank()), Dim::unknown())) : Shape());
    return Status::ok();
  }
  if (x.rank() < 3 || g.rank() != x.rank() ||
      (g[static_cast<size_t>(g.rank() - 1)].is_fixed() && g[static_cast<size_t>(g.rank() - 1)].value != x.rank() - 2))
    return invalid_model("GridSample: X {} and grid {} do not fit (grid is [N, spatial..., {}])", x.to_string(),
                         g.to_string(), x.rank() - 2);
  Dims out{x[0], x[1]};
  for (int64_t i = 1; i + 1 < g.rank(); ++i) out.push_back(g[static_cast<size_t>(i)]);
  ctx.set_output(0, ctx.input_dtype(0), Shape(std::move(out)));
  return Status::ok();
}

// GridSample before opset 20 named its modes bilinear and bicubic.
Status upgrade_grid_sample_16(UpgradeContext& ctx) {
  Node& n = ctx.node();
  std::string mode = n.attr_string("mode", "bilinear");
  if (mode == "bilinear") mode = "linear";
  if (mode == "bicubic") mode = "cubic";
  n.attrs["mode"] = Attribute::of_string(mode);
  return Status::ok();
}

Status infer_affine_grid(InferContext& ctx) {
  auto size = ctx.input_dims_value(1);
  DType dtype = ctx.input_dtype(0);
  if (!size) {
    const Shape& s = ctx.input_shape(1);
    if (s.has_rank() && s.rank() == 1 && s[0].is_fixed() && (s[0].value == 4 || s[0].value == 5)) {
      int64_t sp = s[0].value - 2;
      Dims d{Dim::unknown()};
      for (int64_t i = 0; i < sp; ++i) d.push_back(Dim::unknown());
      d.push_back(Dim(sp));
      ctx.set_output(0, dtype, Shape(std::move(d)));
    } else {
      ctx.set_output(0, dtype, Shape());
    }
    return Status::ok();
  }
  if (size->size() != 4 && size->size() != 5)
    return invalid_model("AffineGrid: size has {} values; expected 4 (2-D) or 5 (3-D)", size->size());
  Dims d{(*size)[0]};
  for (size_t i = 2; i < size->size(); ++i) d.push_back((*size)[i]);
  d.push_back(Dim(static_cast<int64_t>(size->size()) - 2));
  ctx.set_output(0, dtype, Shape(std::move(d)));
  return Status::ok();
}

Status infer_roi_align(InferContext& ctx) {
  const Shape& x = ctx.input_shape(0);
  const Shape& rois = ctx.input_shape(1);
  Dim r = rois.has_rank() && rois.rank() == 2 ? rois[0] : Dim::unknown();
  Dim c = x.has_rank() && x.rank() == 4 ? x[1] : Dim::unknown();
  if (x.has_rank() && x.rank() != 4) return invalid_model("RoiAlign: X must be 4-D, got {}", x.to_string());
  std::string mode = ctx.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") return invalid_model("RoiAlign: mode '{}' is not avg or max", mode);
  ctx.set_output(0, ctx.input_dtype(0),
                 Shape(Dims{r, c, Dim(ctx.attr_int("output_height", 1)), Dim(ctx.attr_int("output_width", 1))}));
  return Status::ok();
}

// RoiAlign before opset 16 sampled with what is now "output_half_pixel".
Status upgrade_roi_align_10(UpgradeContext& ctx) {
  Node& n = ctx.node();
  if (!n.has_attr("coordinate_transformation_mode"))
    n.attrs["coordinate_transformation_mode"] = Attribute::of_string("output_half_pixel");
  return Status::ok();
}

Status infer_nms(InferContext& ctx) {
  ctx.set_output(0, DType::kI64, Shape(Dims{ctx.new_symbol("selected"), Dim(3)}));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.name = "Resize",
                          .since_opset = 10,
                          .min_inputs = 1,
                          .max_inputs = 4,
                          .infer = infer_resize,
                          .upgrades = {{11, upgrade_resize_10}}});
  OpRegistration(OpSchema{.name = "Upsample",
                          .since_opset = 1,
                          .min_inputs = 1,
                          .max_inputs = 2,
                          .infer = infer_resize,
                          .upgrades = {{1000, upgrade_upsample}}});
  OpRegistration(OpSchema{.name = "GridSample",
                          .since_opset = 16,
                          .min_inputs = 2,
                          .max_inputs = 2,
                          .infer = infer_grid_sample,
                          .upgrades = {{20, upgrade_grid_sample_16}}});
  OpRegistration(
      OpSchema{.name = "AffineGrid", .since_opset = 20, .min_inputs = 2, .max_inputs = 2, .infer = infer_affine_grid});
  OpRegistration(OpSchema{.name = "RoiAlign",
                          .since_opset = 10,
                          .min_inputs = 3,
                          .max_inputs = 3,
                          .infer = infer_roi_align,
                          .upgrades = {{16, upgrade_roi_align_10}}});
  OpRegistration(
      OpSchema{.name = "NonMaxSuppression", .since_opset = 10, .min_inputs = 2, .max_inputs = 5, .infer = infer_nms});
  return true;
}();

}  // namespace
}  // namespace kiln
