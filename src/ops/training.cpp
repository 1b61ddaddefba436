// Optimizer steps of the ai.onnx.preview.training domain: Adagrad, Adam and
// Momentum. Inputs are R (learning rate), T (step count) and then groups of
// tensors (X..., G..., then one or two state groups); outputs are the new X
// and the new states, each shaped as its input.
#include <fmt/format.h>

#include "ops/infer_util.h"

namespace kiln {
namespace {

constexpr const char* kTraining = "ai.onnx.preview.training";

// `groups`: how many input groups follow R and T (X, G, states); the outputs
// are all of them but G, typed as the matching inputs.
Status infer_optimizer(InferContext& ctx, size_t groups) {
  const char* op = ctx.node().op_type.c_str();
  if (ctx.num_inputs() < 2 + groups || (ctx.num_inputs() - 2) % groups != 0)
    return invalid_model("{}: takes R, T and {} groups of equal size, got {} inputs", op, groups, ctx.num_inputs());
  size_t n = (ctx.num_inputs() - 2) / groups;
  if (ctx.num_outputs() != n * (groups - 1))
    return invalid_model("{}: {} tensors to update need {} outputs, got {}", op, n, n * (groups - 1),
                         ctx.num_outputs());
  for (size_t i = 0; i < 2; ++i)
    if (ctx.input_shape(i).has_rank() && ctx.input_shape(i).rank() > 1 && ctx.input_shape(i).numel() != 1)
      return invalid_model("{}: input {} (R or T) must be a scalar", op, i);
  size_t out = 0;
  for (size_t g = 0; g < groups; ++g) {
    if (g == 1) continue;  // the gradients are not outputs
    for (size_t k = 0; k < n; ++k) ctx.set_output(out++, ctx.input_type(2 + g * n + k));
  }
  return Status::ok();
}

// R, T and one tensor per group at the least; one output per group but G.
void optimizer(const char* name, size_t groups) {
  OpRegistration(OpSchema{.domain = kTraining,
                          .name = name,
                          .min_inputs = 2 + static_cast<int>(groups),
                          .max_inputs = -1,
                          .min_outputs = static_cast<int>(groups) - 1,
                          .max_outputs = -1,
                          .infer = [groups](InferContext& c) { return infer_optimizer(c, groups); }});
}

[[maybe_unused]] const bool registered = [] {
  optimizer("Adagrad", 3);   // X, G, H
  optimizer("Momentum", 3);  // X, G, V
  optimizer("Adam", 4);      // X, G, V, H
  return true;
}();

}  // namespace
}  // namespace kiln
