// Classic ML ops of the ai.onnx.ml domain: LabelEncoder, Binarizer,
// ArrayFeatureExtractor, TreeEnsemble and the older
// TreeEnsembleRegressor and TreeEnsembleClassifier.
#include <fmt/format.h>

#include <algorithm>

#include "ops/infer_util.h"

namespace kiln {
namespace {

constexpr const char* kMl = "ai.onnx.ml";

// The dtype of LabelEncoder's values (and so of its output).
Expected<DType> label_value_dtype(const Node& n) {
  if (const Attribute* t = n.attr("values_tensor")) return t->t.dtype();
  if (n.has_attr("values_floats")) return DType::kF32;
  if (n.has_attr("values_int64s")) return DType::kI64;
  if (n.has_attr("values_strings")) return DType::kString;
  return invalid_model("LabelEncoder: no values_* attribute");
}

Status infer_label_encoder(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "LabelEncoder"));
  KILN_ASSIGN_OR_RETURN(DType dt, label_value_dtype(ctx.node()));
  ctx.set_output(0, dt, ctx.input_shape(0));
  return Status::ok();
}

// LabelEncoder-1 mapped strings to their index in classes_strings, or
// indices back to strings: as keys/values pairs of the newer form.
Status upgrade_label_encoder1(UpgradeContext& ctx) {
  Node& n = ctx.node();
  const Attribute* classes = n.attr("classes_strings");
  std::vector<std::string> names = classes ? classes->strings : std::vector<std::string>{};
  std::vector<int64_t> ids(names.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);
  DType in = n.inputs.empty() || !n.inputs[0] ? DType::kUndefined : n.inputs[0]->type.dtype;
  int64_t default_int = n.attr_int("default_int64", -1);
  std::string default_string = n.attr_string("default_string", "_Unused");
  n.attrs.clear();
  if (in == DType::kString) {
    n.attrs["keys_strings"] = Attribute::of_strings(names);
    n.attrs["values_int64s"] = Attribute::of_ints(ids);
    n.attrs["default_int64"] = Attribute::of_int(default_int);
  } else if (in == DType::kI64) {
    n.attrs["keys_int64s"] = Attribute::of_ints(ids);
    n.attrs["values_strings"] = Attribute::of_strings(names);
    n.attrs["default_string"] = Attribute::of_string(default_string);
  } else {
    return unsupported("LabelEncoder-1 needs an input of a declared dtype (string or int64), got {}", dtype_name(in));
  }
  return Status::ok();
}

Status infer_binarizer(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "Binarizer"));
  return infer_same_as_input0(ctx);
}

// X[..., F] and indices -> X[..., len(indices)]; a 1-D X gives [1, len(indices)].
Status infer_array_feature_extractor(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "ArrayFeatureExtractor"));
  KILN_RETURN_IF_ERROR(require_rank(ctx, 1, "ArrayFeatureExtractor"));
  const Shape& x = ctx.input_shape(0);
  const Shape& idx = ctx.input_shape(1);
  if (!x.has_rank()) {
    ctx.set_output(0, ctx.input_dtype(0), Shape());
    return Status::ok();
  }
  if (x.rank() == 0) return invalid_model("ArrayFeatureExtractor: X must have rank 1 or more");
  Dim count = idx.has_rank() ? dims_product(*idx.dims, 0, idx.dims->size()) : Dim::unknown();
  Dims d = x.rank() == 1 ? Dims{Dim(1)} : Dims(x.dims->begin(), x.dims->end() - 1);
  d.push_back(count);
  ctx.set_output(0, ctx.input_dtype(0), Shape(std::move(d)));
  return Status::ok();
}

Status infer_tree_ensemble(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "TreeEnsemble"));
  int64_t targets = ctx.attr_int("n_targets", -1);
  if (targets < 1) return invalid_model("TreeEnsemble: n_targets {} must be positive", targets);
  int64_t post = ctx.attr_int("post_transform", 0);
  if (post != 0) return unsupported("TreeEnsemble: post_transform {} is not supported (only 0, NONE)", post);
  int64_t agg = ctx.attr_int("aggregate_function", 1);
  if (agg < 0 || agg > 3) return invalid_model("TreeEnsemble: aggregate_function {} must be in [0, 3]", agg);
  const Shape& x = ctx.input_shape(0);
  if (x.has_rank() && x.rank() != 2) return invalid_model("TreeEnsemble: X must be [N, F], got {}", x.to_string());
  ctx.set_output(0, ctx.input_dtype(0), Shape(Dims{x.has_rank() ? x[0] : Dim::unknown(), Dim(targets)}));
  return Status::ok();
}

