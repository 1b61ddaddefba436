// Tensor ops that pick, place or select elements by index or condition:
// Gather, GatherElements, GatherND, Scatter, ScatterElements, ScatterND,
// TensorScatter, Compress, NonZero, Where, OneHot, Trilu, ReverseSequence,
// EyeLike, Unique, TopK, Dropout.
#include <fmt/format.h>

#include "ops/tensor_infer.h"

namespace kiln {
namespace {

Status require_integer_indices(const InferContext& ctx, size_t i, const char* op) {
  DType t = ctx.input_dtype(i);
  if (t != DType::kUndefined && t != DType::kI32 && t != DType::kI64)
    return invalid_model("{}: indices must be int32 or int64, got {}", op, dtype_name(t));
  return Status::ok();
}

// ---- Gather family ----

Status infer_gather(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_integer_indices(ctx, 1, "Gather"));
  const DType dtype = ctx.input_dtype(0);
  const Dims *data = known_dims(ctx, 0), *indices = known_dims(ctx, 1);
  if (!data || !indices) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(data->size());
  if (rank == 0) return invalid_model("Gather: data must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.attr_int("axis", 0), rank, "Gather: axis"));
  Dims out(data->begin(), data->begin() + axis);
  out.insert(out.end(), indices->begin(), indices->end());
  out.insert(out.end(), data->begin() + axis + 1, data->end());
  ctx.set_output(0, dtype, Shape(out));
  // Picking from a shape value with constant indices (shape[0] -> batch).
  auto value = ctx.input_dims_value(0);
  auto picks = ctx.input_ints(1);
  if (value && picks && rank == 1 && indices->size() <= 1 && dtype_is_integer(dtype)) {
    Dims picked;
    auto n = static_cast<int64_t>(value->size());
    for (int64_t p : *picks) {
      if (p < -n || p >= n) return invalid_model("Gather: index {} is out of range for a dim of {}", p, n);
      picked.push_back((*value)[static_cast<size_t>(p < 0 ? p + n : p)]);
    }
    ctx.set_output_shape_value(0, std::move(picked));
  }
  return Status::ok();
}

Status infer_gather_elements(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_integer_indices(ctx, 1, "GatherElements"));
  const Dims *data = known_dims(ctx, 0), *indices = known_dims(ctx, 1);
  if (data && indices) {
    if (data->size() != indices->size())
      return invalid_model("GatherElements: data has rank {} but indices rank {}", data->size(), indices->size());
    KILN_RETURN_IF_ERROR(
        normalize_axis(ctx.attr_int("axis", 0), static_cast<int64_t>(data->size()), "GatherElements: axis").status());
  }
  ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(1));
  return Status::ok();
}

Status infer_gather_nd(InferContext& ctx) {
  if (ctx.input_dtype(1) != DType::kUndefined && ctx.input_dtype(1) != DType::kI64)
    return invalid_model("GatherND: indices must be int64, got {}", dtype_name(ctx.input_dtype(1)));
  const DType dtype = ctx.input_dtype(0);
  const Dims *data = known_dims(ctx, 0), *indices = known_dims(ctx, 1);
  if (!data || !indices || indices->empty() || !indices->back().is_fixed()) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  int64_t b = ctx.attr_int("batch_dims", 0);
  int64_t m = indices->back().value;
  auto r = static_cast<int64_t>(data->size()), q = static_cast<int64_t>(indices->size());
  if (b < 0 || b >= std::min(r, q))
    return invalid_model("GatherND: batch_dims {} must be below both ranks ({}, {})", b, r, q);
  if (m < 1 || b + m > r)
    return invalid_model("GatherND: index tuples of {} do not fit data of rank {} with batch_dims {}", m, r, b);
  Dims out(indices->begin(), indices->end() - 1);
  out.insert(out.end(), data->begin() + b + m, data->end());
  ctx.set_output(0, dtype, Shape(out));
  return Status::ok();
}

// Scatter*: the output is the data, updated in place.
Status infer_scatter(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_integer_indices(ctx, 1, ctx.node().op_type.c_str()));
  std::string reduction = ctx.attr_string("reduction", "none");
  if (reduction != "none" && reduction != "add" && reduction != "mul" && reduction != "max" && reduction != "min")
    return unsupported("{}: reduction '{}' is not supported", ctx.node().op_type, reduction);
  if (ctx.input_dtype(2) != DType::kUndefined && ctx.input_dtype(0) != DType::kUndefined &&
      ctx.input_dtype(2) != ctx.input_dtype(0))
    return invalid_model("{}: updates are {} but data is {}", ctx.node().op_type, dtype_name(ctx.input_dtype(2)),
                         dtype_name(ctx.input_dtype(0)));
  ctx.set_output(0, ctx.input_type(0));
  return Status::ok();
}

