#include "ops/op_rows.h"

namespace kiln {

void add_op(const char* name, int min_inputs, int max_inputs, InferFn infer, int max_outputs,
            std::vector<OpUpgrade> upgrades, int since_opset) {
  OpRegistration(OpSchema{.name = name,
                          .since_opset = since_opset,
                          .min_inputs = min_inputs,
                          .max_inputs = max_inputs,
                          .min_outputs = 1,
                          .max_outputs = max_outputs,
                          .infer = std::move(infer),
                          .upgrades = std::move(upgrades)});
}

void add_unary_op(const char* name, int since_opset, InferFn infer) {
  add_op(name, 1, 1, std::move(infer), 1, {{6, drop_consumed_inputs}}, since_opset);
}

}  // namespace kiln
