// Signal processing: DFT, STFT, window functions and MelWeightMatrix, plus
// ImageDecoder (schema only: kiln decodes no images).
#include <fmt/format.h>

#include "ops/infer_util.h"

namespace kiln {
namespace {

Status require_float(const InferContext& ctx, size_t i) {
  DType t = ctx.input_dtype(i);
  if (t != DType::kUndefined && !dtype_is_float(t))
    return invalid_model("{}: input {} must be a float type, got {}", ctx.node().op_type, i, dtype_name(t));
  return Status::ok();
}

// A scalar integer input's value when known.
std::optional<int64_t> scalar_input(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return std::nullopt;
  auto v = ctx.input_ints(i);
  if (!v || v->size() != 1) return std::nullopt;
  return (*v)[0];
}

Status infer_dft(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "DFT"));
  KILN_RETURN_IF_ERROR(require_float(ctx, 0));
  const Shape& in = ctx.input_shape(0);
  DType dt = ctx.input_dtype(0);
  if (!in.has_rank()) {
    ctx.set_output(0, dt, Shape());
    return Status::ok();
  }
  if (in.rank() < 2) return invalid_model("DFT: input rank {} must be at least 2 ([..., N, 1 or 2])", in.rank());
  const Dim& last = in[static_cast<size_t>(in.rank() - 1)];
  if (last.is_fixed() && last.value != 1 && last.value != 2)
    return invalid_model("DFT: the last dim is {}, must be 1 (real) or 2 (complex)", last.value);
  bool inverse = ctx.attr_int("inverse", 0) != 0, onesided = ctx.attr_int("onesided", 0) != 0;
  Dims d = *in.dims;
  int64_t axis = -2;
  if (ctx.has_input(2)) {
    auto a = scalar_input(ctx, 2);
    if (!a) {  // the axis is data: only the rank is known
      ctx.set_output(0, dt, Shape(Dims(d.size(), Dim::unknown())));
      return Status::ok();
    }
    axis = *a;
  }
  if (axis < 0) axis += in.rank();
  if (axis < 0 || axis >= in.rank() - 1)
    return invalid_model("DFT: axis {} is out of range for rank {}", axis, in.rank());
  Dim& len = d[static_cast<size_t>(axis)];
  Dim n = len;
  if (ctx.has_input(1)) {
    auto l = scalar_input(ctx, 1);
    n = l ? Dim(*l) : Dim::unknown();
  } else if (inverse && onesided) {
    n = len.is_fixed() ? Dim(2 * (len.value - 1)) : Dim::unknown();
  }
  if (n.is_fixed() && n.value < 1) return invalid_model("DFT: dft_length {} must be positive", n.value);
  if (!inverse && onesided)
    len = n.is_fixed() ? Dim(n.value / 2 + 1) : Dim::unknown();
  else
    len = n;
  d.back() = inverse && onesided ? Dim(1) : Dim(2);
  ctx.set_output(0, dt, Shape(std::move(d)));
  return Status::ok();
}

// DFT-17 read the axis from an attribute (default 1); DFT-20 from input 2.
Status upgrade_dft17(UpgradeContext& ctx) {
  Node& n = ctx.node();
  int64_t axis = n.attr_int("axis", 1);
  n.attrs.erase("axis");
  if (n.inputs.size() < 3) n.inputs.resize(3, nullptr);
  n.inputs[2] = ctx.add_constant(Tensor::scalar_i64(axis), "axis");
  return Status::ok();
}

