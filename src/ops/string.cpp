// String ops (StringNormalizer, StringConcat, StringSplit, RegexFullMatch)
// and TfIdfVectorizer, which counts n-grams of strings or integers.
#include <fmt/format.h>

#include <algorithm>

#include "ops/infer_util.h"

namespace kiln {
namespace {

Status require_strings(const InferContext& ctx, size_t i) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, i, ctx.node().op_type.c_str()));
  DType t = ctx.input_dtype(i);
  if (t != DType::kString && t != DType::kUndefined)
    return invalid_model("{}: input {} must be string, got {}", ctx.node().op_type, i, dtype_name(t));
  return Status::ok();
}

// [C] -> [C'] and [1, C] -> [1, C']: stopwords make C' data-dependent.
Status infer_string_normalizer(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_strings(ctx, 0));
  std::string action = ctx.attr_string("case_change_action", "NONE");
  if (action != "NONE" && action != "LOWER" && action != "UPPER")
    return invalid_model("StringNormalizer: case_change_action '{}' must be NONE, LOWER or UPPER", action);
  const Shape& in = ctx.input_shape(0);
  if (!in.has_rank()) {
    ctx.set_output(0, DType::kString, Shape());
    return Status::ok();
  }
  if (in.rank() != 1 && !(in.rank() == 2 && in[0] == Dim(1)))
    return invalid_model("StringNormalizer: input must be [C] or [1, C], got {}", in.to_string());
  Dims d = *in.dims;
  const Attribute* stop = ctx.node().attr("stopwords");
  if (stop && !stop->strings.empty()) d.back() = ctx.new_symbol("kept");
  ctx.set_output(0, DType::kString, Shape(std::move(d)));
  return Status::ok();
}

Status infer_string_concat(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_strings(ctx, 0));
  KILN_RETURN_IF_ERROR(require_strings(ctx, 1));
  KILN_ASSIGN_OR_RETURN(Shape s, broadcast_shapes({&ctx.input_shape(0), &ctx.input_shape(1)}));
  ctx.set_output(0, DType::kString, std::move(s));
  return Status::ok();
}

// Y: the input's shape plus the most pieces any element splits into; Z: the input's shape.
Status infer_string_split(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_strings(ctx, 0));
  const Shape& in = ctx.input_shape(0);
  Shape y;
  if (in.has_rank()) {
    Dims d = *in.dims;
    d.push_back(ctx.new_symbol("pieces"));
    y = Shape(std::move(d));
  }
  ctx.set_output(0, DType::kString, y);
  ctx.set_output(1, DType::kI64, in);
  return Status::ok();
}

Status infer_regex_full_match(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_strings(ctx, 0));
  if (!ctx.node().has_attr("pattern")) return invalid_model("RegexFullMatch: attribute 'pattern' is required");
  ctx.set_output(0, DType::kBool, ctx.input_shape(0));
  return Status::ok();
}

Status infer_tfidf(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "TfIdfVectorizer"));
  std::string mode = ctx.attr_string("mode", "");
  if (mode != "TF" && mode != "IDF" && mode != "TFIDF")
    return invalid_model("TfIdfVectorizer: mode '{}' must be TF, IDF or TFIDF", mode);
  auto indexes = ctx.attr_ints("ngram_indexes");
  if (indexes.empty()) return invalid_model("TfIdfVectorizer: ngram_indexes is empty");
  int64_t min_n = ctx.attr_int("min_gram_length", 0), max_n = ctx.attr_int("max_gram_length", 0);
  if (min_n < 1 || max_n < min_n)
    return invalid_model("TfIdfVectorizer: gram lengths [{}, {}] must satisfy 1 <= min <= max", min_n, max_n);
  Dim size(*std::max_element(indexes.begin(), indexes.end()) + 1);
  const Shape& in = ctx.input_shape(0);
  if (!in.has_rank()) {
    ctx.set_output(0, DType::kF32, Shape());
  } else if (in.rank() <= 1) {
    ctx.set_output(0, DType::kF32, Shape(Dims{size}));
  } else if (in.rank() == 2) {
    ctx.set_output(0, DType::kF32, Shape(Dims{in[0], size}));
  } else {
    return invalid_model("TfIdfVectorizer: input must be [C] or [N, C], got {}", in.to_string());
  }
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.name = "StringNormalizer",
                          .since_opset = 10,
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .infer = infer_string_normalizer});
  OpRegistration(OpSchema{
      .name = "StringConcat", .since_opset = 20, .min_inputs = 2, .max_inputs = 2, .infer = infer_string_concat});
  OpRegistration(OpSchema{.name = "StringSplit",
                          .since_opset = 20,
                          .min_inputs = 1,
                          .max_inputs = 1,
                          .min_outputs = 2,
                          .max_outputs = 2,
                          .infer = infer_string_split});
  OpRegistration(OpSchema{
      .name = "RegexFullMatch", .since_opset = 20, .min_inputs = 1, .max_inputs = 1, .infer = infer_regex_full_match});
  OpRegistration(
      OpSchema{.name = "TfIdfVectorizer", .since_opset = 9, .min_inputs = 1, .max_inputs = 1, .infer = infer_tfidf});
  return true;
}();

}  // namespace
}  // namespace kiln
