// Tensor ops that move blocks of elements: Pad, CenterCropPad, DepthToSpace,
// SpaceToDepth, Col2Im.
#include <fmt/format.h>

#include "ops/tensor_infer.h"

namespace kiln {
namespace {

// The axes a Pad or CenterCropPad applies to, normalized; all axes when absent.
Expected<std::vector<int64_t>> resolve_axes(std::optional<std::vector<int64_t>> given, int64_t rank, const char* op) {
  std::vector<int64_t> axes;
  if (!given) {
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
    return axes;
  }
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t a : *given) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(a, rank, fmt::format("{}: axis", op).c_str()));
    if (seen[static_cast<size_t>(axis)]) return invalid_model("{}: axis {} appears twice", op, a);
    seen[static_cast<size_t>(axis)] = true;
    axes.push_back(axis);
  }
  return axes;
}

Status infer_pad(InferContext& ctx) {
  std::string mode = ctx.attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    return unsupported("Pad: mode '{}' is not supported", mode);
  const DType dtype = ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(in->size());
  auto pads = ctx.input_ints(1);
  std::optional<std::vector<int64_t>> given_axes;
  if (ctx.has_input(3)) {
    given_axes = ctx.input_ints(3);
    if (!given_axes) pads.reset();
  }
  if (!pads) {
    ctx.set_output(0, dtype, unknown_dims(rank));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(auto axes, resolve_axes(given_axes, rank, "Pad"));
  if (pads->size() != 2 * axes.size())
    return invalid_model("Pad: pads has {} entries, expected {} (2 per axis)", pads->size(), 2 * axes.size());
  Dims out = *in;
  for (size_t i = 0; i < axes.size(); ++i) {
    Dim& d = out[static_cast<size_t>(axes[i])];
    int64_t total = (*pads)[i] + (*pads)[i + axes.size()];
    if (d.is_fixed()) {
      if (d.value + total < 0)
        return invalid_model("Pad: pads {} and {} remove more than the dim of {}", (*pads)[i], (*pads)[i + axes.size()],
                             d.value);
      d = Dim(d.value + total);
    } else {
      d = total >= 0 ? dim_add(d, Dim(total)) : Dim::unknown();
    }
  }
  ctx.set_output(0, dtype, Shape(out));
  return Status::ok();
}

Status upgrade_pad(UpgradeContext& ctx) {
  // Pad-1 named its pads "paddings", Pad-2 "pads"; both kept value as a float attribute.
  Node& n = ctx.node();
  if (n.has_attr("paddings")) {
    n.attrs["pads"] = n.attrs["paddings"];
    n.attrs.erase("paddings");
  }
  ctx.move_ints_attr_to_input("pads", 1);
  if (n.has_attr("value")) {
    float v = n.attr_float("value", 0);
    n.attrs.erase("value");
    n.inputs.resize(std::max<size_t>(n.inputs.size(), 3), nullptr);
    n.inputs[2] = ctx.add_constant(Tensor::from_vector<float>(DType::kF32, {}, {v}), "value");
  }
  return Status::ok();
}

Status infer_center_crop_pad(InferContext& ctx) {
  const DType dtype = ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(in->size());
  std::optional<std::vector<int64_t>> given;
  if (ctx.node().has_attr("axes")) given = ctx.attr_ints("axes");
  KILN_ASSIGN_OR_RETURN(auto axes, resolve_axes(given, rank, "CenterCropPad"));
  auto shape = ctx.input_dims_value(1);
  Dims out = *in;
  if (shape && shape->size() != axes.size())
    return invalid_model("CenterCropPad: shape has {} entries for {} axes", shape->size(), axes.size());
  for (size_t i = 0; i < axes.size(); ++i) out[static_cast<size_t>(axes[i])] = shape ? (*shape)[i] : Dim::unknown();
  ctx.set_output(0, dtype, Shape(out));
  return Status::ok();
}

Status infer_depth_space(InferContext& ctx, bool to_space) {
  const char* op = to_space ? "DepthToSpace" : "SpaceToDepth";
  const DType dtype = ctx.input_dtype(0);
  int64_t b = ctx.attr_int("blocksize", 0);
  // blocksize squared must fit in a dim: anything past 2^31 is no real block.
  if (b <= 0 || b > (int64_t(1) << 31)) return invalid_model("{}: blocksize {} must be in 1..2^31", op, b);
  std::string mode = ctx.attr_string("mode", "DCR");
  if (mode != "DCR" && mode != "CRD") return unsupported("{}: mode '{}' is not supported", op, mode);
  const Dims* in = known_dims(ctx, 0);
  if (!in) {
    ctx.set_output(0, dtype, unknown_dims(4));
    return Status::ok();
  }
  if (in->size() != 4) return invalid_model("{}: input must be 4-D (NCHW), has rank {}", op, in->size());
  const Dims& d = *in;
  Dim bb(b * b);
  auto check = [&](const Dim& x, int64_t by, const char* what) -> Status {
    if (x.is_fixed() && x.value % by != 0)
      return invalid_model("{}: {} = {} is not a multiple of {}", op, what, x.value, by);
    return Status::ok();
  };
  if (to_space) {
    KILN_RETURN_IF_ERROR(check(d[1], b * b, "C"));
    ctx.set_output(0, dtype, Shape(Dims{d[0], dim_div(d[1], bb), dim_mul(d[2], Dim(b)), dim_mul(d[3], Dim(b))}));
  } else {
    KILN_RETURN_IF_ERROR(check(d[2], b, "H"));
    KILN_RETURN_IF_ERROR(check(d[3], b, "W"));
    ctx.set_output(0, dtype, Shape(Dims{d[0], dim_mul(d[1], bb), dim_div(d[2], Dim(b)), dim_div(d[3], Dim(b))}));
  }
  return Status::ok();
}

Status infer_col2im(InferContext& ctx) {
  const DType dtype = ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  auto image = ctx.input_dims_value(1);
  auto block = ctx.input_ints(2);
  if (in && in->size() != 3)
    return invalid_model("Col2Im: input must be 3-D [N, C*prod(block), L], has rank {}", in->size());
  if (!in || !image || !block) {
    int64_t n = static_length(ctx, 1);
    ctx.set_output(0, dtype, unknown_dims(n < 0 ? -1 : n + 2));
    return Status::ok();
  }
  if (block->size() != image->size())
    return invalid_model("Col2Im: image_shape has {} dims but block_shape {}", image->size(), block->size());
  int64_t prod = 1;
  for (int64_t k : *block) prod *= k;
  if (prod <= 0) return invalid_model("Col2Im: block_shape entries must be positive");
  const Dim& cb = (*in)[1];
  if (cb.is_fixed() && cb.value % prod != 0)
    return invalid_model("Col2Im: input dim 1 = {} is not a multiple of the block size {}", cb.value, prod);
  Dims out{(*in)[0], dim_div(cb, Dim(prod))};
  out.insert(out.end(), image->begin(), image->end());
  ctx.set_output(0, dtype, Shape(out));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(
      OpSchema{.name = "Pad", .min_inputs = 2, .max_inputs = 4, .infer = infer_pad, .upgrades = {{11, upgrade_pad}}});
  OpRegistration(OpSchema{
      .name = "CenterCropPad", .since_opset = 18, .min_inputs = 2, .max_inputs = 2, .infer = infer_center_crop_pad});
  OpRegistration(OpSchema{.name = "DepthToSpace", .min_inputs = 1, .max_inputs = 1, .infer = [](InferContext& c) {
                            return infer_depth_space(c, true);
                          }});
  OpRegistration(OpSchema{.name = "SpaceToDepth", .min_inputs = 1, .max_inputs = 1, .infer = [](InferContext& c) {
                            return infer_depth_space(c, false);
                          }});
  OpRegistration(
      OpSchema{.name = "Col2Im", .since_opset = 18, .min_inputs = 3, .max_inputs = 3, .infer = infer_col2im});
  return true;
}();

}  // namespace
}  // namespace kiln