Status infer_tensor_scatter(InferContext& ctx) {
  std::string mode = ctx.attr_string("mode", "linear");
  if (mode != "linear" && mode != "circular") return unsupported("TensorScatter: mode '{}' is not supported", mode);
  ctx.set_output(0, ctx.input_type(0));
  return Status::ok();
}

// ---- Compress, NonZero, Where ----

Status infer_compress(InferContext& ctx) {
  if (ctx.input_dtype(1) != DType::kUndefined && ctx.input_dtype(1) != DType::kBool)
    return invalid_model("Compress: condition must be bool, got {}", dtype_name(ctx.input_dtype(1)));
  const DType dtype = ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  // The kept count depends on the condition's contents.
  Dim kept = ctx.new_symbol("kept");
  if (const Tensor* cond = ctx.input_value(1)) {
    int64_t limit = cond->numel();
    if (in && !ctx.node().has_attr("axis")) {
      Dim total = dims_product(*in, 0, in->size());
      if (total.is_fixed()) limit = std::min(limit, total.value);
    } else if (in) {
      auto axis = normalize_axis(ctx.attr_int("axis", 0), static_cast<int64_t>(in->size()), "Compress: axis");
      if (axis && (*in)[static_cast<size_t>(*axis)].is_fixed())
        limit = std::min(limit, (*in)[static_cast<size_t>(*axis)].value);
    }
    int64_t count = 0;
    for (int64_t i = 0; i < limit; ++i) count += cond->data<uint8_t>()[i] != 0;
    kept = Dim(count);
  }
  if (!ctx.node().has_attr("axis")) {
    ctx.set_output(0, dtype, Shape(Dims{kept}));
    return Status::ok();
  }
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalize_axis(ctx.attr_int("axis", 0), static_cast<int64_t>(in->size()), "Compress: axis"));
  Dims out = *in;
  out[static_cast<size_t>(axis)] = kept;
  ctx.set_output(0, dtype, Shape(out));
  return Status::ok();
}

Status infer_nonzero(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  Dim rank = in ? Dim(static_cast<int64_t>(std::max<size_t>(in->size(), 1))) : Dim::unknown();
  ctx.set_output(0, DType::kI64, Shape(Dims{rank, ctx.new_symbol("nonzero")}));
  return Status::ok();
}

Status infer_where(InferContext& ctx) {
  if (ctx.input_dtype(0) != DType::kUndefined && ctx.input_dtype(0) != DType::kBool)
    return invalid_model("Where: condition must be bool, got {}", dtype_name(ctx.input_dtype(0)));
  if (ctx.input_dtype(1) != ctx.input_dtype(2))
    return invalid_model("Where: X is {} but Y is {}", dtype_name(ctx.input_dtype(1)), dtype_name(ctx.input_dtype(2)));
  KILN_ASSIGN_OR_RETURN(Shape s, broadcast_shapes({&ctx.input_shape(0), &ctx.input_shape(1), &ctx.input_shape(2)}));
  ctx.set_output(0, ctx.input_dtype(1), std::move(s));
  return Status::ok();
}

// ---- OneHot, Trilu, ReverseSequence, EyeLike ----

Status infer_onehot(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  const DType dtype = ctx.input_dtype(2);
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  auto out_rank = static_cast<int64_t>(in->size()) + 1;
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.attr_int("axis", -1), out_rank, "OneHot: axis"));
  Dim depth = Dim::unknown();
  if (const Tensor* t = ctx.input_value(1)) {
    if (t->numel() != 1) return invalid_model("OneHot: depth must have one element, has {}", t->numel());
    double d = t->element_as_double(0);
    if (!(d >= 1)) return invalid_model("OneHot: depth {} must be at least 1", d);
    depth = Dim(static_cast<int64_t>(d));
  } else if (auto v = ctx.input_dims_value(1); v && v->size() == 1) {
    depth = (*v)[0];
  }
  Dims out = *in;
  out.insert(out.begin() + axis, depth);
  ctx.set_output(0, dtype, Shape(out));
  return Status::ok();
}

Status infer_trilu(InferContext& ctx) {
  if (const Dims* in = known_dims(ctx, 0); in && in->size() < 2)
    return invalid_model("Trilu: input must have rank >= 2, has {}", in->size());
  return infer_same_as_input0(ctx);
}

