// kiln.SpaceToDepthPad (space_to_depth_pad.h): its attribute checks, shared
// with the CPU and CUDA kernels, and its shape and type inference.
#include "ops/space_to_depth_pad.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ops/tensor_infer.h"

namespace kiln {
namespace {

bool takes(DType t) { return t == DType::kF16 || t == DType::kBF16 || t == DType::kF32 || t == DType::kF64; }

// H + before + after as blocks of 2, or an error naming the axis.
Expected<int64_t> blocks(const char* axis, int64_t len, int64_t before, int64_t after) {
  const int64_t padded = len + before + after;
  if (padded % 2 != 0)
    return invalid_model("kiln.SpaceToDepthPad: {} + pads = {} + {} + {} = {} is odd; the 2x2 blocks must tile it",
                         axis, len, before, after, padded);
  return padded / 2;
}

Status infer_space_to_depth_pad(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(SpaceToDepthPadAttrs a, space_to_depth_pad_attrs(ctx.node(), ctx.input_dtype(0)));
  const DType to = a.to != DType::kUndefined ? a.to : ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  if (!in) {
    ctx.set_output(0, to, unknown_dims(4));
    return Status::ok();
  }
  if (in->size() != 4)
    return invalid_model("kiln.SpaceToDepthPad: X must be 4-D [N, C, H, W], has rank {}", in->size());
  const Dims& d = *in;
  if (d[1].is_fixed() && d[1].value > a.channels)
    return invalid_model("kiln.SpaceToDepthPad: channels = {} is below X's {} channels", a.channels, d[1].value);
  auto axis = [&](const char* name, const Dim& len, int64_t before, int64_t after) -> Expected<Dim> {
    if (!len.is_fixed()) return dim_div(dim_add(len, Dim(before + after)), Dim(2));
    KILN_ASSIGN_OR_RETURN(int64_t b, blocks(name, len.value, before, after));
    return Dim(b);
  };
  KILN_ASSIGN_OR_RETURN(Dim hb, axis("H", d[2], a.top, a.bottom));
  KILN_ASSIGN_OR_RETURN(Dim wb, axis("W", d[3], a.left, a.right));
  ctx.set_output(0, to, Shape(Dims{d[0], hb, wb, Dim(4 * a.channels)}));
  return Status::ok();
}

}  // namespace

Expected<SpaceToDepthPadAttrs> space_to_depth_pad_attrs(const Node& node, DType x) {
  if (x != DType::kUndefined && !takes(x))
    return invalid_model("kiln.SpaceToDepthPad: X is {}; it must be f16, bf16, f32 or f64", dtype_name(x));
  SpaceToDepthPadAttrs a;
  const std::vector<int64_t> pads = node.attr_ints("pads");
  if (pads.size() != 4)
    return invalid_model("kiln.SpaceToDepthPad: pads has {} entries, expected 4 [top, left, bottom, right]",
                         pads.size());
  for (int64_t p : pads)
    if (p < 0) return invalid_model("kiln.SpaceToDepthPad: pads [{}] must not be negative", fmt::join(pads, ","));
  a.top = pads[0], a.left = pads[1], a.bottom = pads[2], a.right = pads[3];
  if (!node.has_attr("channels")) return invalid_model("kiln.SpaceToDepthPad: attribute 'channels' is required");
  a.channels = node.attr_int("channels", 0);
  // 4 * channels is a dim: anything past 2^40 is no real image.
  if (a.channels <= 0 || a.channels > (int64_t(1) << 40))
    return invalid_model("kiln.SpaceToDepthPad: channels = {} must be positive", a.channels);
  if (node.has_attr("to")) {
    const int64_t to = node.attr_int("to", 0);
    if (!dtype_is_known(static_cast<int>(to)) || !takes(static_cast<DType>(to)))
      return invalid_model("kiln.SpaceToDepthPad: 'to' = {} must be f16, bf16, f32 or f64", to);
    a.to = static_cast<DType>(to);
  }
  return a;
}

Expected<std::array<int64_t, 4>> space_to_depth_pad_dims(const SpaceToDepthPadAttrs& a, const std::vector<int64_t>& x) {
  if (x.size() != 4) return invalid_model("kiln.SpaceToDepthPad: X must be 4-D [N, C, H, W], has rank {}", x.size());
  if (x[1] > a.channels)
    return invalid_model("kiln.SpaceToDepthPad: channels = {} is below X's {} channels", a.channels, x[1]);
  KILN_ASSIGN_OR_RETURN(int64_t hb, blocks("H", x[2], a.top, a.bottom));
  KILN_ASSIGN_OR_RETURN(int64_t wb, blocks("W", x[3], a.left, a.right));
  return std::array<int64_t, 4>{x[0], hb, wb, 4 * a.channels};
}

namespace {

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.domain = "kiln",
                          .name = "SpaceToDepthPad",
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .infer = infer_space_to_depth_pad,
                          .summary = "NCHW image to zero-padded NHWC 2x2 blocks [N, Hb, Wb, 4 * channels], cast to "
                                     "`to`; the stride-2 stems' input"});
  return true;
}();

}  // namespace
}  // namespace kiln