// The older regressor form (ai.onnx.ml 1 to 3, deprecated in 5): [N, F] -> f32[N, n_targets].
Status infer_tree_ensemble_regressor(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "TreeEnsembleRegressor"));
  int64_t targets = ctx.attr_int("n_targets", -1);
  if (targets < 1) return invalid_model("TreeEnsembleRegressor: n_targets {} must be positive", targets);
  std::string post = ctx.attr_string("post_transform", "NONE");
  if (post != "NONE")
    return unsupported("TreeEnsembleRegressor: post_transform '{}' is not supported (only NONE)", post);
  std::string agg = ctx.attr_string("aggregate_function", "SUM");
  if (agg != "SUM" && agg != "AVERAGE" && agg != "MIN" && agg != "MAX")
    return invalid_model("TreeEnsembleRegressor: aggregate_function '{}' must be SUM, AVERAGE, MIN or MAX", agg);
  const Shape& x = ctx.input_shape(0);
  Dim n = !x.has_rank() ? Dim::unknown() : x.rank() == 1 ? Dim(1) : x[0];
  ctx.set_output(0, DType::kF32, Shape(Dims{n, Dim(targets)}));
  return Status::ok();
}

// Y: a label per row (i64 or string); Z: f32 scores, two columns for a binary
// model whose votes all go to one class.
Status infer_tree_ensemble_classifier(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "TreeEnsembleClassifier"));
  const Node& n = ctx.node();
  const Attribute* strs = n.attr("classlabels_strings");
  auto ints = n.attr_ints("classlabels_int64s");
  auto labels = static_cast<int64_t>(strs ? strs->strings.size() : ints.size());
  if (labels < 1) return invalid_model("TreeEnsembleClassifier: classlabels_int64s or classlabels_strings is required");
  if (labels == 1 && (strs || ints[0] != 1))
    return unsupported("TreeEnsembleClassifier: a single class label is only supported as the int64 1");
  std::string post = ctx.attr_string("post_transform", "NONE");
  if (post != "NONE" && post != "LOGISTIC" && post != "SOFTMAX" && post != "SOFTMAX_ZERO")
    return unsupported("TreeEnsembleClassifier: post_transform '{}' is not supported", post);
  auto ids = ctx.attr_ints("class_ids");
  bool binary = !ids.empty() && std::all_of(ids.begin(), ids.end(), [&](int64_t c) { return c == ids[0]; });
  const Shape& x = ctx.input_shape(0);
  Dim rows = !x.has_rank() ? Dim::unknown() : x.rank() == 1 ? Dim(1) : x[0];
  ctx.set_output(0, strs ? DType::kString : DType::kI64, Shape(Dims{rows}));
  ctx.set_output(1, DType::kF32, Shape(Dims{rows, Dim(binary && labels == 1 ? 2 : labels)}));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.domain = kMl,
                          .name = "LabelEncoder",
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .infer = infer_label_encoder,
                          .upgrades = {{2, upgrade_label_encoder1}}});
  OpRegistration(
      OpSchema{.domain = kMl, .name = "Binarizer", .min_inputs = 1, .max_inputs = 1, .infer = infer_binarizer});
  OpRegistration(OpSchema{.domain = kMl,
                          .name = "ArrayFeatureExtractor",
                          .min_inputs = 2,
                          .max_inputs = 2,
                          .infer = infer_array_feature_extractor});
  OpRegistration(OpSchema{.domain = kMl,
                          .name = "TreeEnsemble",
                          .since_opset = 5,
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .infer = infer_tree_ensemble});
  OpRegistration(OpSchema{.domain = kMl,
                          .name = "TreeEnsembleRegressor",
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .infer = infer_tree_ensemble_regressor});
  OpRegistration(OpSchema{.domain = kMl,
                          .name = "TreeEnsembleClassifier",
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .min_outputs = 1,
                          .max_outputs = 2,
                          .infer = infer_tree_ensemble_classifier});
  return true;
}();

}  // namespace
}  // namespace kiln