Status infer_reverse_sequence(InferContext& ctx) {
  int64_t batch = ctx.attr_int("batch_axis", 1), time = ctx.attr_int("time_axis", 0);
  if (!((batch == 0 && time == 1) || (batch == 1 && time == 0)))
    return invalid_model("ReverseSequence: batch_axis {} and time_axis {} must be 0 and 1 in some order", batch, time);
  return infer_same_as_input0(ctx);
}

Status infer_eye_like(InferContext& ctx) {
  if (const Dims* in = known_dims(ctx, 0); in && in->size() != 2)
    return invalid_model("EyeLike: input must be 2-D, has rank {}", in->size());
  DType dtype = ctx.input_dtype(0);
  if (ctx.node().has_attr("dtype")) {
    int64_t v = ctx.attr_int("dtype", 0);
    if (!dtype_is_known(static_cast<int>(v))) return invalid_model("EyeLike: dtype {} is not an ONNX dtype", v);
    dtype = static_cast<DType>(v);
  }
  ctx.set_output(0, dtype, ctx.input_shape(0));
  return Status::ok();
}

// ---- Unique, TopK, Dropout ----

Status infer_unique(InferContext& ctx) {
  const DType dtype = ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  Dim count = ctx.new_symbol("unique");
  Shape y;
  Dim inverse_len = Dim::unknown();
  if (!ctx.node().has_attr("axis")) {
    y = Shape(Dims{count});
    if (in) inverse_len = dims_product(*in, 0, in->size());
  } else if (in) {
    KILN_ASSIGN_OR_RETURN(int64_t axis,
                          normalize_axis(ctx.attr_int("axis", 0), static_cast<int64_t>(in->size()), "Unique: axis"));
    Dims d = *in;
    inverse_len = d[static_cast<size_t>(axis)];
    d[static_cast<size_t>(axis)] = count;
    y = Shape(d);
  }
  ctx.set_output(0, dtype, y);
  if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kI64, Shape(Dims{count}));
  if (ctx.num_outputs() > 2) ctx.set_output(2, DType::kI64, Shape(Dims{inverse_len}));
  if (ctx.num_outputs() > 3) ctx.set_output(3, DType::kI64, Shape(Dims{count}));
  return Status::ok();
}

Status infer_topk(InferContext& ctx) {
  const DType dtype = ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    ctx.set_output(1, DType::kI64, Shape());
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalize_axis(ctx.attr_int("axis", -1), static_cast<int64_t>(in->size()), "TopK: axis"));
  Dims out = *in;
  Dim k = Dim::unknown();
  if (auto ints = ctx.input_ints(1)) {
    if (ints->size() != 1 || (*ints)[0] < 0) return invalid_model("TopK: K must be one non-negative value");
    const Dim& d = (*in)[static_cast<size_t>(axis)];
    if (d.is_fixed() && (*ints)[0] > d.value)
      return invalid_model("TopK: K = {} exceeds the axis size {}", (*ints)[0], d.value);
    k = Dim((*ints)[0]);
  } else if (auto v = ctx.input_dims_value(1); v && v->size() == 1) {
    k = (*v)[0];
  }
  out[static_cast<size_t>(axis)] = k;
  ctx.set_output(0, dtype, Shape(out));
  ctx.set_output(1, DType::kI64, Shape(out));
  return Status::ok();
}

Status upgrade_topk(UpgradeContext& ctx) {
  // TopK-1 had k as an attribute; from 10 it is a 1-D input.
  Node& n = ctx.node();
  int64_t k = n.attr_int("k", -1);
  if (k < 0) return invalid_model("TopK: attribute 'k' is required before opset 10");
  n.attrs.erase("k");
  n.inputs.resize(std::max<size_t>(n.inputs.size(), 2), nullptr);
  n.inputs[1] = ctx.add_constant(Tensor::vector_i64({k}), "k");
  return Status::ok();
}

Status infer_dropout(InferContext& ctx) {
  ctx.set_output(0, ctx.input_type(0));
  if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kBool, ctx.input_shape(0));
  return Status::ok();
}

Status upgrade_dropout_7(UpgradeContext& ctx) {
  // Before 7, is_test=0 meant training; kiln runs inference, where Dropout is identity.
  ctx.node().attrs.erase("is_test");
  ctx.node().attrs.erase("consumed_inputs");
  return Status::ok();
}

