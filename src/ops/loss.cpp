// Loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss. Each row
// is the op's whole definition in kiln.
#include <fmt/format.h>

#include "ops/infer_util.h"

namespace kiln {
namespace {

// Input 0 is [N, C, d1, ...], input 1 (the class of each element) [N, d1, ...].
// The loss is per element for reduction "none", else a scalar.
Status infer_loss(InferContext& ctx) {
  const std::string& op = ctx.node().op_type;
  std::string reduction = ctx.attr_string("reduction", "mean");
  if (reduction != "none" && reduction != "sum" && reduction != "mean")
    return invalid_model("{}: reduction must be \"none\", \"sum\" or \"mean\", got \"{}\"", op, reduction);
  const Shape &x = ctx.input_shape(0), &target = ctx.input_shape(1);
  if (!dtype_is_integer(ctx.input_dtype(1)) && ctx.input_dtype(1) != DType::kUndefined)
    return invalid_model("{}: the target must be an integer tensor, got {}", op, dtype_name(ctx.input_dtype(1)));
  if (x.has_rank() && x.rank() < 2) return invalid_model("{}: input must be [N, C, ...], got {}", op, x.to_string());
  if (x.has_rank() && target.has_rank() && target.rank() != x.rank() - 1)
    return invalid_model("{}: target {} must have one dim less than input {}", op, target.to_string(), x.to_string());
  Shape loss = Shape(Dims{});
  if (reduction == "none") {
    if (target.has_rank()) {
      loss = target;
    } else if (x.has_rank()) {
      Dims d = *x.dims;
      d.erase(d.begin() + 1);
      loss = Shape(std::move(d));
    } else {
      loss = Shape();
    }
  }
  ctx.set_output(0, ctx.input_dtype(0), std::move(loss));
  if (ctx.num_outputs() > 1) ctx.set_output(1, ctx.input_type(0));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{
      .name = "NegativeLogLikelihoodLoss", .since_opset = 12, .min_inputs = 2, .max_inputs = 3, .infer = infer_loss});
  OpRegistration(OpSchema{.name = "SoftmaxCrossEntropyLoss",
                          .since_opset = 12,
                          .min_inputs = 2,
                          .max_inputs = 3,
                          .min_outputs = 1,
                          .max_outputs = 2,
                          .infer = infer_loss});
  return true;
}();

}  // namespace
}  // namespace kiln