Status infer_stft(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "STFT"));
  KILN_RETURN_IF_ERROR(require_float(ctx, 0));
  const Shape& in = ctx.input_shape(0);
  DType dt = ctx.input_dtype(0);
  if (in.has_rank() && in.rank() != 3)
    return invalid_model("STFT: signal must be [batch, length, 1 or 2], got {}", in.to_string());
  bool onesided = ctx.attr_int("onesided", 1) != 0;
  std::optional<int64_t> frame_len = scalar_input(ctx, 3);
  if (!frame_len && ctx.has_input(2) && ctx.input_shape(2).has_rank() && ctx.input_shape(2).rank() == 1 &&
      ctx.input_shape(2)[0].is_fixed())
    frame_len = ctx.input_shape(2)[0].value;
  std::optional<int64_t> step = scalar_input(ctx, 1);
  Dim batch = in.has_rank() ? in[0] : Dim::unknown();
  Dim frames = Dim::unknown(), bins = Dim::unknown();
  if (frame_len) {
    if (*frame_len < 1) return invalid_model("STFT: frame_length {} must be positive", *frame_len);
    bins = Dim(onesided ? *frame_len / 2 + 1 : *frame_len);
  }
  if (step && *step < 1) return invalid_model("STFT: frame_step {} must be positive", *step);
  if (frame_len && step && in.has_rank() && in[1].is_fixed()) frames = Dim(1 + (in[1].value - *frame_len) / *step);
  ctx.set_output(0, dt, Shape(Dims{batch, frames, bins, Dim(2)}));
  return Status::ok();
}

Expected<DType> output_datatype(const InferContext& ctx, DType fallback) {
  int64_t v = ctx.attr_int("output_datatype", static_cast<int64_t>(fallback));
  if (!dtype_is_known(static_cast<int>(v)) || v == static_cast<int64_t>(DType::kString))
    return invalid_model("{}: output_datatype {} is not a numeric ONNX dtype", ctx.node().op_type, v);
  return static_cast<DType>(v);
}

Status infer_window(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DType dt, output_datatype(ctx, DType::kF32));
  auto size = scalar_input(ctx, 0);
  if (size && *size < 0) return invalid_model("{}: size {} is negative", ctx.node().op_type, *size);
  ctx.set_output(0, dt, Shape(Dims{size ? Dim(*size) : ctx.new_symbol("size")}));
  return Status::ok();
}

Status infer_mel_weight_matrix(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DType dt, output_datatype(ctx, DType::kF32));
  auto mel = scalar_input(ctx, 0), dft = scalar_input(ctx, 1);
  Dim rows = dft ? Dim(*dft / 2 + 1) : ctx.new_symbol("bins");
  Dim cols = mel ? Dim(*mel) : ctx.new_symbol("mel_bins");
  ctx.set_output(0, dt, Shape(Dims{rows, cols}));
  return Status::ok();
}

// [H, W, C] for a colour image, [H, W, 1] for grayscale; sizes known only after decoding.
Status infer_image_decoder(InferContext& ctx) {
  std::string mode = ctx.attr_string("pixel_format", "RGB");
  if (mode != "RGB" && mode != "BGR" && mode != "Grayscale")
    return invalid_model("ImageDecoder: pixel_format '{}' must be RGB, BGR or Grayscale", mode);
  Dim c = mode == "Grayscale" ? Dim(1) : Dim(3);
  ctx.set_output(0, DType::kU8, Shape(Dims{ctx.new_symbol("height"), ctx.new_symbol("width"), c}));
  return Status::ok();
}

void window(const char* name) {
  OpRegistration(OpSchema{.name = name, .since_opset = 17, .min_inputs = 1, .max_inputs = 1, .infer = infer_window});
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.name = "DFT",
                          .since_opset = 17,
                          .min_inputs = 1,
                          .max_inputs = 3,
                          .infer = infer_dft,
                          .upgrades = {{20, upgrade_dft17}}});
  OpRegistration(OpSchema{.name = "STFT", .since_opset = 17, .min_inputs = 2, .max_inputs = 4, .infer = infer_stft});
  for (const char* w : {"HannWindow", "HammingWindow", "BlackmanWindow"}) window(w);
  OpRegistration(OpSchema{.name = "MelWeightMatrix",
                          .since_opset = 17,
                          .min_inputs = 5,
                          .max_inputs = 5,
                          .infer = infer_mel_weight_matrix});
  OpRegistration(OpSchema{.name = "ImageDecoder",
                          .since_opset = 20,
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .infer = infer_image_decoder,
                          .summary = "not supported: kiln decodes no images"});
  return true;
}();

}  // namespace
}  // namespace kiln