Status upgrade_dropout_10(UpgradeContext& ctx) {
  // Before 10 the mask had the data's dtype; keep that with a CastLike after the bool mask.
  Node& n = ctx.node();
  Value* mask = n.output(1);
  if (!mask) return Status::ok();
  if (!n.input(0)) return invalid_model("Dropout: the mask output needs the data input");
  Value* bool_mask = ctx.new_value("mask_bool");
  bool_mask->producer = &n;
  bool_mask->producer_output = 1;
  n.outputs[1] = bool_mask;
  Node* cast = ctx.append_node("CastLike", {bool_mask, n.inputs[0]}, 0, "mask_cast");
  cast->opset = 15;  // the canonical CastLike, whatever opset the model imports
  cast->outputs.push_back(mask);
  mask->producer = cast;
  mask->producer_output = 0;
  return Status::ok();
}

Status upgrade_dropout_12(UpgradeContext& ctx) {
  Node& n = ctx.node();
  if (n.has_attr("ratio")) {
    float ratio = n.attr_float("ratio", 0.5f);
    n.attrs.erase("ratio");
    n.inputs.resize(std::max<size_t>(n.inputs.size(), 2), nullptr);
    n.inputs[1] = ctx.add_constant(Tensor::from_vector<float>(DType::kF32, {}, {ratio}), "ratio");
  }
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.name = "Gather", .min_inputs = 2, .max_inputs = 2, .infer = infer_gather});
  OpRegistration(OpSchema{
      .name = "GatherElements", .since_opset = 11, .min_inputs = 2, .max_inputs = 2, .infer = infer_gather_elements});
  OpRegistration(
      OpSchema{.name = "GatherND", .since_opset = 11, .min_inputs = 2, .max_inputs = 2, .infer = infer_gather_nd});
  OpRegistration(
      OpSchema{.name = "Scatter", .since_opset = 9, .min_inputs = 3, .max_inputs = 3, .infer = infer_scatter});
  OpRegistration(
      OpSchema{.name = "ScatterElements", .since_opset = 11, .min_inputs = 3, .max_inputs = 3, .infer = infer_scatter});
  OpRegistration(
      OpSchema{.name = "ScatterND", .since_opset = 11, .min_inputs = 3, .max_inputs = 3, .infer = infer_scatter});
  OpRegistration(OpSchema{
      .name = "TensorScatter", .since_opset = 24, .min_inputs = 2, .max_inputs = 3, .infer = infer_tensor_scatter});
  OpRegistration(
      OpSchema{.name = "Compress", .since_opset = 9, .min_inputs = 2, .max_inputs = 2, .infer = infer_compress});
  OpRegistration(
      OpSchema{.name = "NonZero", .since_opset = 9, .min_inputs = 1, .max_inputs = 1, .infer = infer_nonzero});
  OpRegistration(OpSchema{.name = "Where", .since_opset = 9, .min_inputs = 3, .max_inputs = 3, .infer = infer_where});
  OpRegistration(OpSchema{.name = "OneHot", .since_opset = 9, .min_inputs = 3, .max_inputs = 3, .infer = infer_onehot});
  OpRegistration(OpSchema{.name = "Trilu", .since_opset = 14, .min_inputs = 1, .max_inputs = 2, .infer = infer_trilu});
  OpRegistration(OpSchema{
      .name = "ReverseSequence", .since_opset = 10, .min_inputs = 2, .max_inputs = 2, .infer = infer_reverse_sequence});
  OpRegistration(
      OpSchema{.name = "EyeLike", .since_opset = 9, .min_inputs = 1, .max_inputs = 1, .infer = infer_eye_like});
  OpRegistration(OpSchema{.name = "Unique",
                          .since_opset = 11,
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .min_outputs = 1,
                          .max_outputs = 4,
                          .infer = infer_unique});
  OpRegistration(OpSchema{.name = "TopK",
                          .min_inputs = 2,
                          .max_inputs = 2,
                          .min_outputs = 2,
                          .max_outputs = 2,
                          .infer = infer_topk,
                          .upgrades = {{10, upgrade_topk}}});
  OpRegistration(OpSchema{.name = "Dropout",
                          .min_inputs = 1,
                          .max_inputs = 3,
                          .min_outputs = 1,
                          .max_outputs = 2,
                          .infer = infer_dropout,
                          .upgrades = {{7, upgrade_dropout_7}, {10, upgrade_dropout_10}, {12, upgrade_dropout_12}}});
  return true;
}();

}  // namespace
}  // namespace kiln
